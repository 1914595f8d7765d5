//! The engine's integration tests: one binary, real PostgreSQL with pgvector.
//!
//! `#[sqlx::test]` tests need DATABASE_URL (a superuser on a server with pgvector; `scripts/test.sh`
//! provides one) and each gets its own database. Cluster tests create their own private clusters.

mod cli;
mod cluster;
mod common;
mod console_views;
mod conversations;
mod crash;
mod crisis;
mod decision;
mod doctor;
mod knowledge;
mod schema;
mod server;
mod sla;
mod staff;
mod stats;
mod tickets;
