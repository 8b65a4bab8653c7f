//! Subcommand arguments and handlers; `main.rs` only dispatches.

pub mod audit;
pub mod blobs;
