//! powerd's integration tests, one binary: a real powerd on an ephemeral loopback port (the
//! library's server, or the `powerd` executable), configured from real files, driven over
//! HTTP by `powerd-client`.

#[path = "../support/mod.rs"]
mod support;

mod api;
mod cli_errors;
mod crash_safety;
mod daemon;
mod interop;
mod load_faults;
mod openapi_conformance;
mod provision;
mod provision_disks;
mod provision_restart;
