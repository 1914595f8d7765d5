//! The AUTO decision: for every message, whether the assistant answers or a human takes over.
//!
//! The steps run in a fixed order, and the first ones are deterministic so that no model or
//! setting can override them:
//! 1. [`crisis`]: the crisis gate (suicidal ideation, self-harm, overdose or poisoning, immediate
//!    danger) — a match means SUPPORT, category crisis, priority urgent, and a fixed safety message;
//! 2. [`human_request`]: an explicit request for a human means SUPPORT;
//! 3. [`scope`]: a message about another subject (weather, football, paperwork) gets a reply
//!    saying what the service helps with, and no ticket.
//!
//! Both detectors share [`crate::lang::normalize`] (text folding, tokens, language guess) and [`rules`] (the
//! clinician-readable rule files and their small pattern language).

pub mod answer;
pub mod auto;
pub mod bank;
pub mod crisis;
pub mod human_request;
pub mod llm;
pub mod replies;
pub mod rules;
pub mod scope;
