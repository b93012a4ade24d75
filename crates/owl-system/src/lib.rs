//! # owl-system
//!
//! The demo system's domain, free of any web concern (the way Phoenix
//! splits `my_system` from `my_system_web`):
//!
//! - [`system`]: the one place that assembles the system — configuration
//!   in, a started supervision tree out ([`System`]).
//! - [`load`]: load control — up to ten million supervised background
//!   jobs, one figure to set, sampled ten times a second for the charts.
//! - [`board`]: the bulletin board — topics, durable posts (SQLite, group
//!   commit), a save process per post, live updates by process group.
//! - [`math`]: the talk's calculation — input rules, the `math` guest and
//!   its versions, fair admission, the math supervisor.
//! - [`operator`]: what the person running the node does — list, top,
//!   stack, trace, kill, upgrade, figures — for the console, the dashboards
//!   and `/metrics` alike.
//! - [`at`]: one handle for any node — this one, or another of the
//!   cluster — for the dashboards, `/metrics` and the console.
//! - [`console`]: the console's commands as data, and running them.
//! - [`access`]: the admin token's rules.
//! - [`visitors`]: who asks — signed visitor cookies, addresses.
//! - [`listener`]: a listening socket served by a supervised process.
//! - [`host`]: the machine's own figures (CPU, memory, disk) from the OS.
//!
//! Web pages, the JSON API and the console call into this crate; they never
//! start guests or reach the sandbox themselves.

pub mod access;
pub mod at;
pub mod board;
pub mod console;
pub mod duration;
pub mod host;
pub mod listener;
pub mod load;
pub mod math;
pub mod node_service;
pub mod operator;
mod rate;
pub mod system;
pub mod visitors;

pub use system::{Config, Services, System};
