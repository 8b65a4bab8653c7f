//! powerd: the controller Pi's power daemon. It owns the switches that power the worker Pis
//! (GPIO relays, shell commands for hubs, PoE ports and plugs, an in-memory sim) and exposes
//! them through an authenticated HTTP API (`/v1` and a Redfish subset). The API's wire types
//! and its client are the `powerd-client` crate.

pub mod api;
pub mod auth;
pub mod block;
pub mod clock;
pub mod config;
pub mod ctl;
pub mod metrics;
pub mod outlet;
pub mod pinet;
pub mod power;
pub mod provision;
pub mod server;
pub mod state;
