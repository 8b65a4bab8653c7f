//! Recipes: declarative inputs to baker's pipelines.

pub mod release;
pub mod stemcell;
