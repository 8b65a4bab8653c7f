//! The lab's tests, one binary: the lab's own lifecycle with a stand-in image (seconds),
//! virtual Pis netbooting a baked CI stemcell, one through the CPI (minutes), and, by hand
//! only, a stemcell with the real bosh-agent. All need root.

#[path = "../support/mod.rs"]
mod support;

mod cpi;
mod lifecycle;
mod netboot;
mod real_agent;
