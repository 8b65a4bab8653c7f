//! The lab's tests, one binary: the lab's own lifecycle with a stand-in image (seconds), and
//! virtual Pis netbooting a baked CI stemcell (minutes). Both need root.

#[path = "../support/mod.rs"]
mod support;

mod lifecycle;
mod netboot;
