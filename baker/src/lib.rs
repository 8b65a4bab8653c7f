//! baker: PiFoundry's build pipeline.
//!
//! Rewrites BOSH release tarballs for ARM and bakes Raspberry Pi stemcells from declarative
//! recipes. The BOSH formats themselves (tar + gzip, releases, stemcells) are the
//! `pifoundry-bosh` crate, re-exported here as [`archive`], [`release`] and [`stemcell`];
//! atomic files, hashing, the tool runner and [`pifoundry_util::Arch`] are `pifoundry-util`.

pub use pifoundry_bosh::{archive, release, stemcell};

pub mod audit;
pub mod bake;
pub mod blobs;
pub mod blobs_go;
pub mod blobs_lock;
pub mod bootcheck;
pub mod cmd;
pub mod fetch;
pub mod image;
pub mod recipe;
pub mod rewrite;
