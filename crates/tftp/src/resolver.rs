//! The seam between the server and the daemon that embeds it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use crate::{RequestPath, ServedDir, Source};

/// A read request as the resolver sees it: who asks, and for which (already checked) path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadRequest {
    /// The client's address and port, as the datagram came.
    pub peer: SocketAddr,
    /// The requested file, relative and normalised (see [`RequestPath`]).
    pub path: RequestPath,
}

impl ReadRequest {
    /// A request, for testing a resolver outside the server.
    pub fn new(peer: SocketAddr, path: RequestPath) -> ReadRequest {
        ReadRequest { peer, path }
    }
}

/// Decides what each read request gets. The embedding daemon implements it: this is where a
/// Pi's serial prefix maps to its boot files, where rendered files come from, and where an
/// unknown serial is recorded.
///
/// `Ok(None)` answers "file not found". `Err` is logged and answered with a generic error
/// (an access violation for `PermissionDenied`), so its text never reaches the network.
/// Every request runs in its own task: a slow resolver delays only its own client.
pub trait Resolver: Send + Sync + 'static {
    fn resolve(
        &self,
        request: &ReadRequest,
    ) -> impl Future<Output = io::Result<Option<Source>>> + Send;
}

/// Serves the directory's files to every peer alike.
impl Resolver for ServedDir {
    async fn resolve(&self, request: &ReadRequest) -> io::Result<Option<Source>> {
        self.open_file(&request.path).await
    }
}
