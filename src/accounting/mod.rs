//! What an answer used and cost: the meter that reads usage from the answer's bytes, the
//! normalised usage and its cost, estimates when a vendor reports none, and the usage log.

pub(crate) mod estimate;
pub mod meter;
pub mod usage;
pub(crate) mod usage_log;
