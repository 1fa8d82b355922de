//! Switchyard: an LLM gateway on pingora. One endpoint, one kind of key, many vendors.
//!
//! The folders are the gateway's parts. Read them in the order a request meets them:
//!
//! 1. `server`: the listeners. pingora accepts the client's connection (TLS from `server::tls`,
//!    port-0 listeners reserved and reported by `server::bind`); `server::downstream` reads
//!    each request head in turn and `server::request_head` caps its size; `server::probe`
//!    answers load balancers' health probes on the API port; `server::admin` serves
//!    `/metrics`, `/healthz` and `/readyz` on a listener of its own; `server::drain` ends a
//!    graceful stop early.
//! 2. [`gateway`]: the request path, one file per phase in the order a request meets them (its
//!    module doc is the map): `admit` (door — chat, Messages, Responses, Embeddings, Gemini —,
//!    key, body, views, policies, model, limits, first
//!    route), `attempt` (the forward loop, one try at a time), `answer` (hold, release, relay)
//!    and `account` (counted once). The body is read by [`dialect::body`] and viewed in its
//!    door's dialect by [`dialect::request`]. Every error the gateway answers itself is an
//!    [`error::GatewayError`], made into its door's shape at one place; every part uses it,
//!    and it imports nothing of the crate.
//! 3. [`config`]: the TOML file, validated section by section into the runtime
//!    [`config::Config`], kept behind an `ArcSwap` that a request takes once, and hot reloaded
//!    on the file watcher.
//! 4. [`policy`]: who may do what: the key ([`policy::auth`]) or the identity provider's JWT
//!    ([`policy::jwt`], its JWK Sets fetched off the request path), content filters, the end user
//!    and tags below the key ([`policy::attribution`]), rate limits and budgets reserved then
//!    settled ([`policy::limits`], memory or Redis), the model and
//!    the route chosen by weight (`policy::router`, `policy::models`), and the passive health
//!    of routes (`policy::health`).
//! 5. [`dialect`]: one folder per wire dialect a client or a vendor speaks, with its wire
//!    types, request view, stream scanner and error shape, over the one SSE decoder (the
//!    Gemini door's paths, both stream framings and Google's errors in `dialect::gemini`); the
//!    request body's JSON view and rewrite ([`dialect::body`]) and the client's request as read
//!    at its door ([`dialect::request`]), which every part below takes.
//! 6. [`convert`]: one module per translated pair of dialects (`<door>_to_<vendor>`), both
//!    ways, streams included, used only when the route's vendor speaks another dialect than
//!    the client's door (decided in one place, `convert::Route`).
//!    A translated request keeps the route's vendor's contract: [`contract`] states each
//!    vendor dialect's documented rules (ids, lengths, parameters that cannot go together,
//!    what a tool result may hold) with their doc sources, and the pairs call them.
//! 7. [`providers`]: one module per vendor kind behind the `Vendor` trait (path, auth, error
//!    rewrapping, config fields), retry hints, and the built-in `mock`; `upstream`: the
//!    gateway's own HTTP/1.1 client to the vendors, with its connection pool.
//! 8. `response_store`: the Responses API's state on translated routes (memory or Redis), and
//!    the vendor state it keeps for chat-door clients that drop `thinking_blocks`.
//! 9. [`accounting`]: usage read from the answer's bytes ([`accounting::meter`]), estimated
//!    when a vendor reports none, priced ([`accounting::usage`] at [`accounting::prices`]) and
//!    logged (`accounting::usage_log`); the log is read back by `switchyard usage`
//!    ([`accounting::report`]).
//! 10. [`observability`]: every Prometheus metric, and OpenTelemetry traces.
//!
//! [`cli`] is the command line: `serve`, `check`, `prices`, `key new`, `usage`.

pub mod accounting;
pub mod cli;
pub mod config;
pub mod contract;
pub mod convert;
pub mod dialect;
pub mod error;
pub mod gateway;
pub mod observability;
pub mod policy;
pub mod providers;
pub(crate) mod response_store;
pub(crate) mod server;
pub(crate) mod upstream;
