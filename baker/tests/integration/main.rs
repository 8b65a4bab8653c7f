//! baker's integration tests, one binary: the `baker` executable and the library against
//! real inputs — bosh-cli's reference releases, real tar/gzip, real ELF files, real Debian
//! roots (mmdebstrap + qemu-user), real disk images and a real QEMU boot.

#[path = "../support/mod.rs"]
mod support;

mod audit;
mod bake_engine;
mod bake_stemcell;
mod bootcheck;
mod cli_errors;
mod content_pins;
mod crash_safety;
mod fetch;
mod image;
mod lock_go;
mod recipe_validation;
mod release_bad_input;
mod release_vectors;
mod rewrite_release;
mod shipped_recipes;
mod stemcell_files;
