//! The Amal operator console: a ratatui front end over the engine library.
//!
//! - [`app`]: the router: keys, clicks, actions and data to the screen they concern;
//! - [`screens`]: one type per screen with its state, data handling, actions and drawing;
//! - [`chrome`]: header, banner, status line, footer and the overlays;
//! - [`ui`]: drawing the whole console, from a shared reference to the state;
//! - [`widgets`]: drawing pieces the screens and the chrome share;
//! - [`data`]: the worker that runs database work off the render loop, and the live listener;
//! - [`action`]: the key map, the one source of the help, footer and command palette;
//! - [`theme`]: themes from TOML, adapted to the terminal's colours;
//! - [`config`]: the optional configuration file;
//! - [`bidi`]: right-to-left text for terminals without bidi support.

pub mod action;
pub mod app;
pub mod bidi;
pub mod chrome;
pub mod config;
pub mod data;
pub mod screens;
pub mod theme;
pub mod ui;
pub mod widgets;
