//! The CPI executable end to end: the protocol, and calls against a real powerd.

#[path = "../support/mod.rs"]
mod support;

mod concurrency;
mod lifecycle;
mod powerd;
mod protocol;
