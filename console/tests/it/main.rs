//! The console's integration tests: one binary (snapshots of every screen, theme files, and the
//! end-to-end run of the real `amal` binary in tmux against a real database).

mod admin;
mod e2e;
mod fixtures;
mod shift;
mod snapshots;
mod themes;
mod tools;
