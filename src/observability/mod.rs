//! What operators see: Prometheus metrics and OpenTelemetry traces.

pub mod metrics;
pub(crate) mod telemetry;
