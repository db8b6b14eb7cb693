//! listns: find every Linux namespace on a host and what holds it alive.
//!
//! [`inventory::scan`] takes a snapshot through `/proc` and the nsfs ioctls;
//! [`render`] prints it as tables, trees or JSON.

pub mod cli;
pub mod discover;
pub mod follow;
pub mod inventory;
pub mod model;
pub mod nsfs;
pub mod problems;
pub mod render;
pub mod trace;
