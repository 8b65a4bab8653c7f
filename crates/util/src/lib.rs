//! pifoundry-util: the small pieces every PiFoundry crate uses, each written once.
//!
//! - [`atomic`]: outputs appear whole or not at all (temp file, fsync of file and directory,
//!   rename).
//! - [`background`]: a writer whose bytes are written on a thread of its own.
//! - [`hash`]: SHA-1/256/512 over streams as they pass ([`hash::HashingReader`],
//!   [`hash::HashingWriter`]) and [`hash::hash_file`].
//! - [`tool`]: running an external tool; a failure is one line with the tail of its stderr.
//! - [`error`]: the error convention (messages complete on their own, [`error::PathError`] for
//!   I/O on a named file, [`error::BadInput`] for a file that cannot be used) and
//!   [`error::chain`], how a CLI prints what reached it.
//! - [`name`]: names and identifiers that end up in paths, URLs and commands.
//! - [`arch`]: the one CPU architecture type, with its GOARCH / GOARM / Debian / ELF / QEMU names.
//!
//! ```
//! use pifoundry_util::{Arch, atomic, hash};
//! # let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("state.json");
//! atomic::write(&path, b"{}").unwrap();
//! assert_eq!(hash::hash_file(&path).unwrap().1, 2);
//! assert_eq!(Arch::Armv6l.goarm(), Some("6"));
//! ```

pub mod arch;
pub mod atomic;
pub mod background;
pub mod error;
pub mod hash;
pub mod name;
pub mod tool;

pub use arch::Arch;
pub use error::{BadInput, PathError};
