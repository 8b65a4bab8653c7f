//! The CLI's commands, kept out of `main.rs` so they can be tested and reused.

pub mod audit;
pub mod blobs;
pub mod release;
pub mod rewrite;
pub mod stemcell;
