//! A read-only TFTP server for network-booting Raspberry Pis, embedded by powerd.
//!
//! It speaks RFC 1350 in octet mode with the options the Pi bootloaders use: `blksize`
//! (RFC 2348), `timeout` and `tsize` (RFC 2349), negotiated per RFC 2347. Write requests and
//! the netascii and mail modes are refused with a TFTP error. What a request gets is decided
//! by a [`Resolver`] the embedding daemon implements: it sees the client's address and a
//! [`RequestPath`] that has already been checked (relative, no `..`, no NUL or other control
//! characters, no backslash), and returns a [`Source`] of known size or "not found".
//!
//! Each transfer runs in its own task with its own socket; a file is streamed from its source
//! (one read-ahead buffer and one block per transfer, whatever the file's size). Lost packets
//! are retransmitted on timeout a bounded number of times; duplicate ACKs never cause a
//! resend; a client's ERROR (the Pi's probe-and-abort) ends its transfer at once; block
//! numbers wrap past 65535. [`Server::serve_until`] shuts down gracefully.
//!
//! The packet parser, [`parse`], is a pure function over bytes, public for fuzzing.
//!
//! # Example
//!
//! A resolver that serves each Pi's boot files from `boot/<serial>/`, renders its
//! `cmdline.txt`, and answers "not found" to everyone else:
//!
//! ```no_run
//! use std::io;
//! use pifoundry_tftp::{Config, ReadRequest, Resolver, Server, ServedDir, Source};
//!
//! struct Pis {
//!     boot: ServedDir,
//! }
//!
//! impl Resolver for Pis {
//!     async fn resolve(&self, request: &ReadRequest) -> io::Result<Option<Source>> {
//!         let (serial, Some(file)) = request.path.split_first() else {
//!             return Ok(None); // e.g. bootcode.bin at the root
//!         };
//!         if serial != "1a2b3c4d" {
//!             return Ok(None); // an unknown Pi: record it, serve it nothing
//!         }
//!         if file.as_str() == "cmdline.txt" {
//!             let cmdline = format!("root=/dev/nbd0 ip={}\n", request.peer.ip());
//!             return Ok(Some(Source::from_bytes(cmdline)));
//!         }
//!         self.boot.open_file(&request.path).await
//!     }
//! }
//!
//! # async fn run() -> io::Result<()> {
//! let pis = Pis { boot: ServedDir::open("/var/lib/powerd/boot")? };
//! let server = Server::bind("127.0.0.1:69".parse().unwrap(), pis, Config::default()).await?;
//! server.serve_until(async { tokio::signal::ctrl_c().await.unwrap() }).await
//! # }
//! ```

mod options;
pub mod packet;
mod path;
mod resolver;
mod server;
mod source;
mod transfer;

pub use packet::parse;
pub use path::{MAX_PATH_LEN, PathError, RequestPath};
pub use resolver::{ReadRequest, Resolver};
pub use server::{Config, Server};
pub use source::{ServedDir, Source};
