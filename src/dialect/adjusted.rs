//! What a translation changed so that the route's vendor takes a request it would otherwise
//! refuse, as the vendor's docs advise (a `temperature` left out beside Anthropic's thinking, a
//! forced `tool_choice` made `auto`, a hosted tool the vendor cannot run left out of the
//! offer, …). Each change is named by the client's field it touched, a fixed string from the
//! contract rule that made it, never a value from the request, so that it can be a metric
//! label: the answer says them in `x-switchyard-adjusted` (comma-separated, in the order made)
//! and `switchyard_request_adjustments_total{adjustment}` counts them, once per request.
//!
//! A change that would alter what the request means (an image that cannot travel) is never
//! an adjustment: it is a 400 naming the field.

/// The response header that lists a request's adjustments.
pub const HEADER: &str = "x-switchyard-adjusted";

/// The adjustments made to one attempt's request, in the order made, each once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adjustments(Vec<&'static str>);

impl Adjustments {
    /// Notes that `field` (the client's field, as the door names it: `temperature`,
    /// `tool_choice`, `tools.web_search`) was changed for the vendor.
    pub fn note(&mut self, field: &'static str) {
        if !self.0.contains(&field) {
            self.0.push(field);
        }
    }

    /// Adds every adjustment of `other` (a door's leg's, then the vendor's leg's).
    pub fn extend(&mut self, other: &Adjustments) {
        for field in &other.0 {
            self.note(field);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The adjustments, in the order made.
    pub fn as_slice(&self) -> &[&'static str] {
        &self.0
    }

    /// The adjustments, in the order made.
    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().copied()
    }

    /// The value of [`HEADER`]: the fields, comma-separated; `None` when nothing changed.
    pub fn header_value(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_field_once_in_the_order_made() {
        let mut a = Adjustments::default();
        assert_eq!(a.header_value(), None);
        a.note("temperature");
        a.note("tool_choice");
        a.note("temperature");
        let mut b = Adjustments::default();
        b.note("top_k");
        b.note("tool_choice");
        a.extend(&b);
        assert_eq!(
            a.header_value().as_deref(),
            Some("temperature, tool_choice, top_k")
        );
        assert_eq!(a.iter().count(), 3);
    }
}
