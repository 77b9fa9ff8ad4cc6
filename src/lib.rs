//! icl-lab: a terminal lab notebook for in-context-learning research.
//!
//! Data flows spec -> train (tasks, models) -> report; see docs/architecture.md.

pub mod cli;
pub mod models;
pub mod report;
pub mod runtime;
pub mod spec;
pub mod store;
pub mod tasks;
pub mod train;
pub mod tui;
