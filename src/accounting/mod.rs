//! What an answer used and cost: the meter that reads usage from the answer's bytes, the
//! normalised usage and its cost at the model's prices ([`prices`]), estimates when a vendor
//! reports none, the usage log, and the report read back from it (`switchyard usage`).

pub(crate) mod estimate;
pub mod meter;
pub mod prices;
pub mod report;
pub mod usage;
pub(crate) mod usage_log;
