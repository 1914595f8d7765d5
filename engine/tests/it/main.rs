//! The engine's integration tests: one binary, real PostgreSQL with pgvector.
//!
//! `#[sqlx::test]` tests need DATABASE_URL (a superuser on a server with pgvector; `scripts/test.sh`
//! provides one) and each gets its own database. Cluster tests create their own private clusters.
//!
//! One file (or folder) per domain; what several of them share lives in [`fixtures`].

mod backup;
mod console_tools;
mod conversations;
mod crisis;
mod database_tls;
mod db_commands;
mod decision;
mod doctor;
mod embedded_cluster;
mod embeddings;
mod fixtures;
mod knowledge;
mod mail;
mod overview;
mod retention;
mod routing;
mod row_security;
mod schema;
mod server;
mod sla;
mod staff;
mod stats;
mod tickets;
mod turn_atomicity;
mod understanding;
mod web;
