//! pifoundry-bosh's integration tests, one binary: the formats written to real files and read
//! back through the public API.

mod release_dir;
mod stemcell_pack;
