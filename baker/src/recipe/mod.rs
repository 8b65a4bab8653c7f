//! Recipes: declarative inputs to baker's pipelines.

mod extends;
pub mod release;
pub mod stemcell;
