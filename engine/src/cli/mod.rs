//! The admin CLI's subcommands, one module per domain area.

pub mod canned;
pub mod chat;
pub mod conversation;
pub mod crisis;
pub mod db;
pub mod decide;
pub mod kb;
pub mod retention;
pub mod serve;
pub mod simulate;
pub mod sla;
pub mod staff;
pub mod stats;
pub mod ticket;
