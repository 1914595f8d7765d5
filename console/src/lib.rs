//! The Amal operator console: a ratatui front end over the engine library.
//!
//! - [`app`]: the state and how keys, clicks and data change it (no awaiting);
//! - [`ui`]: drawing, from a shared reference to the state;
//! - [`data`]: the worker that runs database work off the render loop, and the live listener;
//! - [`action`]: the key map, the one source of the help, footer and command palette;
//! - [`theme`]: themes from TOML, adapted to the terminal's colours;
//! - [`config`]: the optional configuration file;
//! - [`bidi`]: right-to-left text for terminals without bidi support.

pub mod action;
pub mod app;
pub mod bidi;
pub mod config;
pub mod data;
pub mod theme;
pub mod ui;
