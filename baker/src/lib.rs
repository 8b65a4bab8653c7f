//! baker: PiFoundry's build pipeline.
//!
//! Reads, verifies and rewrites BOSH release tarballs exactly as bosh-cli writes them, and
//! bakes Raspberry Pi stemcells from declarative recipes.

pub mod archive;
pub mod atomic;
pub mod audit;
pub mod bake;
pub mod bootcheck;
pub mod cmd;
pub mod fetch;
pub mod image;
pub mod lock;
pub mod recipe;
pub mod release;
pub mod rewrite;
pub mod stemcell;
