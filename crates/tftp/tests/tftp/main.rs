//! The server on an ephemeral loopback port: real clients (curl, tftp-hpa), a protocol-level
//! client of the tests' own, and a loss/duplication-injecting relay between them.

mod client;
mod protocol;
mod real_clients;
mod relay;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use pifoundry_tftp::{Config, Resolver, Server};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server serving in the background until [`Running::shutdown`].
pub struct Running {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

pub async fn start(resolver: impl Resolver, config: Config) -> Running {
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), resolver, config)
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(server.serve_until(async move {
        let _ = stopped.await;
    }));
    Running { addr, stop, task }
}

impl Running {
    /// Asks the server to stop; returns what `serve_until` returned.
    pub async fn shutdown(self) -> io::Result<()> {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve_until returns after shutdown")
            .unwrap()
    }
}

/// Settings with a short retransmission timer, so that loss costs the tests little time.
pub fn config(timeout: Duration, retries: u32) -> Config {
    let mut config = Config::default();
    config.timeout = timeout;
    config.retries = retries;
    config
}

/// Deterministic, incompressible-looking bytes (xorshift), different per `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A reader that raises a flag when dropped: the server dropping its source is the
/// observable end of a transfer.
pub struct DropFlag<R> {
    pub inner: R,
    pub dropped: Arc<AtomicBool>,
}

impl<R> Drop for DropFlag<R> {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for DropFlag<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// Waits up to `within` for `flag`; whether it was raised.
pub async fn raised(flag: &AtomicBool, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while !flag.load(Ordering::SeqCst) {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}
