//! Who may do what: authentication (keys of the config or issued at runtime, and JWTs of identity providers), content filters, attribution below the key, rate limits
//! and budgets (per key, team and end user), model resolution
//! and routing, and the passive health of routes.

pub mod attribution;
pub mod auth;
pub(crate) mod content_filter;
pub(crate) mod health;
pub mod jwt;
pub mod limits;
pub(crate) mod models;
pub(crate) mod router;
pub mod runtime_keys;
