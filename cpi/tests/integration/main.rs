//! The CPI executable end to end: the protocol, and calls against a real powerd.

#[path = "../support/mod.rs"]
mod support;

mod powerd;
mod protocol;
// With powerd's provisioning (prov) and the Pi-network services (pinet) on main, add:
// mod concurrency; mod lifecycle;
// (lifecycle's attach/detach needs pinet's attach HTTP; prov alone serves a stand-in)
