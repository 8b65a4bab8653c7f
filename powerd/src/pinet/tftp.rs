//! The TFTP resolver: `SERIAL/…` paths through the [`Directory`], a rendered `cmdline.txt`,
//! the bootloader's root files from the firmware directory, nothing else.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use pifoundry_tftp::{ReadRequest, Resolver, ServedDir, Source};
use tracing::info;

use super::dhcp::is_serial;
use super::{BootLookup, Directory, cmdline};

/// Files a Pi asks for at the root, before its serial prefix (the Pi 2B v1.2/3 ROM:
/// `bootcode.bin`, then `bootsig.bin`, whose not-found is expected). Nothing else is served
/// at the root: a Pi whose serial directory misses `start.elf` would fall back to the root
/// and boot without its command line.
pub const ROOT_FILES: &[&str] = &["bootcode.bin", "bootsig.bin"];

pub struct PiResolver {
    pub dir: Arc<dyn Directory>,
    /// The HTTP server's address, rendered into `pifoundry.api=`.
    pub api: SocketAddr,
}

impl Resolver for PiResolver {
    async fn resolve(&self, request: &ReadRequest) -> io::Result<Option<Source>> {
        let from = request.peer.ip().to_canonical();
        let (first, rest) = request.path.split_first();
        let Some(file) = rest else {
            if !ROOT_FILES.contains(&first) {
                return Ok(None);
            }
            let Some(firmware) = self.dir.firmware_dir() else {
                return Ok(None);
            };
            return ServedDir::open(firmware)?.open_file(&request.path).await;
        };
        if !is_serial(first) {
            return Ok(None);
        }
        let (dir, serial) = (Arc::clone(&self.dir), first.to_owned());
        let lookup = tokio::task::spawn_blocking(move || dir.boot(&serial, from))
            .await
            .map_err(io::Error::other)?;
        let boot = match lookup {
            BootLookup::Served(boot) => boot,
            BootLookup::Unknown => {
                info!(serial = first, %from, file = %file, "tftp: unknown Pi, recorded as discovered");
                return Ok(None);
            }
            BootLookup::NotServed => return Ok(None),
        };
        if file.as_str() == "cmdline.txt" {
            let line = cmdline::render(&boot.cmdline, self.api)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            return Ok(Some(Source::from_bytes(line)));
        }
        ServedDir::open(&boot.boot_dir)?.open_file(&file).await
    }
}
