//! The operations kit (`deploy/`) checked against the code, so that it cannot rot:
//!
//! - every metric, label and label value that the alert rules and the Grafana dashboard use
//!   exists in a real `/metrics` scrape of a gateway that served a mixed run (and of one that
//!   serves TLS and had its certificate replaced);
//! - `promtool check rules` / `check config` accept the Prometheus files, and the dashboard's
//!   queries parse as PromQL (checked by promtool as recording rules);
//! - `systemd-analyze verify` accepts the unit (ExecStart pointed at the built binary);
//! - the Kubernetes manifests parse, fit together (names, ports, mounts, Secret keys) and probe
//!   the admin port and paths that the ConfigMap's config makes the binary serve; that config
//!   parses with the gateway's raw config types and passes `switchyard check`;
//! - the Dockerfile builds a non-root, multi-stage image serving the paths the rest assume.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use support::*;

/// The config file path every deployment form uses.
const CONFIG_PATH: &str = "/etc/switchyard/switchyard.toml";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// -------------------------------------------------------------------------------------------
// The scrape, and the queries of the alert rules and of the dashboard

/// One sample of a Prometheus text exposition.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
}

fn parse_scrape(text: &str) -> Vec<Sample> {
    let label_re = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)""#).unwrap();
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let series = match line.rsplit_once(' ') {
            Some((series, _value)) => series,
            None => continue,
        };
        let (name, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i + 1..series.len() - 1]),
            None => (series, ""),
        };
        let labels = label_re
            .captures_iter(labels)
            .map(|c| (c[1].to_string(), c[2].to_string()))
            .collect();
        samples.push(Sample {
            name: name.to_string(),
            labels,
        });
    }
    samples
}

/// The samples a query's metric name stands for: the name itself, or a histogram's (or
/// summary's) `_bucket`, `_sum` and `_count` series when it names the family.
fn samples_of<'a>(scrape: &'a [Sample], name: &str) -> Vec<&'a Sample> {
    let exact: Vec<&Sample> = scrape.iter().filter(|s| s.name == name).collect();
    if !exact.is_empty() {
        return exact;
    }
    scrape
        .iter()
        .filter(|s| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| s.name == format!("{name}{suffix}"))
        })
        .collect()
}

/// A query with Grafana's variables replaced by what PromQL (and promtool) accepts.
fn grafana_to_promql(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("${job}", ".*")
        .replace("${instance}", ".*")
        .replace("$job", ".*")
        .replace("$instance", ".*")
        .replace("${team}", ".*")
        .replace("${model}", ".*")
        .replace("$team", ".*")
        .replace("$model", ".*")
}

/// What is wrong with `expr` against the scrape: an unknown `switchyard_` metric, a label the
/// metric does not have, a label value no series has, or a grouping label no metric of the
/// query has.
fn check_query(expr: &str, scrape: &[Sample]) -> Vec<String> {
    let mut problems = Vec::new();
    let name_re = Regex::new(r"\bswitchyard_[a-zA-Z0-9_]+").unwrap();
    let selector_re = Regex::new(r"\b(switchyard_[a-zA-Z0-9_]+)\s*\{([^}]*)\}").unwrap();
    let matcher_re =
        Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)""#).unwrap();
    let grouping_re = Regex::new(r"\b(?:by|without)\s*\(([^)]*)\)").unwrap();
    let label_values_re = Regex::new(
        r"label_values\(\s*(switchyard_[a-zA-Z0-9_]+)\s*(?:\{[^}]*\})?\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)",
    )
    .unwrap();

    let names: BTreeSet<&str> = name_re.find_iter(expr).map(|m| m.as_str()).collect();
    for name in &names {
        if samples_of(scrape, name).is_empty() {
            problems.push(format!("metric {name} is not in the scrape"));
        }
    }
    for sel in selector_re.captures_iter(expr) {
        let name = &sel[1];
        let samples = samples_of(scrape, name);
        if samples.is_empty() {
            continue;
        }
        for m in matcher_re.captures_iter(&sel[2]) {
            let (label, op, value) = (&m[1], &m[2], &m[3]);
            // Prometheus adds the target's `job` and `instance` to every series it scrapes.
            if matches!(label, "job" | "instance") {
                continue;
            }
            if !samples.iter().any(|s| s.labels.contains_key(label)) {
                problems.push(format!("{name} has no label {label:?}"));
                continue;
            }
            let matched = match op {
                "=" => samples
                    .iter()
                    .any(|s| s.labels.get(label).map(String::as_str) == Some(value)),
                "=~" => {
                    let re = Regex::new(&format!("^(?:{value})$"))
                        .unwrap_or_else(|e| panic!("bad regex {value:?} in {expr}: {e}"));
                    samples
                        .iter()
                        .any(|s| s.labels.get(label).is_some_and(|v| re.is_match(v)))
                }
                _ => true,
            };
            if !matched {
                problems.push(format!(
                    "no series of {name} has {label}{op}\"{value}\" (the mixed run should produce one)"
                ));
            }
        }
    }
    for group in grouping_re.captures_iter(expr) {
        for label in group[1].split(',').map(str::trim).filter(|l| !l.is_empty()) {
            // Prometheus adds the target's `job` and `instance` to every series it scrapes.
            let target_label = matches!(label, "job" | "instance");
            let known = target_label
                || names.iter().any(|name| {
                    samples_of(scrape, name)
                        .iter()
                        .any(|s| s.labels.contains_key(label))
                });
            if !known {
                problems.push(format!("grouping label {label:?} is on none of {names:?}"));
            }
        }
    }
    for lv in label_values_re.captures_iter(expr) {
        if matches!(&lv[2], "job" | "instance") {
            continue;
        }
        let samples = samples_of(scrape, &lv[1]);
        if !samples.iter().any(|s| s.labels.contains_key(&lv[2])) {
            problems.push(format!(
                "label_values: {} has no label {:?}",
                &lv[1], &lv[2]
            ));
        }
    }
    problems
}

/// The `expr` of every rule in alerts.yml, with the alert's name.
fn alert_queries() -> Vec<(String, String)> {
    let doc: Yaml =
        serde_yaml::from_str(&read("deploy/prometheus/alerts.yml")).expect("alerts.yml is YAML");
    let mut out = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .expect("alert name")
                .to_string();
            let expr = rule["expr"].as_str().expect("expr").to_string();
            out.push((name, expr));
        }
    }
    out
}

/// Every query of the dashboard (panel targets, nested panels of rows, template variables),
/// with where it was found.
fn dashboard_queries() -> Vec<(String, String)> {
    let doc: Json =
        serde_json::from_str(&read("deploy/grafana/switchyard.json")).expect("dashboard is JSON");
    fn walk(v: &Json, at: &str, out: &mut Vec<(String, String)>) {
        match v {
            Json::Object(map) => {
                let here = map
                    .get("title")
                    .or(map.get("name"))
                    .and_then(Json::as_str)
                    .map_or(at.to_string(), |t| format!("{at}/{t}"));
                for (k, child) in map {
                    match (k.as_str(), child) {
                        ("expr", Json::String(e)) => out.push((here.clone(), e.clone())),
                        ("query", Json::String(q)) if q.contains("switchyard_") => {
                            out.push((here.clone(), q.clone()))
                        }
                        _ => walk(child, &here, out),
                    }
                }
            }
            Json::Array(items) => items.iter().for_each(|i| walk(i, at, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&doc, "", &mut out);
    out
}

const MIXED_PROVIDER_KEY: &str = "sk-ops-kit-provider";
const TIGHT_SECRET: &str = "sk-ops-kit-tight-budget";

fn mixed_config(good: &str, flaky: &str) -> String {
    format!(
        r#"
[log]
usage = "{{DIR}}/not-a-dir/usage.jsonl"

[routing]
max_attempts = 2
backoff_base_ms = 1
backoff_max_ms = 2
failures_to_cool = 1
cooldown_ms = 600000

[[providers]]
name = "good"
kind = "openai"
base_url = "{good}"
forward_headers = ["x-mock-*"]
api_key_env = "SY_OPS_KIT_KEY"

[[providers]]
name = "flaky"
kind = "openai"
base_url = "{flaky}"
api_key_env = "SY_OPS_KIT_KEY"

[[models]]
name = "fine"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0
  [[models.routes]]
  provider = "good"
  model = "good-model"

[[models]]
name = "wobbly"
fallbacks = ["fine"]
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0
  [[models.routes]]
  provider = "flaky"
  model = "flaky-model"

[[models]]
name = "broken"
  [[models.routes]]
  provider = "flaky"
  model = "flaky-other"

[[teams]]
name = "ops"

[[teams]]
name = "tight"
tokens_per_day = 10

[[keys]]
id = "ops-key"
team = "ops"
sha256 = "{DEMO_SHA256}"

[[keys]]
id = "tight-key"
team = "tight"
sha256 = "{tight}"
"#,
        tight = sha256_hex(TIGHT_SECRET)
    )
}

/// A gateway that served OK, streaming, failing, falling-back, refused and unauthenticated
/// requests, had a config reload rejected and a usage log it could not write: every labelled
/// series the kit uses has appeared. Returns its scrape.
async fn mixed_run_scrape() -> String {
    let good = MockUpstream::start().await;
    let flaky = MockUpstream::start().await;
    flaky.set_default(Behaviour::status(500));
    let gw = Gateway::builder(&mixed_config(&good.base_url(), &flaky.base_url()))
        .env("SY_OPS_KIT_KEY", MIXED_PROVIDER_KEY)
        .start()
        .await;
    // The usage log's directory is a file: its lines cannot be written.
    std::fs::write(gw.dir().join("not-a-dir"), b"a file").unwrap();

    for _ in 0..3 {
        let r = gw
            .chat(DEMO_SECRET, &chat_body("fine", "hello", false))
            .await;
        assert_eq!(r.status(), 200);
    }
    for _ in 0..2 {
        let r = gw
            .chat(DEMO_SECRET, &chat_body("fine", "stream it", true))
            .await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(text.contains("[DONE]"));
    }
    // A vendor that reports no usage: the tokens are estimated.
    let r = gw
        .client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(DEMO_SECRET)
        .header("x-mock-no-usage", "1")
        .json(&chat_body("fine", "count these yourself", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The flaky route fails, is cooled down, and the model falls back to `fine`.
    let r = gw
        .chat(DEMO_SECRET, &chat_body("wobbly", "hi", false))
        .await;
    assert_eq!(r.status(), 200, "wobbly falls back to fine");
    // Nothing to fall back to: 502.
    let r = gw
        .chat(DEMO_SECRET, &chat_body("broken", "hi", false))
        .await;
    assert_eq!(r.status(), 502);
    // A budget of 10 tokens a day refuses the first request.
    let r = gw
        .chat(TIGHT_SECRET, &chat_body("fine", "hello", false))
        .await;
    assert_eq!(r.status(), 429, "the tight budget refuses");
    let r = gw
        .chat("sk-not-a-key", &chat_body("fine", "hello", false))
        .await;
    assert_eq!(r.status(), 401);
    // A config edit that does not validate is rejected.
    gw.write_config_raw("[server\nthis is not toml");

    let mut scrape = String::new();
    for _ in 0..200 {
        scrape = gw.metrics().await;
        let reload_failed = metric_value(
            &scrape,
            "switchyard_config_reloads_total",
            &[("result", "failure")],
        )
        .is_some_and(|v| v >= 1.0);
        let log_failed = metric_value(&scrape, "switchyard_usage_log_errors_total", &[])
            .is_some_and(|v| v >= 1.0);
        if reload_failed && log_failed {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the reload failure and the usage log errors never showed in /metrics:\n{scrape}");
}

/// A gateway serving TLS whose certificate was replaced by a pair that does not match (refused),
/// then by a good one (taken): the TLS series the kit uses have appeared. Returns its scrape.
async fn tls_run_scrape() -> String {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf_for_localhost().write_pem_files(dir.path());
    let gw = Gateway::builder(
        "[[providers]]\nname = \"m\"\nkind = \"mock\"\n[[models]]\nname = \"x\"\n  [[models.routes]]\n  provider = \"m\"\n  model = \"x\"\n",
    )
    .server_extra(&format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert.display(),
        key.display()
    ))
    .start()
    .await;
    let next = ca.leaf_for_localhost();
    std::fs::write(&cert, &next.cert_pem).unwrap();
    let mut key_written = false;
    let mut scrape = String::new();
    for _ in 0..200 {
        scrape = gw.metrics().await;
        let count = |result| {
            metric_value(
                &scrape,
                "switchyard_tls_certificate_reloads_total",
                &[("result", result)],
            )
            .unwrap_or(0.0)
        };
        match (count("failure") >= 1.0, count("success") >= 1.0) {
            (true, true) => return scrape,
            (true, false) if !key_written => {
                std::fs::write(&key, &next.key_pem).unwrap();
                key_written = true;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the TLS reload failure and success never showed in /metrics:\n{scrape}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_of_the_alerts_and_the_dashboard_is_in_a_real_scrape() {
    let text = format!("{}\n{}", mixed_run_scrape().await, tls_run_scrape().await);
    let scrape = parse_scrape(&text);
    let mut problems = Vec::new();
    let alerts = alert_queries();
    let panels = dashboard_queries();
    assert!(
        alerts.len() >= 8,
        "alerts.yml has only {} rules",
        alerts.len()
    );
    assert!(
        panels.len() >= 20,
        "the dashboard has only {} queries",
        panels.len()
    );
    let mut used = BTreeSet::new();
    let name_re = Regex::new(r"\bswitchyard_[a-zA-Z0-9_]+").unwrap();
    for (place, expr) in alerts
        .iter()
        .map(|(n, e)| (format!("alerts.yml {n}"), e.clone()))
        .chain(
            panels
                .iter()
                .map(|(p, e)| (format!("dashboard {p}"), grafana_to_promql(e))),
        )
    {
        used.extend(name_re.find_iter(&expr).map(|m| m.as_str().to_string()));
        for p in check_query(&expr, &scrape) {
            problems.push(format!("{place}: {p}\n    {}", expr.trim()));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}\n\nscrape:\n{text}",
        problems.len(),
        problems.join("\n")
    );
    // What the issue asks the kit to cover is covered.
    for name in [
        "switchyard_requests_total",
        "switchyard_request_duration_seconds_bucket",
        "switchyard_time_to_first_token_seconds_bucket",
        "switchyard_tokens_total",
        "switchyard_cost_usd_total",
        "switchyard_rate_limited_total",
        "switchyard_upstream_errors_total",
        "switchyard_route_healthy",
        "switchyard_config_reloads_total",
    ] {
        assert!(
            used.contains(name),
            "neither the alerts nor the dashboard use {name}"
        );
    }
}

/// The dashboard has `job` and `instance` variables, and every query of its panels and of its
/// other variables reads only what they choose: each `switchyard_` selector carries
/// `job=~"$job"` and `instance=~"$instance"` (the `instance` variable's own query, the job).
#[test]
fn every_dashboard_query_is_scoped_by_the_job_and_instance_variables() {
    let doc: Json = serde_json::from_str(&read("deploy/grafana/switchyard.json")).unwrap();
    let vars: Vec<&str> = doc["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(
        vars.contains(&"job") && vars.contains(&"instance"),
        "{vars:?}"
    );
    let metric_re = Regex::new(r"\bswitchyard_[a-zA-Z0-9_]+(\{[^}]*\})?").unwrap();
    let mut panels = 0;
    for (place, expr) in dashboard_queries() {
        if place.ends_with("/job") {
            continue; // the job variable chooses among every job
        }
        panels += 1;
        for m in metric_re.captures_iter(&expr) {
            let selector = m.get(1).map_or("", |s| s.as_str());
            assert!(selector.contains(r#"job=~"$job""#), "{place}: {expr}");
            if !place.ends_with("/instance") {
                assert!(
                    selector.contains(r#"instance=~"$instance""#),
                    "{place}: {expr}"
                );
            }
        }
    }
    assert!(panels > 20, "only {panels} queries");
}

/// Every aggregation of the alerts keeps `job` (`by (job, ...)`, or `without (...)` that does
/// not drop it): an alert never sums staging and production together.
#[test]
fn every_alert_aggregation_keeps_the_job() {
    let agg_re = Regex::new(
        r"\b(sum|count|avg|min|max|group|stddev|stdvar)\s*(?:(by|without)\s*\(([^)]*)\))?\s*\(",
    )
    .unwrap();
    let mut aggregations = 0;
    for (name, expr) in alert_queries() {
        for m in agg_re.captures_iter(&expr) {
            aggregations += 1;
            let labels: Vec<&str> = m
                .get(3)
                .map_or("", |l| l.as_str())
                .split(',')
                .map(str::trim)
                .collect();
            let keeps_job = match m.get(2).map(|c| c.as_str()) {
                Some("by") => labels.contains(&"job"),
                Some(_) => !labels.contains(&"job"),
                None => false,
            };
            assert!(keeps_job, "{name}: `{}` drops the job in {expr}", &m[0]);
        }
    }
    assert!(aggregations >= 10, "only {aggregations} aggregations");
}

#[test]
fn the_checker_catches_a_wrong_metric_label_or_value() {
    // The check above must be able to fail: a scrape and three broken queries.
    let scrape = parse_scrape(
        "switchyard_rate_limited_total{team=\"t\",key=\"k\",limit=\"rpm\"} 1\n\
         switchyard_request_duration_seconds_bucket{model=\"m\",provider=\"p\",stream=\"false\",le=\"1\"} 1\n\
         switchyard_request_duration_seconds_sum{model=\"m\",provider=\"p\",stream=\"false\"} 1\n",
    );
    assert!(check_query("switchyard_request_duration_seconds", &scrape).is_empty());
    assert!(check_query(
        "histogram_quantile(0.9, sum by (le, model) (rate(switchyard_request_duration_seconds_bucket{stream=\"false\"}[5m])))",
        &scrape
    )
    .is_empty());
    assert_eq!(
        check_query("rate(switchyard_requests_totl[5m])", &scrape).len(),
        1
    );
    assert_eq!(
        check_query("switchyard_rate_limited_total{limit=\"budget\"}", &scrape).len(),
        1
    );
    assert_eq!(
        check_query("switchyard_rate_limited_total{tier=\"x\"}", &scrape).len(),
        1
    );
    assert_eq!(
        check_query("sum by (provider) (switchyard_rate_limited_total)", &scrape).len(),
        1
    );
}

// -------------------------------------------------------------------------------------------
// promtool

fn promtool(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool is installed (bash .ci/run installs Debian's prometheus package)")
}

#[test]
fn promtool_accepts_the_rules_and_the_scrape_config() {
    let dir = root().join("deploy/prometheus");
    let out = promtool(&["check", "rules", "alerts.yml"], &dir);
    assert!(
        out.status.success(),
        "promtool check rules: {}",
        output_text(&out)
    );
    let out = promtool(&["check", "config", "prometheus.yml"], &dir);
    assert!(
        out.status.success(),
        "promtool check config: {}",
        output_text(&out)
    );
    // The config loads the rules (promtool checked them through it too).
    let config: Yaml = serde_yaml::from_str(&read("deploy/prometheus/prometheus.yml")).unwrap();
    let rule_files: Vec<&str> = config["rule_files"]
        .as_sequence()
        .expect("rule_files")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(rule_files, ["alerts.yml"]);
    // Every scrape job reads the admin listener's /metrics on the admin port.
    let jobs = config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs");
    assert!(!jobs.is_empty());
    for job in jobs {
        assert_eq!(job["metrics_path"].as_str(), Some("/metrics"));
        let ports: Vec<u64> = job["static_configs"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|s| s["targets"].as_sequence().cloned().unwrap_or_default())
            .filter_map(|t| t.as_str()?.rsplit_once(':')?.1.parse().ok())
            .chain(
                job["dns_sd_configs"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d["port"].as_u64()),
            )
            .collect();
        assert!(
            !ports.is_empty(),
            "job {:?} has no target port",
            job["job_name"]
        );
        assert!(
            ports.iter().all(|p| *p == 9090),
            "job {:?}: ports {ports:?}",
            job["job_name"]
        );
    }
}

/// The unit tests of the alerts (`deploy/prometheus/alerts_test.yml`), as promtool reads them.
#[derive(Deserialize)]
struct RuleTests {
    tests: Vec<RuleTest>,
}

#[derive(Deserialize)]
struct RuleTest {
    name: String,
    input_series: Vec<InputSeries>,
    alert_rule_test: Vec<AlertCheck>,
}

#[derive(Deserialize)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Deserialize)]
struct AlertCheck {
    alertname: String,
    exp_alerts: Vec<Yaml>,
}

fn rule_tests() -> RuleTests {
    serde_yaml::from_str(&read("deploy/prometheus/alerts_test.yml")).expect("alerts_test.yml")
}

#[test]
fn promtool_unit_tests_fire_every_alert() {
    let out = promtool(
        &["test", "rules", "alerts_test.yml"],
        &root().join("deploy/prometheus"),
    );
    assert!(
        out.status.success(),
        "promtool test rules: {}",
        output_text(&out)
    );
    // Every alert of alerts.yml is tested firing, and silent before.
    let tests = rule_tests();
    for (alert, _) in alert_queries() {
        let checks: Vec<&AlertCheck> = tests
            .tests
            .iter()
            .flat_map(|t| &t.alert_rule_test)
            .filter(|c| c.alertname == alert)
            .collect();
        assert!(
            checks.iter().any(|c| !c.exp_alerts.is_empty()),
            "no unit test shows {alert} firing"
        );
        assert!(
            checks.iter().any(|c| c.exp_alerts.is_empty()),
            "no unit test shows {alert} silent before its event"
        );
    }
}

/// The names the unit tests of the alerts use, in a config a gateway runs.
fn alert_test_config(vendor: &str) -> String {
    format!(
        r#"
[log]
usage = "{{DIR}}/usage.jsonl"

[[providers]]
name = "openai"
kind = "openai"
base_url = "{vendor}"

[[models]]
name = "gpt-4o"
input_usd_per_mtok = 2.5
output_usd_per_mtok = 10.0
  [[models.routes]]
  provider = "openai"
  model = "gpt-4o-2024-08-06"

[[teams]]
name = "search"
tokens_per_day = 5000000

[[keys]]
id = "search-prod"
team = "search"
sha256 = "{DEMO_SHA256}"
"#
    )
}

/// The first value of a promtool series (`0 1+1x5` → `Some(0.0)`; `_x3 1` → `None`: absent).
fn first_value(values: &str) -> Option<f64> {
    let first = values.split_whitespace().next().unwrap_or("_");
    let number = first.split(['x', '+']).next().unwrap_or("_");
    if number.starts_with('_') {
        return None;
    }
    Some(number.parse().unwrap_or_else(|_| panic!("value {first}")))
}

/// A promtool series selector's name and labels, without the target labels Prometheus adds
/// (`job`, `instance`) and without `hash` (a config file's SHA-256: the tests' are made up).
fn series_parts(series: &str) -> (String, Vec<(String, String)>) {
    let label_re = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)""#).unwrap();
    let (name, labels) = series.split_once('{').unwrap_or((series, ""));
    let labels = label_re
        .captures_iter(labels)
        .map(|c| (c[1].to_string(), c[2].to_string()))
        .filter(|(k, _)| !matches!(k.as_str(), "job" | "instance" | "hash"))
        .collect();
    (name.to_string(), labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_tests_start_their_series_as_a_fresh_gateway_exports_them() {
    let vendor = MockUpstream::start().await;
    let gw = Gateway::start(&alert_test_config(&vendor.base_url())).await;
    let scrape = gw.metrics().await;
    let mut checked = 0;
    for test in rule_tests().tests {
        for input in &test.input_series {
            let (name, labels) = series_parts(&input.series);
            // The TLS series exist only with TLS on: tests/it/tls_listener.rs scrapes them.
            if !name.starts_with("switchyard_") || name.starts_with("switchyard_tls_") {
                continue;
            }
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let exported = metric_value(&scrape, &name, &pairs);
            let place = format!("{}: {}", test.name, input.series);
            match first_value(&input.values) {
                // A `hash` names a config file: another file's series is born when it loads.
                None if input.series.contains("hash=") => {}
                None => assert_eq!(
                    exported, None,
                    "{place}: starts absent, but a fresh gateway exports it\n{scrape}"
                ),
                Some(v) => assert_eq!(
                    exported,
                    Some(v),
                    "{place}: starts at {v}, a fresh gateway exports otherwise\n{scrape}"
                ),
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} series checked");
    // The counters the issue found missing are all there, at 0.
    for name in [
        "switchyard_config_reloads_total",
        "switchyard_rate_limited_total",
        "switchyard_upstream_errors_total",
        "switchyard_retries_total",
        "switchyard_cost_usd_total",
        "switchyard_usage_log_errors_total",
    ] {
        assert_eq!(metric_value(&scrape, name, &[]), Some(0.0), "{name}");
    }
}

#[test]
fn promtool_parses_every_dashboard_query() {
    // Grafana's queries, as recording rules: promtool parses each one as PromQL.
    let queries = dashboard_queries();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut n = 0;
    for (_, expr) in &queries {
        if expr.starts_with("label_values(") {
            continue; // a Grafana function, not PromQL
        }
        n += 1;
        rules.push_str(&format!(
            "      - record: dashboard:query_{n}\n        expr: {}\n",
            serde_json::to_string(&grafana_to_promql(expr)).unwrap()
        ));
    }
    assert!(n >= 20);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboard.yml"), &rules).unwrap();
    let out = promtool(&["check", "rules", "dashboard.yml"], dir.path());
    assert!(
        out.status.success(),
        "promtool rejects a dashboard query: {}\n{rules}",
        output_text(&out)
    );
    // And it does reject a broken one.
    std::fs::write(
        dir.path().join("broken.yml"),
        "groups:\n  - name: x\n    rules:\n      - record: x:y\n        expr: sum by (le (rate(x[5m]))\n",
    )
    .unwrap();
    assert!(!promtool(&["check", "rules", "broken.yml"], dir.path())
        .status
        .success());
}

// -------------------------------------------------------------------------------------------
// systemd

fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let unit = read("deploy/systemd/switchyard.service");
    let bin = env!("CARGO_BIN_EXE_switchyard");
    // The unit runs /usr/local/bin/switchyard, which is not installed here: verify a copy
    // that runs the binary cargo built.
    assert!(unit.contains("/usr/local/bin/switchyard serve -c /etc/switchyard/switchyard.toml"));
    let copy = unit.replace("/usr/local/bin/switchyard", bin);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.service");
    std::fs::write(&path, &copy).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze is installed (bash .ci/run installs Debian's systemd package)");
    let text = output_text(&out);
    assert!(out.status.success(), "systemd-analyze verify: {text}");
    // It exits 0 on unknown keys and bad values too, with a warning naming the file.
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("switchyard.service") || l.contains(&*dir.path().to_string_lossy()))
        .collect();
    assert!(warnings.is_empty(), "systemd-analyze verify warns:\n{text}");

    // And a broken copy is caught the same way (the check can fail).
    let broken = copy.replace("KillSignal=SIGTERM", "KillSignal=SIGTERMINATE");
    let broken_path = dir.path().join("broken.service");
    std::fs::write(&broken_path, broken).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&broken_path)
        .output()
        .unwrap();
    assert!(
        output_text(&out).contains("broken.service"),
        "systemd-analyze says nothing of a bad KillSignal: {}",
        output_text(&out)
    );
}

#[test]
fn the_unit_reloads_on_hup_drains_on_term_and_is_hardened() {
    let unit = read("deploy/systemd/switchyard.service");
    let one = |key: &str| -> String {
        let v = unit_values(&unit, key);
        assert_eq!(v.len(), 1, "{key}= appears {} times", v.len());
        v[0].clone()
    };
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one("KillSignal"), "SIGTERM");
    let drain: u64 = unit_values(&unit, "Environment")
        .iter()
        .find_map(|e| e.strip_prefix("SWITCHYARD_DRAIN_SECONDS="))
        .expect("Environment=SWITCHYARD_DRAIN_SECONDS=")
        .parse()
        .unwrap();
    let stop: u64 = one("TimeoutStopSec").parse().unwrap();
    // The drain, then pingora's 5 s runtime stop, before systemd's SIGKILL.
    assert!(
        stop > drain + 5,
        "TimeoutStopSec {stop} <= drain {drain} + 5"
    );
    assert!(one("EnvironmentFile").starts_with("/etc/switchyard/"));
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictSUIDSGID", "yes"),
    ] {
        assert_eq!(one(key), value, "{key}");
    }
    let workdir = one("WorkingDirectory");
    assert!(
        unit_values(&unit, "ReadWritePaths").contains(&workdir),
        "the working directory (state dir) is writable"
    );
}

// -------------------------------------------------------------------------------------------
// Kubernetes

/// Every document of every manifest file, by (kind, name).
fn manifests() -> BTreeMap<(String, String), Yaml> {
    let dir = root().join("deploy/kubernetes");
    let mut out = BTreeMap::new();
    for file in kustomization_resources() {
        let text = std::fs::read_to_string(dir.join(&file)).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = Yaml::deserialize(doc).unwrap_or_else(|e| panic!("{file}: not YAML: {e}"));
            if v.is_null() {
                continue;
            }
            let kind = v["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: no kind"));
            let name = v["metadata"]["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: a {kind} without a name"));
            assert!(
                v["apiVersion"].as_str().is_some(),
                "{file}: {kind} {name} has no apiVersion"
            );
            let key = (kind.to_string(), name.to_string());
            assert!(!out.contains_key(&key), "{kind} {name} defined twice");
            out.insert(key, v);
        }
    }
    out
}

/// The bundled Redis requires a password from a Secret, the gateway's config and environment
/// carry the same one, and a NetworkPolicy admits only the gateway's pods (`gateway_labels`).
fn redis_is_locked_to_the_gateway(
    m: &BTreeMap<(String, String), Yaml>,
    raw: &switchyard::config::raw::Config,
    redis: &Yaml,
    gateway: &Yaml,
    gateway_labels: &Yaml,
) {
    let redis_c = &redis["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = redis_c["args"]
        .as_sequence()
        .expect("redis args")
        .iter()
        .map(str_of)
        .collect();
    let at = args
        .iter()
        .position(|a| *a == "--requirepass")
        .expect("redis runs with --requirepass");
    let var = args[at + 1]
        .strip_prefix("$(")
        .and_then(|v| v.strip_suffix(')'))
        .expect("the password is an env var of the container, not in the manifest");
    let env = redis_c["env"]
        .as_sequence()
        .expect("redis env")
        .iter()
        .find(|e| e["name"].as_str() == Some(var))
        .expect("the password's variable");
    let from = &env["valueFrom"]["secretKeyRef"];
    let (secret_name, key) = (str_of(&from["name"]), str_of(&from["key"]));
    let secret = get(m, "Secret", secret_name);
    assert!(
        secret["stringData"][key].as_str().is_some(),
        "{secret_name} has no {key}"
    );

    // The gateway: redis_password_env names a variable its container gets from that Secret.
    let password_env = raw
        .state
        .redis_password_env
        .as_ref()
        .expect("[state] redis_password_env")
        .get_ref();
    assert_eq!(password_env, key, "the gateway reads the Secret's key");
    assert!(
        gateway["envFrom"]
            .as_sequence()
            .expect("envFrom")
            .iter()
            .any(|e| e["secretRef"]["name"].as_str() == Some(secret_name)),
        "the gateway's envFrom lacks the Secret {secret_name}"
    );

    // The NetworkPolicy: on the Redis pods, ingress from the gateway's pods only.
    let policy = m
        .iter()
        .filter(|((kind, _), _)| kind == "NetworkPolicy")
        .map(|(_, v)| v)
        .find(|p| {
            p["spec"]["podSelector"]["matchLabels"]
                .as_mapping()
                .is_some_and(|sel| {
                    sel.iter().all(|(k, v)| {
                        &redis["spec"]["template"]["metadata"]["labels"][str_of(k)] == v
                    })
                })
        })
        .expect("a NetworkPolicy selects the Redis pods");
    let types: Vec<&str> = policy["spec"]["policyTypes"]
        .as_sequence()
        .expect("policyTypes")
        .iter()
        .map(str_of)
        .collect();
    assert!(types.contains(&"Ingress"), "{types:?}");
    let rules = policy["spec"]["ingress"]
        .as_sequence()
        .expect("ingress rules");
    assert!(!rules.is_empty());
    for rule in rules {
        let peers = rule["from"]
            .as_sequence()
            .expect("every rule names its peers");
        for peer in peers {
            let peer = peer.as_mapping().unwrap();
            assert_eq!(peer.len(), 1, "only a podSelector: {peer:?}");
            let sel = peer
                .get("podSelector")
                .and_then(|s| s["matchLabels"].as_mapping())
                .expect("a podSelector with matchLabels");
            assert!(!sel.is_empty());
            for (k, v) in sel {
                assert_eq!(
                    &gateway_labels[str_of(k)],
                    v,
                    "a peer other than the gateway"
                );
            }
        }
    }
}

/// The files kustomization.yaml lists; they must be every manifest of the directory.
fn kustomization_resources() -> Vec<String> {
    let k: Yaml = serde_yaml::from_str(&read("deploy/kubernetes/kustomization.yaml")).unwrap();
    assert_eq!(k["kind"].as_str(), Some("Kustomization"));
    let listed: Vec<String> = k["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let mut present: Vec<String> = std::fs::read_dir(root().join("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    present.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        sorted, present,
        "kustomization.yaml lists exactly the manifests"
    );
    listed
}

fn get<'a>(m: &'a BTreeMap<(String, String), Yaml>, kind: &str, name: &str) -> &'a Yaml {
    m.get(&(kind.to_string(), name.to_string()))
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

fn str_of(v: &Yaml) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

/// The port number a probe or Service names (by name or number) on a container.
fn container_port(container: &Yaml, port: &Yaml) -> u64 {
    if let Some(n) = port.as_u64() {
        return n;
    }
    let name = str_of(port);
    container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_u64())
        .unwrap_or_else(|| panic!("the container has no port named {name}"))
}

/// The ConfigMap's embedded config.
fn configmap_config(m: &BTreeMap<(String, String), Yaml>) -> String {
    str_of(&get(m, "ConfigMap", "switchyard-config")["data"]["switchyard.toml"]).to_string()
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit_once(':').unwrap().1.parse().unwrap()
}

#[test]
fn the_manifests_probe_and_serve_the_ports_and_paths_of_the_config() {
    let m = manifests();
    let toml_text = configmap_config(&m);
    let raw: switchyard::config::raw::Config = toml::from_str(&toml_text)
        .expect("the ConfigMap's config parses with the raw config types");
    let listen = raw
        .server
        .listen
        .as_ref()
        .map(|s| s.get_ref().clone())
        .unwrap();
    let admin = raw
        .server
        .admin_listen
        .as_ref()
        .map(|s| s.get_ref().clone())
        .unwrap();
    assert!(
        admin.starts_with("0.0.0.0:") || admin.starts_with("[::]:"),
        "the kubelet probes the pod IP: admin_listen {admin} must not be loopback"
    );
    let (api_port, admin_port) = (port_of(&listen), port_of(&admin));

    let deploy = get(&m, "Deployment", "switchyard");
    let pod = &deploy["spec"]["template"]["spec"];
    let containers = pod["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];

    // Probes: /readyz and /healthz on the admin port of this config.
    let readiness = &c["readinessProbe"]["httpGet"];
    let liveness = &c["livenessProbe"]["httpGet"];
    assert_eq!(readiness["path"].as_str(), Some("/readyz"));
    assert_eq!(liveness["path"].as_str(), Some("/healthz"));
    assert_eq!(container_port(c, &readiness["port"]), admin_port);
    assert_eq!(container_port(c, &liveness["port"]), admin_port);
    assert_eq!(container_port(c, &Yaml::from("http")), api_port);
    assert_eq!(container_port(c, &Yaml::from("admin")), admin_port);

    // The binary serves those paths on that port: ask a real one.
    let probe_paths = [str_of(&readiness["path"]), str_of(&liveness["path"])];
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let gw = Gateway::start(
            "[[providers]]\nname = \"m\"\nkind = \"mock\"\n[[models]]\nname = \"x\"\n  [[models.routes]]\n  provider = \"m\"\n  model = \"x\"\n",
        )
        .await;
        for path in probe_paths {
            let r = client().get(gw.admin_url(path)).send().await.unwrap();
            assert_eq!(r.status(), 200, "admin {path}");
            // The API listener answers `/healthz` too (for load balancers, uncounted), but
            // never the admin listener's readiness: that one checks the config and Redis.
            let r = client().get(gw.url(path)).send().await.unwrap();
            let want_on_api = path == "/healthz";
            assert_eq!(r.status() == 200, want_on_api, "{path} on the API listener");
        }
    });

    // The config: the ConfigMap, mounted as a directory (no subPath: updates reach the pod
    // and hot reload), at the path the container is told to serve.
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert_eq!(args, ["serve", "-c", CONFIG_PATH]);
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    let volumes = pod["volumes"].as_sequence().unwrap();
    let mount_of = |volume: &str| -> &Yaml {
        mounts
            .iter()
            .find(|v| v["name"].as_str() == Some(volume))
            .unwrap_or_else(|| panic!("no volumeMount {volume}"))
    };
    let config_volume = volumes
        .iter()
        .find(|v| v["configMap"]["name"].as_str() == Some("switchyard-config"))
        .expect("a volume of the ConfigMap");
    let config_mount = mount_of(str_of(&config_volume["name"]));
    assert!(
        config_mount["subPath"].is_null(),
        "a subPath mount never sees ConfigMap updates"
    );
    assert_eq!(
        format!("{}/switchyard.toml", str_of(&config_mount["mountPath"])),
        CONFIG_PATH
    );
    assert!(config_volume["configMap"]["items"].is_null());

    // The TLS pair: a kubernetes.io/tls Secret mounted as a directory (no subPath, so a renewed
    // certificate reaches the pod and is served without a restart), where the ConfigMap's
    // (commented) tls_cert and tls_key point.
    let tls_volume = volumes
        .iter()
        .find(|v| v["secret"]["secretName"].as_str() == Some("switchyard-tls"))
        .expect("a volume of the TLS Secret");
    let tls_mount = mount_of(str_of(&tls_volume["name"]));
    assert!(
        tls_mount["subPath"].is_null(),
        "a subPath mount never sees renewals"
    );
    assert!(tls_volume["secret"]["items"].is_null());
    let tls_dir = str_of(&tls_mount["mountPath"]);
    for (field, file) in [("tls_cert", "tls.crt"), ("tls_key", "tls.key")] {
        let line = format!("# {field} = \"{tls_dir}/{file}\"");
        assert!(
            toml_text.lines().any(|l| l.trim() == line),
            "the ConfigMap shows {line}"
        );
    }

    // Vendor keys: the Secret, as environment variables, holding every api_key_env.
    let secret_name = c["envFrom"]
        .as_sequence()
        .unwrap()
        .iter()
        .find_map(|e| e["secretRef"]["name"].as_str())
        .expect("envFrom secretRef");
    let secret = get(&m, "Secret", secret_name);
    for p in &raw.providers {
        if let Some(var) = &p.api_key_env {
            let var = var.get_ref();
            assert!(
                !secret["stringData"][var.as_str()].is_null()
                    || !secret["data"][var.as_str()].is_null(),
                "the Secret has no {var} (api_key_env of provider {})",
                p.name.get_ref()
            );
        }
    }

    // Non-root, read-only root, every capability dropped, and an emptyDir where the config's
    // relative paths ([state] dir "data") land: the image's working directory.
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"].as_bool(), Some(true));
    assert_ne!(psc["runAsUser"].as_u64(), Some(0));
    let csc = &c["securityContext"];
    assert_eq!(csc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(csc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(csc["capabilities"]["drop"][0].as_str(), Some("ALL"));
    let data_dir = raw
        .state
        .dir
        .as_ref()
        .map_or("data".to_string(), |d| d.get_ref().clone());
    let workdir = dockerfile_instruction(&read("deploy/Dockerfile"), "WORKDIR")
        .last()
        .cloned()
        .unwrap();
    let data_volume = volumes.iter().find(|v| {
        !v["emptyDir"].is_null()
            && mount_of(str_of(&v["name"]))["mountPath"].as_str()
                == Some(&format!("{workdir}/{data_dir}"))
    });
    assert!(data_volume.is_some(), "no emptyDir on {workdir}/{data_dir}");
    for key in ["requests", "limits"] {
        assert!(!c["resources"][key]["cpu"].is_null() || key == "limits");
        assert!(
            !c["resources"][key]["memory"].is_null(),
            "resources.{key}.memory"
        );
    }

    // The drain fits in the termination grace period: preStop, drain, runtime stop.
    let drain: u64 = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("SWITCHYARD_DRAIN_SECONDS"))
        .map(|e| str_of(&e["value"]).parse().unwrap())
        .unwrap_or(60);
    let pre_stop: u64 = c["lifecycle"]["preStop"]["exec"]["command"]
        .as_sequence()
        .and_then(|cmd| cmd.last()?.as_str()?.parse().ok())
        .unwrap_or(0);
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        grace > pre_stop + drain + 5,
        "terminationGracePeriodSeconds {grace} too short"
    );

    // Services: the API and the admin port, onto the container's ports, selecting the pods.
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    for (name, want) in [
        (
            "switchyard",
            vec![("http", api_port), ("admin", admin_port)],
        ),
        ("switchyard-metrics", vec![("admin", admin_port)]),
    ] {
        let svc = get(&m, "Service", name);
        for (k, v) in svc["spec"]["selector"].as_mapping().unwrap() {
            assert_eq!(
                &labels[k.as_str().unwrap()],
                v,
                "Service {name} selects the pods"
            );
        }
        let ports = svc["spec"]["ports"].as_sequence().unwrap();
        for (port_name, number) in want {
            let p = ports
                .iter()
                .find(|p| p["name"].as_str() == Some(port_name))
                .unwrap_or_else(|| panic!("Service {name} has no port {port_name}"));
            assert_eq!(
                p["port"].as_u64(),
                Some(number),
                "Service {name} port {port_name}"
            );
            assert_eq!(container_port(c, &p["targetPort"]), number);
        }
    }
    let prometheus = read("deploy/prometheus/prometheus.yml");
    assert!(
        prometheus.contains("switchyard-metrics.switchyard.svc"),
        "Prometheus finds the pods"
    );

    // Redis: the Service the config's redis_url names, onto the Redis pods.
    assert_eq!(
        raw.state.backend.as_ref().map(|b| b.get_ref().as_str()),
        Some("redis")
    );
    let url = raw.state.redis_url.as_ref().unwrap().get_ref().clone();
    let host_port = url
        .strip_prefix("redis://")
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let (host, port) = host_port.split_once(':').unwrap();
    let redis_svc = get(&m, "Service", host);
    let redis = get(&m, "Deployment", host);
    assert_eq!(
        redis_svc["spec"]["ports"][0]["port"].as_u64(),
        port.parse().ok()
    );
    let redis_c = &redis["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container_port(redis_c, &redis_svc["spec"]["ports"][0]["targetPort"]),
        6379
    );
    for (k, v) in redis_svc["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(
            &redis["spec"]["template"]["metadata"]["labels"][k.as_str().unwrap()],
            v
        );
    }
    redis_is_locked_to_the_gateway(&m, &raw, redis, c, labels);

    // The PodDisruptionBudget and the HPA act on the gateway's pods and Deployment.
    let pdb = get(&m, "PodDisruptionBudget", "switchyard");
    for (k, v) in pdb["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(&labels[k.as_str().unwrap()], v);
    }
    let hpa = get(&m, "HorizontalPodAutoscaler", "switchyard");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["kind"].as_str(),
        Some("Deployment")
    );
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"].as_str(),
        Some("switchyard")
    );
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["name"].as_str(),
        Some("cpu")
    );
    assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 2);
}

#[test]
fn the_configmap_config_passes_switchyard_check() {
    let m = manifests();
    let text = configmap_config(&m);
    // It names api.openai.com, which does not resolve on a machine without a network, and
    // `check` resolves provider hosts. So: check it with the vendor hosts pointed at this
    // machine (every other rule of the config is checked as is), with the Secret's variables.
    let raw: switchyard::config::raw::Config = toml::from_str(&text).unwrap();
    let mut local = text.clone();
    for p in &raw.providers {
        if let Some(url) = &p.base_url {
            let url = url.get_ref();
            let after_scheme = url.split_once("://").unwrap().1;
            let host = after_scheme.split(['/', ':']).next().unwrap();
            let localized = url.replacen(host, "127.0.0.1", 1);
            local = local.replace(url.as_str(), &localized);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, &local).unwrap();
    // The gateway's environment: every Secret of its envFrom (vendor keys, Redis password).
    let secret_vars: Vec<(String, String)> = ["switchyard-vendor-keys", "switchyard-redis"]
        .iter()
        .flat_map(|name| {
            let secret = get(&m, "Secret", name);
            secret["stringData"]
                .as_mapping()
                .unwrap()
                .iter()
                .map(|(k, v)| (str_of(k).to_string(), str_of(v).to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut cmd = Command::new(switchyard_bin());
    cmd.args(["check", "-c"]).arg(&path).current_dir(dir.path());
    cmd.envs(secret_vars.iter().cloned());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "switchyard check: {}\n{local}",
        output_text(&out)
    );

    // With TLS turned on as the comments show (the Secret's files made here): valid too.
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["switchyard.switchyard.svc".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();
    let with_tls = local
        .replace("# tls_cert = ", "tls_cert = ")
        .replace("# tls_key = ", "tls_key = ")
        .replace("/etc/switchyard/tls", &dir.path().display().to_string());
    assert!(with_tls.contains("\ntls_cert = "), "{with_tls}");
    let tls_path = dir.path().join("with-tls.toml");
    std::fs::write(&tls_path, &with_tls).unwrap();
    let mut cmd = Command::new(switchyard_bin());
    cmd.args(["check", "-c"])
        .arg(&tls_path)
        .current_dir(dir.path());
    cmd.envs(secret_vars.iter().cloned());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "with TLS: {}", output_text(&out));

    // Without the Secret's variables it is refused: the env vars really are needed.
    let mut cmd = Command::new(switchyard_bin());
    cmd.args(["check", "-c"]).arg(&path).current_dir(dir.path());
    for (k, _) in &secret_vars {
        cmd.env_remove(k);
    }
    assert!(!cmd.output().unwrap().status.success());
}

// -------------------------------------------------------------------------------------------
// The container image

fn dockerfile_instruction(text: &str, instruction: &str) -> Vec<String> {
    // Joins continuation lines first.
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter_map(|l| {
            let (word, rest) = l.split_once(char::is_whitespace)?;
            word.eq_ignore_ascii_case(instruction)
                .then(|| rest.trim().to_string())
        })
        .collect()
}

#[test]
fn the_dockerfile_builds_a_small_non_root_image_serving_the_config_path() {
    let text = read("deploy/Dockerfile");
    let froms = dockerfile_instruction(&text, "FROM");
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    assert!(
        froms[0].contains("rust"),
        "builds in a Rust image: {}",
        froms[0]
    );
    let runtime = froms.last().unwrap();
    assert!(
        runtime.contains("slim") || runtime.contains("distroless"),
        "runs on a small image: {runtime}"
    );
    let runs = dockerfile_instruction(&text, "RUN").join("\n");
    assert!(runs.contains("cmake"), "pingora needs cmake to build");
    assert!(
        runs.contains("ca-certificates"),
        "HTTPS vendors need CA certificates"
    );
    assert!(runs.contains("--locked"), "the build uses Cargo.lock");
    let user = dockerfile_instruction(&text, "USER");
    let user = user.last().expect("USER");
    assert!(
        !["root", "0", "0:0"].contains(&user.as_str()),
        "runs as root: USER {user}"
    );
    let expose: BTreeSet<String> = dockerfile_instruction(&text, "EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let container_cfg = read("deploy/container.toml");
    let raw: switchyard::config::raw::Config = toml::from_str(&container_cfg).unwrap();
    for addr in [
        raw.server.listen.as_ref().unwrap().get_ref(),
        raw.server.admin_listen.as_ref().unwrap().get_ref(),
    ] {
        assert!(
            addr.starts_with("0.0.0.0:"),
            "{addr}: unreachable from outside the container"
        );
        assert!(
            expose.contains(&port_of(addr).to_string()),
            "EXPOSE {expose:?} lacks {addr}"
        );
    }
    assert_eq!(
        expose,
        ["8080", "9090"].iter().map(|s| s.to_string()).collect()
    );
    let entry = dockerfile_instruction(&text, "ENTRYPOINT").join(" ");
    let cmd = dockerfile_instruction(&text, "CMD").join(" ");
    let argv: Vec<String> = serde_json::from_str::<Vec<String>>(&entry)
        .unwrap()
        .into_iter()
        .chain(serde_json::from_str::<Vec<String>>(&cmd).unwrap())
        .collect();
    assert!(argv[0].ends_with("/switchyard"));
    assert_eq!(argv[1..], ["serve", "-c", CONFIG_PATH]);
    // The default config it copies there is the one checked here, and it is valid.
    assert!(dockerfile_instruction(&text, "COPY")
        .iter()
        .any(|c| c == &format!("deploy/container.toml {CONFIG_PATH}")));
    let out = run_switchyard(&["check", "-c", "deploy/container.toml"], &root());
    assert!(out.status.success(), "{}", output_text(&out));
    // The build context keeps what the build copies.
    let ignore = read("deploy/Dockerfile.dockerignore");
    for path in [
        "Cargo.toml",
        "Cargo.lock",
        "src/",
        "benches/",
        "deploy/container.toml",
    ] {
        assert!(
            ignore.lines().any(|l| l == format!("!{path}")),
            "dockerignore drops {path}"
        );
    }
}
