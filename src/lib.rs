//! Switchyard: an LLM gateway on pingora. One endpoint, one kind of key, many vendors.
//!
//! A request goes through [`proxy::Gateway`] (a pingora `HttpServerApp`), whose steps call the
//! plain functions of the modules below, each one concern:
//!
//! - [`config`]: the TOML file → validated runtime [`config::Config`];
//! - [`snapshot`]: the running config behind an `ArcSwap`, taken once per request;
//! - [`reload`]: hot reload (file watch with `notify`, SIGHUP) → validate → swap the snapshot;
//! - [`downstream`]: the client's connection: each request head, keep-alive or close;
//! - [`request_head`]: caps on the request line and headers, checked first on every listener;
//! - [`auth`]: bearer secret → key and team (SHA-256, constant-time compare);
//! - [`body`]: the bounded body read and the request rewrite that splices raw JSON;
//! - [`request`]: the client's request as read at its front door, and its native splice;
//! - [`limits`]: rate limits and budgets per key and team (memory or Redis), reserved then settled;
//! - [`router`]: model resolution, the team allow-list, weighted route choice;
//! - [`models`]: `/v1/models` and which doors a model serves (chat or embedding);
//! - [`response_store`]: the Responses API's state on translated routes (memory or Redis);
//! - [`retry_hint`]: how long a vendor asks to be left alone, in every form vendors use;
//! - [`providers`]: what each vendor kind needs (paths, auth headers, the built-in mock);
//! - [`response_headers`]: the allow-list of a vendor's response headers the client gets;
//! - [`error`]: every error Switchyard answers, in the spec's JSON shape;
//! - [`sse`]: the one SSE decoder that every stream scanner and translator reads through;
//! - [`dialect`]: one module per wire dialect: request view, stream scanner, error shape;
//! - [`convert`]: one module per translated pair of dialects, both ways, streams included;
//! - [`meter`]: reads an answer's usage from the bytes that go to the client;
//! - [`usage`]: the normalised usage of an answer, estimates and cost;
//! - [`usage_log`]: one JSON line per request, written off the request path;
//! - [`metrics`]: every Prometheus metric of the spec;
//! - [`admin`]: `/metrics`, `/healthz`, `/readyz` on the admin listener;
//! - [`tls`]: the listeners' certificate pair, checked, served and rotated without a restart.

pub mod admin;
pub mod auth;
pub mod body;
pub mod cli;
pub mod config;
pub mod convert;
pub mod dialect;
pub mod downstream;
pub mod drain;
pub mod error;
pub mod estimate;
pub mod failed;
pub mod health;
pub mod limits;
pub mod meter;
pub mod metrics;
pub mod models;
pub mod policy;
pub mod providers;
pub mod proxy;
pub mod reload;
pub mod request;
pub mod request_head;
pub mod response_headers;
pub mod response_store;
pub mod retry_hint;
pub mod router;
pub mod snapshot;
pub mod sse;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod usage;
pub mod usage_log;
