//! The real coding agents from npm, with their default settings apart from where their API
//! is, against the real binary (#27, "What it must show"): Codex CLI (`codex exec`) on a model
//! routed to the built-in mock and on one routed to a strict Anthropic mock; Claude Code
//! (`claude -p`) on an `openai` route and on the built-in mock.
//!
//! The settings are the README's ("Use it with Codex CLI and Claude Code"), read from it.
//!
//! Each client is installed in its own folder, `tests/clients/<name>/`, at the version its
//! `package-lock.json` pins (`.ci/run` runs `npm ci` there; locally:
//! `npm ci --prefix tests/clients/codex` and `npm ci --prefix tests/clients/claude-code`). A
//! missing install is a failure that says so, not a skip. Each client runs offline: a fresh
//! HOME, an environment cleared but for `PATH`, what its docs name to turn off telemetry and
//! update checks, and the gateway on loopback.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support;

use serde_json::Value;
use support::*;

/// How long one client run may take (each takes a few seconds).
const RUN_LIMIT: Duration = Duration::from_secs(50);

/// `tests/clients/<name>/node_modules/<rel>`, or a failure saying how to install it.
pub(crate) fn installed(name: &str, rel: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name);
    let path = dir.join("node_modules").join(rel);
    assert!(
        path.exists(),
        "{} is missing: install the pinned client with `npm ci --prefix {}` (.ci/run does)",
        path.display(),
        dir.display()
    );
    path
}

/// What a client run printed.
pub(crate) struct Run {
    pub(crate) success: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `program args…` in `home/work` with `HOME=home`, only `PATH` and `env` besides.
pub(crate) async fn run(program: &Path, args: &[&str], home: &Path, env: &[(&str, &str)]) -> Run {
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(&work)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{} did not finish in {RUN_LIMIT:?}", program.display()))
        .unwrap_or_else(|e| panic!("{} could not start: {e}", program.display()));
    Run {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The README's section for the coding agents ("Use it with Codex CLI and Claude Code").
fn readme_section() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("## Use it with Codex CLI and Claude Code")
        .expect("the README's section for Codex CLI and Claude Code");
    let rest = &readme[start + 3..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string()
}

/// The first fenced block of `lang` in the README's section.
fn readme_block(lang: &str) -> String {
    let section = readme_section();
    let open = format!("```{lang}\n");
    let start = section.find(&open).expect("a fenced block") + open.len();
    let len = section[start..].find("```").expect("its end");
    section[start..start + len].to_string()
}

/// The `~/.codex/config.toml` the README gives, pointed at `base_url` and `model`.
fn codex_config(base_url: &str, model: &str) -> String {
    let config = readme_block("toml");
    assert!(config.contains("model = \"demo\"\n") && config.contains("http://localhost:8080/v1"));
    config
        .replace("model = \"demo\"", &format!("model = \"{model}\""))
        .replace("http://localhost:8080/v1", base_url)
}

/// The environment the README gives Claude Code, pointed at `gw`.
fn claude_env(gw: &Gateway) -> Vec<(String, String)> {
    let base = gw.url("");
    readme_block("sh")
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| {
            let v = v.replace("http://localhost:8080", base.trim_end_matches('/'));
            (k.to_string(), v)
        })
        .collect()
}

/// `codex exec "<prompt>"` against `gw` with `model`.
async fn codex_exec(gw: &Gateway, model: &str, prompt: &str) -> Run {
    let codex = installed("codex", ".bin/codex");
    let home = tempfile::tempdir().unwrap();
    let codex_home = home.path().join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(
        codex_home.join("config.toml"),
        codex_config(&gw.url("/v1"), model),
    )
    .unwrap();
    run(
        &codex,
        &["exec", "--skip-git-repo-check", prompt],
        home.path(),
        &[
            ("CODEX_HOME", codex_home.to_str().unwrap()),
            ("SWITCHYARD_API_KEY", DEMO_SECRET),
        ],
    )
    .await
}

/// `claude -p "<prompt>"` against `gw` with the README's settings (`ANTHROPIC_BASE_URL` the
/// gateway, `ANTHROPIC_API_KEY` the demo key), and Claude Code's documented switches for
/// everything that is not the API (`CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC`: auto-updater,
/// telemetry, error reporting; `DISABLE_AUTOUPDATER`).
pub(crate) async fn claude_p(gw: &Gateway, prompt: &str) -> Run {
    let wrapper = installed("claude-code", "@anthropic-ai/claude-code/cli-wrapper.cjs");
    let home = tempfile::tempdir().unwrap();
    let readme = claude_env(gw);
    let names: Vec<&str> = readme.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"],
        "the README's settings"
    );
    let mut env: Vec<(&str, &str)> = readme
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.extend([
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ("DISABLE_AUTOUPDATER", "1"),
    ]);
    run(
        Path::new("node"),
        &[wrapper.to_str().unwrap(), "-p", prompt],
        home.path(),
        &env,
    )
    .await
}

/// The usage log shows `model` answered 200, and every request the client made answered 200
/// (no endpoint it calls is missing, no field it sends is refused).
pub(crate) async fn answered(gw: &Gateway, model: &str) {
    let lines = gw.wait_usage_lines(1).await;
    assert!(
        lines
            .iter()
            .any(|l| l["model"] == model && l["status"] == 200),
        "no 200 for {model} in the usage log: {lines:?}"
    );
    let failed: Vec<&Value> = lines.iter().filter(|l| l["status"] != 200).collect();
    assert!(failed.is_empty(), "requests that failed: {failed:?}");
}

fn requests_ok(metrics: &str, model: &str) -> f64 {
    metric_value(
        metrics,
        "switchyard_requests_total",
        &[("model", model), ("status", "200")],
    )
    .unwrap_or(0.0)
}

/// The model names Claude Code asks for by default (2.1.332: `claude-opus-5-5` for its main
/// model), matched by an alias pattern as in the example config (`config/switchyard.toml`), so
/// that no version's names need typing.
pub(crate) const CLAUDE_CODE_MODELS: &str = r#"aliases = ["claude-*"]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_exec_on_the_builtin_mock_and_a_strict_anthropic() {
    let anth = MockAnthropic::start("anth-codex-key").await;
    let body = ConfigBody::new()
        .usage_log()
        .provider(
            "anth",
            "anthropic",
            &anth.origin(),
            "api_key_env = \"SY_RC_ANTH\"",
        )
        .mock_provider("local")
        .model("codex-mock", &[("local", "mock-1")])
        .model("codex-claude", &[("anth", "claude-sonnet-4-5")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body)
        .env("SY_RC_ANTH", "anth-codex-key")
        .start()
        .await;

    let r = codex_exec(&gw, "codex-mock", "say hi").await;
    assert!(r.success, "codex exec failed:\n{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("You said: say hi"),
        "Codex printed the mock's answer:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    answered(&gw, "codex-mock").await;

    let r = codex_exec(&gw, "codex-claude", "say hi").await;
    assert!(r.success, "codex exec failed:\n{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(ANTHROPIC_REPLY),
        "Codex printed Anthropic's answer:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    answered(&gw, "codex-claude").await;
    let sent = anth.last().json();
    let tools: Vec<&str> = sent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        tools.iter().any(|t| t.starts_with("multi_agent_v1__")),
        "Codex's namespace tools reached Anthropic flattened: {tools:?}"
    );
    let m = gw.metrics().await;
    assert!(requests_ok(&m, "codex-mock") >= 1.0, "{m}");
    assert!(requests_ok(&m, "codex-claude") >= 1.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_p_on_an_openai_route_and_the_builtin_mock() {
    let oai = MockUpstream::start().await;
    let openai = ConfigBody::new()
        .usage_log()
        .provider("oai", "openai", &oai.base_url(), "")
        .model_with("cc-openai", CLAUDE_CODE_MODELS, &[("oai", "gpt-5")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::start(&openai).await;
    let r = claude_p(&gw, "say hi").await;
    assert!(r.success, "claude -p failed:\n{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("tok0"),
        "Claude Code printed the vendor's answer:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    answered(&gw, "cc-openai").await;
    let sent = oai.last_request().unwrap().json();
    assert_eq!(sent["model"], "gpt-5", "{sent}");

    let mock = ConfigBody::new()
        .usage_log()
        .mock_provider("local")
        .model_with("cc-mock", CLAUDE_CODE_MODELS, &[("local", "mock-large")])
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::start(&mock).await;
    let r = claude_p(&gw, "say hi").await;
    assert!(r.success, "claude -p failed:\n{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("Hello from Switchyard's mock provider."),
        "Claude Code printed the mock's answer:\n{}\n{}",
        r.stdout,
        r.stderr
    );
    answered(&gw, "cc-mock").await;
}
