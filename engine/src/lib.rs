//! Amal engine: the domain logic of the Amal support-chat service.
//!
//! People write to the service; the engine decides per message whether the assistant answers
//! from the approved knowledge base or a human takes over through a support ticket. This crate
//! holds all of it, with no UI dependencies: the server, the workers, the admin CLI and the
//! operator console are its clients.
//!
//! Modules by domain area, each owning its queries:
//! - [`db`]: connection pool, migrations and the embedded PostgreSQL cluster;
//! - [`conversations`]: conversations, messages and the turn (message, decision, reply, ticket);
//! - [`decision`]: the AUTO decision (crisis gate, explicit requests for a human);
//! - [`doctor`]: the database health check;
//! - [`seed`]: reference and demo data;
//! - [`events`]: the NOTIFY channel that keeps consoles live;
//! - [`audit`]: the audit trail of staff actions;
//! - [`staff`]: staff accounts, roles and permissions;
//! - [`presence`]: who is on shift: profiles (languages, tier, capacity, on-call) and presence;
//! - [`routing`]: which online member a new ticket goes to, offers, on-call alerts;
//! - [`lookups`]: the reference lookups' names in the three languages;
//! - [`lang`]: the three languages, detection and folding for matching;
//! - [`knowledge`]: the knowledge base (ingestion, review, embeddings, hybrid retrieval);
//! - [`canned`]: canned replies staff insert into a reply, with placeholders;
//! - [`tickets`]: support tickets, the work queue, assignment, lifecycle, escalation, comments;
//! - [`sla`]: SLA targets and clocks, pause and resume, business hours, the breach sweeper;
//! - [`simulator`]: demo traffic for the console;
//! - [`stats`]: support statistics from the reporting views;
//! - [`retention`]: retention periods and the run that removes what is past them;
//! - [`users`]: end users' sign-in, sessions, consent, preferences, export and forgetting;
//! - [`server`]: the HTTP API for chat clients (`amal-engine serve`);
//! - [`workers`]: the server's background jobs, safe with several instances.

pub mod admin;
pub mod audit;
pub mod canned;
pub mod config;
pub mod conversations;
pub mod db;
pub mod decision;
pub mod doctor;
pub mod events;
pub mod knowledge;
pub mod lang;
pub mod lookups;
pub mod mail;
pub mod presence;
pub mod privacy;
pub mod retention;
pub mod roster;
pub mod routing;
pub mod seed;
pub mod server;
pub mod sessions;
pub mod simulator;
pub mod sla;
pub mod staff;
pub mod stats;
pub mod tickets;
pub mod turn;
pub mod users;
pub mod workers;

pub use config::Config;
