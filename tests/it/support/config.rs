//! `ConfigBody`: the TOML of common test setups, stanza by stanza, for [`Gateway::start`] and
//! [`Gateway::builder`] (which add `[server]` and `[state]`), so tests do not repeat it inline.
//!
//! ```ignore
//! let body = ConfigBody::new()
//!     .usage_log()
//!     .provider("up", "openai", &mock.base_url(), "")
//!     .model("m", &[("up", "upstream-m")])
//!     .team("t", "")
//!     .demo_key("k", "t")
//!     .build();
//! ```
//!
//! Each stanza is written as the README's config reference shows it, a blank line before it.
//!
//! [`Gateway::start`]: super::Gateway::start
//! [`Gateway::builder`]: super::Gateway::builder

#[cfg(test)]
use super::gateway::DEMO_SHA256;

/// The line that lets a test's `x-mock-*` request headers through to a [`super::MockUpstream`]
/// (request headers go upstream by allow-list; `x-mock-*` are on no vendor's list). Raw TOML
/// configs of providers pointing at a `MockUpstream` that a test steers by header add it too.
pub const MOCK_FORWARD_HEADERS: &str = "forward_headers = [\"x-mock-*\"]";

/// A config body being built; [`ConfigBody::build`] gives its text.
#[derive(Clone, Debug, Default)]
pub struct ConfigBody {
    text: String,
}

/// `s` as a TOML basic string (a JSON string literal is one).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// `head`, then the `extra` lines when there are any.
fn with_extra(head: String, extra: &str) -> String {
    match extra.trim() {
        "" => head,
        extra => format!("{head}\n{extra}"),
    }
}

impl ConfigBody {
    pub fn new() -> Self {
        Self::default()
    }

    /// `[log] usage = "{DIR}/usage.jsonl"`: the usage log that [`super::Gateway::usage_lines`]
    /// reads.
    pub fn usage_log(self) -> Self {
        self.text("[log]\nusage = \"{DIR}/usage.jsonl\"")
    }

    /// A `[[providers]]` stanza: `name`, `kind`, `base_url`, then `extra` lines (e.g.
    /// `api_key_env = "…"`). An OpenAI-shaped provider (`openai`, `azure`: the kinds a
    /// [`super::MockUpstream`] serves) also gets [`MOCK_FORWARD_HEADERS`], so that the
    /// `x-mock-*` headers a test sends steer the mock through the gateway's allow-list,
    /// unless `extra` sets `forward_headers` itself.
    pub fn provider(self, name: &str, kind: &str, base_url: &str, extra: &str) -> Self {
        let head = format!(
            "[[providers]]\nname = {}\nkind = {}\nbase_url = {}",
            q(name),
            q(kind),
            q(base_url)
        );
        let mut stanza = with_extra(head, extra);
        if matches!(kind, "openai" | "azure") && !extra.contains("forward_headers") {
            stanza.push('\n');
            stanza.push_str(MOCK_FORWARD_HEADERS);
        }
        self.text(&stanza)
    }

    /// A `[[providers]]` stanza of the built-in mock vendor (`kind = "mock"`).
    pub fn mock_provider(self, name: &str) -> Self {
        self.text(&format!(
            "[[providers]]\nname = {}\nkind = \"mock\"",
            q(name)
        ))
    }

    /// A `[[models]]` stanza with one `[[models.routes]]` per `(provider, upstream model)`.
    pub fn model(self, name: &str, routes: &[(&str, &str)]) -> Self {
        self.model_with(name, "", routes)
    }

    /// [`ConfigBody::model`] with `extra` lines after the name (prices, `fallbacks`, …).
    pub fn model_with(self, name: &str, extra: &str, routes: &[(&str, &str)]) -> Self {
        let mut stanza = with_extra(format!("[[models]]\nname = {}", q(name)), extra);
        for (provider, model) in routes {
            stanza.push_str(&format!(
                "\n  [[models.routes]]\n  provider = {}\n  model = {}",
                q(provider),
                q(model)
            ));
        }
        self.text(&stanza)
    }

    /// A `[[teams]]` stanza with `extra` lines (limits, `models`, …).
    pub fn team(self, name: &str, extra: &str) -> Self {
        self.text(&with_extra(format!("[[teams]]\nname = {}", q(name)), extra))
    }

    /// A `[[keys]]` stanza for [`super::DEMO_SECRET`] (`sha256` = [`DEMO_SHA256`]).
    pub fn demo_key(self, id: &str, team: &str) -> Self {
        self.key(id, team, super::DEMO_SECRET, "")
    }

    /// A `[[keys]]` stanza for `secret` (its SHA-256 in `sha256`), then `extra` lines (e.g.
    /// `disabled = true`).
    pub fn key(self, id: &str, team: &str, secret: &str, extra: &str) -> Self {
        let head = format!(
            "[[keys]]\nid = {}\nteam = {}\nsha256 = \"{}\"",
            q(id),
            q(team),
            super::sha256_hex(secret)
        );
        self.text(&with_extra(head, extra))
    }

    /// Any other TOML, as it is (e.g. a `[limits]` table or a stanza no method writes).
    pub fn text(mut self, toml: &str) -> Self {
        let toml = toml.trim();
        if !toml.is_empty() {
            self.text.push('\n');
            self.text.push_str(toml);
            self.text.push('\n');
        }
        self
    }

    /// The body's text.
    pub fn build(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setup_is_the_toml_it_replaces() {
        let body = ConfigBody::new()
            .usage_log()
            .provider("up", "openai", "http://127.0.0.1:1", "api_key_env = \"K\"")
            .mock_provider("builtin")
            .model_with("m", "fallbacks = [\"n\"]", &[("up", "a"), ("builtin", "b")])
            .team("t", "rpm = 5")
            .demo_key("k", "t")
            .build();
        assert!(body.starts_with("\n[log]\nusage = \"{DIR}/usage.jsonl\"\n\n[[providers]]\n"));
        assert!(body.contains("\n  [[models.routes]]\n  provider = \"builtin\"\n  model = \"b\"\n"));
        let v: toml::Value = toml::from_str(&body.replace("{DIR}", "/tmp")).unwrap();
        let provider = &v["providers"][0];
        assert_eq!(provider["base_url"].as_str(), Some("http://127.0.0.1:1"));
        assert_eq!(provider["api_key_env"].as_str(), Some("K"));
        assert_eq!(provider["forward_headers"][0].as_str(), Some("x-mock-*"));
        assert_eq!(v["providers"][1]["kind"].as_str(), Some("mock"));
        assert_eq!(v["models"][0]["fallbacks"][0].as_str(), Some("n"));
        assert_eq!(v["models"][0]["routes"][1]["model"].as_str(), Some("b"));
        assert_eq!(v["teams"][0]["rpm"].as_integer(), Some(5));
        assert_eq!(v["keys"][0]["sha256"].as_str(), Some(DEMO_SHA256));
    }
}
