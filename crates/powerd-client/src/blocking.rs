//! The same client for code without an async runtime (the CPI: one process per call): each
//! call runs on a private current-thread tokio runtime.

use std::path::Path;
use std::time::Duration;

use hyper::Method;

use crate::client::{Client as AsyncClient, ClientError, Credentials, Response};
use crate::provision::{
    Attachment, CreateDisk, CreateVm, Disk, Image, ImageUpload, Labels, Pi, PiSpec, PiState, Vm,
};
use crate::types::{Outlet, PowerState};

/// Each listed call of the async client, run to completion on the private runtime.
macro_rules! blocking {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(&self, $($arg: $ty),*) -> Result<$ret, ClientError> {
                self.rt.block_on(self.inner.$name($($arg),*))
            }
        )*
    };
}

pub struct Client {
    rt: tokio::runtime::Runtime,
    inner: AsyncClient,
}

impl Client {
    pub fn new(base: &str, credentials: Credentials) -> Result<Client, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Http {
                url: base.to_string(),
                message: format!("cannot start the I/O runtime: {e}"),
            })?;
        // hyper-util's client wants a runtime when it is built
        let inner = {
            let _guard = rt.enter();
            AsyncClient::new(base, credentials)?
        };
        Ok(Client { rt, inner })
    }

    pub fn base(&self) -> &str {
        self.inner.base()
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.inner = self.inner.with_timeout(timeout);
        self
    }

    blocking! {
        fn outlets() -> Vec<Outlet>;
        fn outlet(id: &str) -> Outlet;
        fn set_power(id: &str, state: PowerState) -> Outlet;
        fn cycle(id: &str) -> Outlet;
        /// `GET /v1/pis`.
        fn pis() -> Vec<Pi>;
        fn pi(serial: &str) -> Pi;
        fn put_pi(serial: &str, spec: &PiSpec) -> Pi;
        fn set_pi_state(serial: &str, state: PiState) -> Pi;
        fn delete_pi(serial: &str) -> ();
        /// Streams `file` to `POST /v1/images`; `timeout` bounds the whole upload.
        fn upload_image(file: &Path, upload: &ImageUpload, timeout: Duration) -> Image;
        fn images() -> Vec<Image>;
        fn image(id: &str) -> Image;
        fn delete_image(id: &str) -> ();
        fn create_vm(vm: &CreateVm) -> Vm;
        fn vms() -> Vec<Vm>;
        fn vm(id: &str) -> Vm;
        fn delete_vm(id: &str) -> ();
        fn reboot_vm(id: &str) -> ();
        fn set_vm_metadata(id: &str, labels: &Labels) -> ();
        fn create_disk(disk: &CreateDisk) -> Disk;
        fn disks(vm: Option<&str>) -> Vec<Disk>;
        fn disk(id: &str) -> Disk;
        fn delete_disk(id: &str) -> ();
        fn attach_disk(id: &str, vm: &str) -> Attachment;
        fn detach_disk(id: &str) -> ();
        fn resize_disk(id: &str, size_mib: u64) -> ();
        fn set_disk_metadata(id: &str, labels: &Labels) -> ();
    }

    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, ClientError> {
        self.rt.block_on(self.inner.call(method, path, body))
    }
}
