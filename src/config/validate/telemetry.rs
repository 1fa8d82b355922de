//! `[telemetry]`: the OTLP/HTTP collector, its sampling and queue.

use toml::Spanned;

use super::checks::{non_blank, positive};
use super::providers::{parse_base_url, resolve_unless_offline};
use super::{Result, Source};
use crate::config::raw;
use crate::config::TelemetryConfig;

pub(super) fn telemetry(
    src: &Source,
    section: &Spanned<raw::Telemetry>,
) -> Result<TelemetryConfig> {
    let t = section.get_ref();
    let Some(endpoint) = &t.endpoint else {
        return Err(src.at(
            section,
            "telemetry.endpoint",
            "[telemetry] requires endpoint, the collector's OTLP/HTTP URL such as \"http://127.0.0.1:4318\"",
        ));
    };
    let at = |reason: String| src.at(endpoint, "telemetry.endpoint", reason);
    let url = parse_base_url(endpoint.get_ref()).map_err(at)?;
    if url.tls {
        return Err(at(format!(
            "{:?}: the OTLP exporter speaks plain http://; send spans to a local collector",
            endpoint.get_ref()
        )));
    }
    // Offline a host name is not resolved: the unspecified address stands in for it.
    let addr = resolve_unless_offline(src, &url.host, url.port)
        .map_err(at)?
        .first()
        .copied()
        .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], url.port)));
    let path = if url.base_path.ends_with("/v1/traces") {
        url.base_path
    } else {
        format!("{}/v1/traces", url.base_path)
    };
    Ok(TelemetryConfig {
        endpoint: endpoint.get_ref().clone(),
        addr,
        host_header: url.host_header,
        path,
        sample_ratio: sample_ratio(src, t.sample_ratio.as_ref())?,
        service_name: match &t.service_name {
            Some(n) => non_blank(src, n, "telemetry.service_name")?,
            None => "switchyard".to_string(),
        },
        max_queue_size: match &t.max_queue_size {
            Some(n) => positive(src, n, "telemetry.max_queue_size", 1_000_000)? as usize,
            None => 2048,
        },
    })
}

fn sample_ratio(src: &Source, v: Option<&Spanned<toml::Value>>) -> Result<f64> {
    let Some(v) = v else { return Ok(1.0) };
    let ratio = match v.get_ref() {
        toml::Value::Integer(n) => *n as f64,
        toml::Value::Float(f) => *f,
        _ => f64::NAN,
    };
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(src.at(
            v,
            "telemetry.sample_ratio",
            "must be a number from 0 to 1 (the share of new traces sampled)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::validate::testing::*;

    #[test]
    fn telemetry_section_checks() {
        assert_eq!(load("").unwrap().telemetry, None);
        let t = load("[telemetry]\nendpoint = \"http://127.0.0.1:4318\"\n")
            .unwrap()
            .telemetry
            .unwrap();
        assert_eq!(t.addr, "127.0.0.1:4318".parse().unwrap());
        assert_eq!(t.path, "/v1/traces");
        assert_eq!(t.host_header, "127.0.0.1:4318");
        assert_eq!(
            (t.sample_ratio, t.service_name.as_str()),
            (1.0, "switchyard")
        );
        assert_eq!(t.max_queue_size, 2048);
        let t = load(
            "[telemetry]\nendpoint = \"http://127.0.0.1:4318/otlp/v1/traces\"\nsample_ratio = 0.25\nservice_name = \"gw\"\nmax_queue_size = 10\n",
        )
        .unwrap()
        .telemetry
        .unwrap();
        assert_eq!(t.path, "/otlp/v1/traces");
        assert_eq!((t.sample_ratio, t.service_name.as_str()), (0.25, "gw"));
        assert_eq!(t.max_queue_size, 10);
        let ratio = |r: &str| {
            load(&format!(
                "[telemetry]\nendpoint = \"http://127.0.0.1:4318\"\nsample_ratio = {r}\n"
            ))
        };
        assert_eq!(ratio("0").unwrap().telemetry.unwrap().sample_ratio, 0.0);
        assert_eq!(ratio("1").unwrap().telemetry.unwrap().sample_ratio, 1.0);
        let section =
            |rest: &str| format!("[telemetry]\nendpoint = \"http://127.0.0.1:4318\"\n{rest}");
        rejects(
            &section("sample_ratio = 1.5 # <-\n"),
            "telemetry.sample_ratio",
            "from 0 to 1",
        );
        rejects(
            &section("sample_ratio = \"all\" # <-\n"),
            "telemetry.sample_ratio",
            "from 0 to 1",
        );
        rejects(
            &section("service_name = \" \" # <-\n"),
            "telemetry.service_name",
            "must not be empty",
        );
        rejects(
            &section("max_queue_size = 0 # <-\n"),
            "telemetry.max_queue_size",
            "positive integer",
        );
        rejects(
            &section("headers = 1 # <-\n"),
            "telemetry.headers",
            "unknown field",
        );
        rejects(
            "[telemetry]\nendpoint = \"https://127.0.0.1:4318\" # <-\n",
            "telemetry.endpoint",
            "plain http://",
        );
        rejects(
            "[telemetry]\nendpoint = \"127.0.0.1:4318\" # <-\n",
            "telemetry.endpoint",
            "must start with http://",
        );
        rejects(
            "[telemetry] # <-\nsample_ratio = 0.5\n",
            "telemetry.endpoint",
            "requires endpoint",
        );
    }
}
