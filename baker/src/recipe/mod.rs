//! Recipe models: declarative descriptions of what baker builds.

pub mod stemcell;
