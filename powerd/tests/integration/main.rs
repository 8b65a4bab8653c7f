//! powerd's integration tests, one binary: a real powerd on an ephemeral loopback port (the
//! library's server, or the `powerd` executable), configured from real files, driven over
//! HTTP by `powerd-client`.

#[path = "../support/mod.rs"]
mod support;

mod api;
mod attach_helper;
mod block;
mod block_access;
mod block_faults;
mod cli_errors;
mod crash_safety;
mod daemon;
mod interop;
mod load_faults;
mod openapi_conformance;
mod pinet_dhcp;
mod pinet_http;
mod pinet_tftp;
mod provision;
mod provision_disks;
mod provision_restart;
