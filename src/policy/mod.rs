//! Who may do what: authentication, content filters, rate limits and budgets, model resolution
//! and routing, and the passive health of routes.

pub mod auth;
pub mod content_filter;
pub mod health;
pub mod limits;
pub mod models;
pub mod router;
