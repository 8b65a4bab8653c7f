//! baker: PiFoundry's build pipeline.
//!
//! Reads, verifies and rewrites BOSH release tarballs exactly as bosh-cli writes them, and
//! bakes Raspberry Pi stemcells from declarative recipes.

pub mod atomic;
pub mod bake;
pub mod recipe;
pub mod stemcell;
