//! Switchyard: an LLM gateway on pingora. One endpoint, one kind of key, many vendors.
//!
//! A request goes through [`proxy::Gateway`] (pingora's `ProxyHttp`), whose phases call the
//! plain functions of the modules below, each one concern:
//!
//! - [`config`]: the TOML file → validated runtime [`config::Config`];
//! - [`snapshot`]: the running config behind an `ArcSwap`, taken once per request;
//! - [`reload`]: hot reload (file watch with `notify`, SIGHUP) → validate → swap the snapshot;
//! - [`downstream`]: the client's connection after a stream that failed mid-way;
//! - [`request_head`]: caps on the request line and headers, checked first on every listener;
//! - [`auth`]: bearer secret → key and team (SHA-256, constant-time compare);
//! - [`body`]: the bounded body read and the request rewrite that splices raw JSON;
//! - [`limits`]: rate limits and budgets per key and team (memory or Redis), reserved then settled;
//! - [`router`]: model resolution, the team allow-list, weighted route choice;
//! - [`providers`]: what each vendor kind needs (paths, auth headers, the built-in mock);
//! - [`response_headers`]: the allow-list of a vendor's response headers the client gets;
//! - [`error`]: every error Switchyard answers, in the spec's JSON shape;
//! - [`sse`]: the incremental SSE scanner that reads usage from a passing stream;
//! - [`usage`]: metering, estimation, cost and the usage log;
//! - [`metrics`]: every Prometheus metric of the spec;
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz` on the admin listener.

pub mod admin;
pub mod auth;
pub mod body;
pub mod cli;
pub mod config;
pub mod downstream;
pub mod drain;
pub mod error;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod policy;
pub mod providers;
pub mod proxy;
pub mod reload;
pub mod request_head;
pub mod response_headers;
pub mod router;
pub mod snapshot;
pub mod sse;
pub mod usage;
