//! powerd-client: powerd's wire types and a small HTTP client for its API.
//!
//! - [`types`]: the JSON of `/v1` — [`Outlet`], [`PowerState`], [`PowerRequest`], the error
//!   body [`ErrorBody`] and its stable [`codes`]. powerd serialises its answers with them.
//! - [`Client`]: async (tokio), typed calls ([`Client::outlets`], [`Client::set_power`], …)
//!   plus raw [`Client::call`] / [`Client::send`] for tests and tools;
//!   [`blocking::Client`] for one-shot processes such as the CPI.
//! - typed calls of the provisioning API on both clients ([`Client::create_vm`],
//!   [`Client::attach_disk`], …) and [`Client::upload_image`], which streams an image from
//!   a file; every [`ClientError`] tells its powerd `code` and whether it is
//!   [`retryable`](ClientError::retryable).
//! - [`provision`]: the JSON of the provisioning API — the Pi inventory ([`provision::Pi`]),
//!   images, VMs ([`provision::CreateVm`]), disks, and the attachments the Pi's attach helper
//!   polls on the Pi network.
//!
//! ```no_run
//! use powerd_client::{Credentials, PowerState, blocking};
//! # fn main() -> Result<(), powerd_client::ClientError> {
//! let powerd = blocking::Client::new("http://127.0.0.1:9750", Credentials::Bearer("T".into()))?;
//! let outlet = powerd.set_power("n1", PowerState::On)?;
//! println!("{} is {}", outlet.id, outlet.state);
//! # Ok(()) }
//! ```
//!
//! It does not link axum, rppal or prometheus.

pub mod blocking;
mod calls;
mod client;
pub mod provision;
pub mod types;

pub use client::{Body, Client, ClientError, Credentials, Response};
pub use hyper::{Method, StatusCode};
pub use types::{ErrorBody, ErrorDetail, Outlet, OutletList, PowerRequest, PowerState, codes};
