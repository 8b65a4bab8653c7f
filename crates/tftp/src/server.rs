//! The listening socket: requests in, one task and one socket per transfer.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::options::negotiate;
use crate::packet::{self, ErrorCode, Mode, Packet, Request};
use crate::transfer::{self, End, Link};
use crate::{ReadRequest, RequestPath, Resolver};

/// Server settings; start from [`Config::default`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Largest block size granted (clients may ask 8–65464). The default, 1468, keeps a DATA
    /// packet within a 1500-byte Ethernet MTU, unfragmented; it is what Tinkerbell serves Pis.
    pub max_blksize: u16,
    /// Retransmission interval when the client asks none (a client's `timeout` option wins).
    pub timeout: Duration,
    /// Retransmissions of one packet before the transfer is abandoned.
    pub retries: u32,
    /// Transfers at once; a request beyond this gets an error and may be retried.
    pub max_transfers: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_blksize: 1468,
            timeout: Duration::from_secs(1),
            retries: 5,
            max_transfers: 512,
        }
    }
}

/// A read-only TFTP server. Bind it, then run [`Server::serve_until`].
pub struct Server<R> {
    socket: UdpSocket,
    resolver: Arc<R>,
    config: Config,
}

impl<R: Resolver> Server<R> {
    /// Binds `addr` (port 0 picks a free port; see [`Server::local_addr`]).
    pub async fn bind(addr: SocketAddr, resolver: R, config: Config) -> io::Result<Server<R>> {
        let socket = UdpSocket::bind(addr).await?;
        Ok(Server {
            socket,
            resolver: Arc::new(resolver),
            config,
        })
    }

    /// Serves on a socket bound elsewhere (e.g. handed over by systemd).
    pub fn from_std(socket: StdUdpSocket, resolver: R, config: Config) -> io::Result<Server<R>> {
        socket.set_nonblocking(true)?;
        Ok(Server {
            socket: UdpSocket::from_std(socket)?,
            resolver: Arc::new(resolver),
            config,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Serves until `shutdown` completes, then ends every transfer in progress (each client
    /// gets an ERROR packet) and returns once all have ended. Dropping the future instead
    /// aborts the transfers without telling their clients.
    pub async fn serve_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let local = self.socket.local_addr()?;
        info!(addr = %local, "tftp listening");
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut transfers = JoinSet::new();
        let mut buf = vec![0u8; 65536];
        tokio::pin!(shutdown);
        let result = loop {
            tokio::select! {
                _ = &mut shutdown => break Ok(()),
                Some(joined) = transfers.join_next(), if !transfers.is_empty() => {
                    if let Err(e) = joined {
                        warn!(error = %e, "tftp transfer task failed");
                    }
                }
                received = self.socket.recv_from(&mut buf) => {
                    let (len, peer) = match received {
                        Ok(received) => received,
                        Err(e) if transient(&e) => {
                            debug!(error = %e, "tftp receive");
                            continue;
                        }
                        Err(e) => break Err(e),
                    };
                    if let Some(request) = self.admit(&buf[..len], peer, transfers.len()).await {
                        let (resolver, config) = (Arc::clone(&self.resolver), self.config.clone());
                        let task = serve_request(request, local, resolver, config, stop_rx.clone());
                        transfers.spawn(task);
                    }
                }
            }
        };
        let _ = stop_tx.send(true);
        while transfers.join_next().await.is_some() {}
        info!(addr = %local, "tftp stopped");
        result
    }

    /// Checks one datagram on the listening port; answers what is refused right here.
    async fn admit(&self, datagram: &[u8], peer: SocketAddr, running: usize) -> Option<Admitted> {
        let request = match packet::parse(datagram) {
            Ok(Packet::Rrq(request)) => request,
            Ok(Packet::Wrq(request)) => {
                let file = String::from_utf8_lossy(request.filename);
                info!(%peer, %file, "tftp write refused");
                self.refuse(peer, ErrorCode::ACCESS_VIOLATION, "read-only server")
                    .await;
                return None;
            }
            Ok(other) => {
                debug!(%peer, packet = ?other, "tftp: not a request; ignored");
                return None;
            }
            Err(e) if looks_like_request(datagram) => {
                info!(%peer, error = %e, "tftp malformed request");
                self.refuse(
                    peer,
                    ErrorCode::ILLEGAL_OPERATION,
                    &format!("malformed request: {e}"),
                )
                .await;
                return None;
            }
            Err(e) => {
                debug!(%peer, error = %e, "tftp: malformed datagram ignored");
                return None;
            }
        };
        let file = String::from_utf8_lossy(request.filename);
        if request.mode != Mode::Octet {
            let mode = request.mode.as_str();
            info!(%peer, %file, mode, "tftp mode refused");
            let message = format!("{mode} mode is not served (boot files are binary): use octet");
            self.refuse(peer, ErrorCode::ILLEGAL_OPERATION, &message)
                .await;
            return None;
        }
        let path = match RequestPath::parse(request.filename) {
            Ok(path) => path,
            Err(e) => {
                info!(%peer, %file, error = %e, "tftp request refused");
                self.refuse(peer, ErrorCode::ACCESS_VIOLATION, &e.to_string())
                    .await;
                return None;
            }
        };
        if running >= self.config.max_transfers {
            warn!(%peer, %file, running, "tftp busy: request refused");
            self.refuse(peer, ErrorCode::NOT_DEFINED, "server busy, try again")
                .await;
            return None;
        }
        Some(Admitted {
            peer,
            path,
            options: owned_options(&request),
        })
    }

    async fn refuse(&self, peer: SocketAddr, code: ErrorCode, message: &str) {
        if let Err(e) = self
            .socket
            .send_to(&packet::error_bytes(code, message), peer)
            .await
        {
            debug!(%peer, error = %e, "tftp: error reply not sent");
        }
    }
}

/// A request that passed the checks of the listening port.
struct Admitted {
    peer: SocketAddr,
    path: RequestPath,
    options: Vec<(String, String)>,
}

fn owned_options(request: &Request<'_>) -> Vec<(String, String)> {
    request
        .options
        .iter()
        .map(|o| (o.name.to_owned(), o.value.to_owned()))
        .collect()
}

fn looks_like_request(datagram: &[u8]) -> bool {
    matches!(datagram, [0, 1 | 2, ..])
}

/// Errors of a datagram socket that concern one datagram, not the socket.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Resolves and sends one file, from a socket of its own (the transfer's TID).
async fn serve_request<R: Resolver>(
    admitted: Admitted,
    local: SocketAddr,
    resolver: Arc<R>,
    config: Config,
    stop: watch::Receiver<bool>,
) {
    let Admitted {
        peer,
        path,
        options,
    } = admitted;
    let file = path.as_str().to_owned();
    let socket = match transfer_socket(local, peer).await {
        Ok(socket) => socket,
        Err(e) => return warn!(%peer, %file, error = %e, "tftp: no socket for the transfer"),
    };
    let reply_error = |code, message| send_error(&socket, code, message);
    let request = ReadRequest::new(peer, path);
    let mut stop_resolving = stop.clone();
    let resolved = tokio::select! {
        resolved = resolver.resolve(&request) => resolved,
        _ = transfer::stopped(&mut stop_resolving) => {
            info!(%peer, %file, "tftp request dropped: server shutting down");
            return reply_error(ErrorCode::NOT_DEFINED, "server shutting down").await;
        }
    };
    let mut source = match resolved {
        Ok(Some(source)) => source,
        Ok(None) => {
            info!(%peer, %file, "tftp file not found");
            return reply_error(ErrorCode::FILE_NOT_FOUND, "file not found").await;
        }
        Err(e) => {
            warn!(%peer, %file, error = %e, "tftp resolver failed");
            return match e.kind() {
                io::ErrorKind::PermissionDenied => {
                    reply_error(ErrorCode::ACCESS_VIOLATION, "access denied").await
                }
                _ => reply_error(ErrorCode::NOT_DEFINED, "server error").await,
            };
        }
    };
    let options: Vec<_> = options
        .iter()
        .map(|(name, value)| packet::TftpOption { name, value })
        .collect();
    let negotiated = negotiate(&options, source.size(), config.max_blksize);
    let timeout = negotiated.timeout.unwrap_or(config.timeout);
    let mut link = Link::new(&socket, timeout, config.retries, stop);
    let started = Instant::now();
    let report = transfer::send(&mut link, &mut source, &negotiated).await;
    let (size, bytes, blocks, blksize) = (
        source.size(),
        report.bytes,
        report.blocks,
        negotiated.blksize,
    );
    let ms = started.elapsed().as_millis() as u64;
    match report.end {
        End::Complete => info!(%peer, %file, bytes, blksize, ms, "tftp sent"),
        End::Aborted { code, message } => {
            info!(%peer, %file, bytes, size, %code, message, "tftp aborted by client")
        }
        End::PeerGone => info!(%peer, %file, bytes, size, "tftp client went away"),
        End::TimedOut { block } => {
            let retries = config.retries;
            warn!(%peer, %file, bytes, size, block, retries, "tftp gave up: no acknowledgement")
        }
        End::Stopped => {
            info!(%peer, %file, bytes, size, "tftp transfer stopped: server shutting down");
            reply_error(ErrorCode::NOT_DEFINED, "server shutting down").await;
        }
        End::SourceEnded => {
            warn!(%peer, %file, bytes, size, "tftp source ended before its size; transfer failed");
            reply_error(ErrorCode::NOT_DEFINED, "server read error").await;
        }
        End::Io(e) => {
            warn!(%peer, %file, bytes, size, blocks, error = %e, "tftp transfer failed");
            reply_error(ErrorCode::NOT_DEFINED, "server error").await;
        }
    }
}

async fn send_error(socket: &UdpSocket, code: ErrorCode, message: &str) {
    let _ = socket.send(&packet::error_bytes(code, message)).await;
}

/// A socket for one transfer: the listening address's IP, a fresh port, connected to the peer
/// so that the kernel drops datagrams from anyone else and reports the peer's closed port.
async fn transfer_socket(local: SocketAddr, peer: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::new(local.ip(), 0)).await?;
    socket.connect(peer).await?;
    Ok(socket)
}
