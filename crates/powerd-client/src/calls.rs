//! Typed calls of the provisioning API (`/v1/pis`, `/v1/images`, `/v1/vms`, `/v1/disks`), and
//! the image upload, streamed from a file: an image is never held in memory.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::Method;
use hyper::body::{Body as HttpBody, Bytes, Frame};
use serde::Serialize;
use tokio::io::{AsyncRead, ReadBuf};

use crate::client::{Client, ClientError};
use crate::provision::{
    Attachment, CreateDisk, CreateVm, Disk, DiskList, Image, ImageList, ImageUpload, Labels, Pi,
    PiList, PiSpec, PiState, PiStateRequest, ResizeDisk, Vm, VmList,
};

/// Bytes read from the file per body frame.
const CHUNK: usize = 256 * 1024;

impl Client {
    /// `GET /v1/pis`.
    pub async fn pis(&self) -> Result<Vec<Pi>, ClientError> {
        let list: PiList = self.typed(Method::GET, "/v1/pis", None).await?;
        Ok(list.pis)
    }

    /// `GET /v1/pis/{serial}`.
    pub async fn pi(&self, serial: &str) -> Result<Pi, ClientError> {
        self.typed(Method::GET, &format!("/v1/pis/{}", seg(serial)), None)
            .await
    }

    /// `PUT /v1/pis/{serial}`: registers, adopts or updates a Pi.
    pub async fn put_pi(&self, serial: &str, spec: &PiSpec) -> Result<Pi, ClientError> {
        let path = format!("/v1/pis/{}", seg(serial));
        self.typed(Method::PUT, &path, Some(&json(spec))).await
    }

    /// `POST /v1/pis/{serial}/state` (`free` or `broken`).
    pub async fn set_pi_state(&self, serial: &str, state: PiState) -> Result<Pi, ClientError> {
        let path = format!("/v1/pis/{}/state", seg(serial));
        let body = json(&PiStateRequest { state });
        self.typed(Method::POST, &path, Some(&body)).await
    }

    /// `DELETE /v1/pis/{serial}`: retires a Pi.
    pub async fn delete_pi(&self, serial: &str) -> Result<(), ClientError> {
        let path = format!("/v1/pis/{}", seg(serial));
        self.unit(Method::DELETE, &path, None).await
    }

    /// `POST /v1/images?...` with the file's bytes as the body, read as they are sent.
    /// `timeout` bounds the whole upload (a 2 GiB image over a Pi's network takes minutes).
    pub async fn upload_image(
        &self,
        file: &Path,
        upload: &ImageUpload,
        timeout: Duration,
    ) -> Result<Image, ClientError> {
        let file_err = |e: io::Error| ClientError::File {
            path: file.display().to_string(),
            message: e.to_string(),
        };
        let f = tokio::fs::File::open(file).await.map_err(file_err)?;
        let len = f.metadata().await.map_err(file_err)?.len();
        let path = format!("/v1/images{}", query(upload));
        let body = FileBody {
            file: f,
            left: len,
            buf: vec![0; CHUNK],
        }
        .boxed_unsync();
        let resp = self
            .send_body(
                Method::POST,
                &path,
                self.credentials(),
                Some(("application/octet-stream", len, body)),
                timeout,
            )
            .await?;
        self.decode(&path, resp)
    }

    /// `GET /v1/images`.
    pub async fn images(&self) -> Result<Vec<Image>, ClientError> {
        let list: ImageList = self.typed(Method::GET, "/v1/images", None).await?;
        Ok(list.images)
    }

    /// `GET /v1/images/{id}`.
    pub async fn image(&self, id: &str) -> Result<Image, ClientError> {
        self.typed(Method::GET, &format!("/v1/images/{}", seg(id)), None)
            .await
    }

    /// `DELETE /v1/images/{id}` (409 `image_in_use` while a VM runs it).
    pub async fn delete_image(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/images/{}", seg(id));
        self.unit(Method::DELETE, &path, None).await
    }

    /// `POST /v1/vms`: claim, provision and power on, all or nothing.
    pub async fn create_vm(&self, vm: &CreateVm) -> Result<Vm, ClientError> {
        self.typed(Method::POST, "/v1/vms", Some(&json(vm))).await
    }

    /// `GET /v1/vms`.
    pub async fn vms(&self) -> Result<Vec<Vm>, ClientError> {
        let list: VmList = self.typed(Method::GET, "/v1/vms", None).await?;
        Ok(list.vms)
    }

    /// `GET /v1/vms/{id}`.
    pub async fn vm(&self, id: &str) -> Result<Vm, ClientError> {
        self.typed(Method::GET, &format!("/v1/vms/{}", seg(id)), None)
            .await
    }

    /// `DELETE /v1/vms/{id}`: power off, drop everything the VM had, free the Pi.
    pub async fn delete_vm(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/vms/{}", seg(id));
        self.unit(Method::DELETE, &path, None).await
    }

    /// `POST /v1/vms/{id}/reboot`: a power cycle within the outlet's safety rules.
    pub async fn reboot_vm(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/vms/{}/reboot", seg(id));
        self.unit(Method::POST, &path, None).await
    }

    /// `PUT /v1/vms/{id}/metadata`.
    pub async fn set_vm_metadata(&self, id: &str, labels: &Labels) -> Result<(), ClientError> {
        let path = format!("/v1/vms/{}/metadata", seg(id));
        self.unit(Method::PUT, &path, Some(&json(labels))).await
    }

    /// `POST /v1/disks`.
    pub async fn create_disk(&self, disk: &CreateDisk) -> Result<Disk, ClientError> {
        self.typed(Method::POST, "/v1/disks", Some(&json(disk)))
            .await
    }

    /// `GET /v1/disks[?vm=]`.
    pub async fn disks(&self, vm: Option<&str>) -> Result<Vec<Disk>, ClientError> {
        let path = match vm {
            Some(vm) => format!("/v1/disks?vm={}", seg(vm)),
            None => "/v1/disks".to_string(),
        };
        let list: DiskList = self.typed(Method::GET, &path, None).await?;
        Ok(list.disks)
    }

    /// `GET /v1/disks/{id}`.
    pub async fn disk(&self, id: &str) -> Result<Disk, ClientError> {
        self.typed(Method::GET, &format!("/v1/disks/{}", seg(id)), None)
            .await
    }

    /// `DELETE /v1/disks/{id}` (409 `disk_attached` while attached).
    pub async fn delete_disk(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/disks/{}", seg(id));
        self.unit(Method::DELETE, &path, None).await
    }

    /// `POST /v1/disks/{id}/attach`: answers once the Pi confirmed the device.
    pub async fn attach_disk(&self, id: &str, vm: &str) -> Result<Attachment, ClientError> {
        let path = format!("/v1/disks/{}/attach", seg(id));
        let body = serde_json::json!({ "vm": vm });
        self.typed(Method::POST, &path, Some(&body)).await
    }

    /// `POST /v1/disks/{id}/detach`.
    pub async fn detach_disk(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/disks/{}/detach", seg(id));
        self.unit(Method::POST, &path, None).await
    }

    /// `POST /v1/disks/{id}/resize` (only while detached; grow only).
    pub async fn resize_disk(&self, id: &str, size_mib: u64) -> Result<(), ClientError> {
        let path = format!("/v1/disks/{}/resize", seg(id));
        let body = json(&ResizeDisk { size_mib });
        self.unit(Method::POST, &path, Some(&body)).await
    }

    /// `PUT /v1/disks/{id}/metadata`.
    pub async fn set_disk_metadata(&self, id: &str, labels: &Labels) -> Result<(), ClientError> {
        let path = format!("/v1/disks/{}/metadata", seg(id));
        self.unit(Method::PUT, &path, Some(&json(labels))).await
    }
}

fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("wire types serialise")
}

/// Percent-encodes everything but RFC 3986's unreserved characters: an id or a query value
/// from a caller cannot change the path.
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn query(u: &ImageUpload) -> String {
    let pairs = [
        ("arch", u.arch.map(|a| a.name().to_string())),
        ("sha256", u.sha256.clone()),
        ("name", u.name.clone()),
        ("version", u.version.clone()),
    ];
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", seg(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// A request body read from a file a chunk at a time; it ends after exactly `left` bytes
/// (the Content-Length sent), and fails if the file got shorter meanwhile.
struct FileBody {
    file: tokio::fs::File,
    left: u64,
    buf: Vec<u8>,
}

impl HttpBody for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let want = this.buf.len().min(this.left as usize);
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the file ended {} bytes early", this.left),
                    ))));
                }
                this.left -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(
                    &this.buf[..n],
                )))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_query_values_cannot_leave_their_segment() {
        assert_eq!(seg("vm-0a1b"), "vm-0a1b");
        assert_eq!(seg("../x?y=1&z"), "..%2Fx%3Fy%3D1%26z");
        let q = query(&ImageUpload {
            arch: Some(crate::provision::Arch::Arm64),
            sha256: None,
            name: Some("bosh pi".into()),
            version: Some("1.0+dev.2".into()),
        });
        assert_eq!(q, "?arch=arm64&name=bosh%20pi&version=1.0%2Bdev.2");
        assert_eq!(query(&ImageUpload::default()), "");
    }
}
