//! Recipes.
pub mod schema;
