//! Who may do what: authentication, content filters, rate limits and budgets, model resolution
//! and routing, and the passive health of routes.

pub mod attribution;
pub mod auth;
pub(crate) mod content_filter;
pub(crate) mod health;
pub mod limits;
pub(crate) mod models;
pub(crate) mod router;
