//! Amal engine: the domain logic of the Amal support-chat service.
//!
//! People write to the service; the engine decides per message whether the assistant answers
//! from the approved knowledge base or a human takes over through a support ticket. This crate
//! holds all of it, with no UI dependencies: the server, the workers, the admin CLI and the
//! operator console are its clients.
//!
//! Modules by domain area, each owning its queries:
//! - [`db`]: connection pool, migrations and the embedded PostgreSQL cluster;
//! - [`doctor`]: the database health check;
//! - [`seed`]: reference and demo data.

pub mod config;
pub mod db;
pub mod doctor;
pub mod seed;

pub use config::Config;
