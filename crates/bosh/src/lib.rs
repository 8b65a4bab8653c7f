//! pifoundry-bosh: BOSH's file formats, as bosh-cli reads and writes them, streaming.
//!
//! - [`archive`]: the one place for tar + gzip — a deterministic writer and a safe streaming
//!   reader (and extractor) that refuses entries which could land outside their target.
//! - [`release`]: release tarballs — `release.MF` ([`release::Manifest`]), multi-digests,
//!   fingerprints (SHA-1 and SHA-256 eras), [`release::read`], [`release::writer`] and
//!   [`release::verify()`].
//! - [`stemcell`]: stemcell tarballs — `stemcell.MF` ([`stemcell::Manifest`]),
//!   [`stemcell::pack`] and [`stemcell::inspect`].
//!
//! Reading a release and checking every digest and fingerprint:
//!
//! ```no_run
//! # fn main() -> Result<(), pifoundry_bosh::release::ReleaseError> {
//! let rel = pifoundry_bosh::release::read("release.tgz".as_ref(), None)?;
//! let checked = pifoundry_bosh::release::verify(&rel)?;
//! println!("{} {}: {} archives", rel.manifest.name, rel.manifest.version, checked.archives);
//! # Ok(()) }
//! ```

pub mod archive;
pub mod release;
pub mod stemcell;
