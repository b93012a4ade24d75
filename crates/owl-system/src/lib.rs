//! # owl-system
//!
//! The domain of the demo system, free of any web concern (the way Phoenix
//! splits `my_system` from `my_system_web`):
//!
//! - [`math`]: the talk's calculation — input rules, the `math` guest module
//!   and its versions, the math supervisor that holds every running
//!   calculation.
//! - [`observe`]: what the operator looks at, shared by the console and the
//!   dashboards — process lists by work, system figures, `kill_all`.
//!
//! Web pages, the JSON API and the console call into this crate; they never
//! start guests themselves.

pub mod math;
pub mod observe;
