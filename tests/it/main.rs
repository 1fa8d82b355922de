//! The integration tests, one crate so that `support` (the mock vendors, the gateway
//! harness) compiles once: a module per area. `tests/limits.rs` stays a crate of its own
//! (its tests take turns and need the machine to themselves; see its `TURN`).
//!
//! Run one area with `cargo test --test it <area>::`, e.g. `cargo test --test it hot_reload::`.

// Test and bench code: a failed expectation panics with its message, which is the report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod attribution;
mod bedrock;
mod budget_gauges;
mod claude_code_requests;
mod cli;
mod client_leaves;
mod config_check;
mod content_filter;
mod contract_rules;
mod converse;
mod cross_vendor;
mod docs_examples;
mod downstream;
mod embeddings;
mod failure_mocks;
mod faults;
mod first_hour;
mod gateway_core;
mod gemini_door;
mod gemini_door_attacks;
mod gemini_translated;
mod generative;
mod golden;
mod graceful;
mod hardening;
mod hosted_tools;
mod hot_reload;
mod jwt;
mod key_file;
mod models_endpoint;
mod native_messages;
mod ops_kit;
mod pricing;
mod real_clients;
mod real_clients_gemini;
mod real_clients_vercel;
mod redis_cluster;
mod redis_tls;
mod refusals;
mod request_headers;
mod responses;
mod responses_state;
mod routing;
mod runtime_keys;
mod stream_failover;
mod support_selftest;
mod telemetry;
mod tls_listener;
mod translation;
mod upstream_pool;
mod upstream_wire;
mod upstream_wire_adversarial;
mod usage_billing;
mod usage_metrics;
mod usage_report;
mod vendor_errors;
mod vendor_rules;
mod vendor_state_store;
mod vertex;
