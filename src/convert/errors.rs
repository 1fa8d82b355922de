//! The errors translations raise: a client's request a vendor cannot take (400), a vendor's
//! own error reported inside an answer or a stream (its 4xx, or 502), and a vendor answer the
//! gateway cannot read (502). The messages never carry a key or a header.

use crate::error::GatewayError;

/// A 400 about the client's request, saying which vendor could not take what.
pub(crate) fn unsupported(vendor: &str, what: impl std::fmt::Display) -> GatewayError {
    GatewayError::InvalidRequest(format!("{what} (provider kind `{vendor}`)"))
}

/// A vendor's error reported with a status (a mid-stream error event, or an error body in a
/// 200 answer), in the gateway's shape: the client gets the vendor's 4xx about its request,
/// and a 502 for the vendor's own failures and for the gateway's key being refused.
pub(crate) fn vendor_failure(vendor: &str, status: u16, message: &str) -> GatewayError {
    let message: String = message.chars().take(1024).collect();
    match crate::providers::client_status_for_vendor(status) {
        502 => GatewayError::Upstream(format!(
            "the {vendor} provider failed (status {status}): {message}"
        )),
        client => GatewayError::Vendor {
            status: client,
            message,
        },
    }
}

/// A 502 for a vendor answer the gateway cannot read.
pub(crate) fn unreadable(vendor: &str, what: &str, e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Upstream(format!(
        "the {vendor} provider sent {what} that cannot be read: {e}"
    ))
}
