//! `switchyard check` through the binary: `--offline` (no environment, no key file, no DNS)
//! lists every mistake of a config and passes the shipped configs with no environment set;
//! plain `check` still reads the environment and resolves hosts.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `switchyard check ARGS… -c PATH` in `cwd` with an empty environment: no vendor key
/// variable can be set by accident.
fn check(path: &Path, offline: bool, cwd: &Path) -> Output {
    let mut cmd = Command::new(switchyard_bin());
    cmd.arg("check").arg("-c").arg(path);
    if offline {
        cmd.arg("--offline");
    }
    cmd.current_dir(cwd)
        .env_clear()
        .output()
        .expect("run switchyard check")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The 1-based line holding `marker`.
fn line_of(text: &str, marker: &str) -> usize {
    text.lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("no {marker:?} in the config"))
        + 1
}

/// Eleven mistakes in eleven sections or items (one a misspelt field), with vendor key
/// variables that are not set and hosts that cannot resolve (`.invalid`, RFC 6761):
/// `--offline` reports every mistake and nothing about the variables or hosts.
const MISTAKES: &str = r#"
[server]
listen = "127.0.0.1:18080"
threads = 0                                  # <- server

[routing]
max_attempts = 99                            # <- routing

[log]
usgae = "-"                                  # <- log

[[providers]]
name = "openai"
kind = "openai"
base_url = "https://api.openai.invalid/v1"
api_key_env = "SWITCHYARD_CI_OPENAI_KEY"
connect_timeout_ms = 0                       # <- provider openai

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "https://api.anthropic.invalid"
api_key_file = "/run/secrets/anthropic-key"
api_version = "2024-01-01"                   # <- provider claude

[[models]]
name = "gpt"
  [[models.routes]]
  provider = "openia"                        # <- model gpt
  model = "gpt-4o"

[[models]]
name = "sonnet"
  [[models.routes]]
  provider = "claude"
  model = "claude-sonnet-4"
  weight = 0                                 # <- model sonnet

[[teams]]
name = "ml"
models = ["gpt-[4"]                          # <- team

[[keys]]
id = "ci bot"                                # <- key
team = "ml"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

[[content_filters]]
name = "secrets"
deny = ["(sk-"]                              # <- filter

[telemetry]
endpoint = "http://collector.invalid:4318"
sample_ratio = 2                             # <- telemetry
"#;

#[test]
fn check_offline_lists_every_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mistakes.toml");
    std::fs::write(&path, MISTAKES).unwrap();
    let out = check(&path, true, dir.path());
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = [
        ("server", "server.threads"),
        ("routing", "routing.max_attempts"),
        ("log", "log.usgae"),
        ("provider openai", "providers[0].connect_timeout_ms"),
        ("provider claude", "providers[1].api_version"),
        ("model gpt", "models[0].routes[0].provider"),
        ("model sonnet", "models[1].routes[0].weight"),
        ("team", "teams[0].models[0]"),
        ("key", "keys[0].id"),
        ("filter", "content_filters[0].deny[0]"),
        ("telemetry", "telemetry.sample_ratio"),
    ];
    for (marker, config_path) in expected {
        let line = line_of(MISTAKES, &format!("# <- {marker}"));
        let want = format!("{}:{line}: {config_path}: ", path.display());
        assert!(stderr.contains(&want), "wanted {want:?}\n{shown}");
    }
    let errors = stderr
        .lines()
        .filter(|l| {
            l.split("mistakes.toml:")
                .nth(1)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    assert_eq!(errors, expected.len(), "one line per mistake\n{shown}");
    assert!(
        stderr.contains(&format!("{}: {} errors", path.display(), expected.len())),
        "the count at the end\n{shown}"
    );
    for hidden in ["SWITCHYARD_CI_OPENAI_KEY", "anthropic-key", "resolve"] {
        assert!(
            !stderr.contains(hidden),
            "offline mentions {hidden}\n{shown}"
        );
    }

    // Plain `check` finds the same mistakes and also what only the environment and DNS
    // can tell: the variable is not set, the key file is missing, the collector unknown
    // (each provider's first error is its own: the openai one is still its timeout).
    let out = check(&path, false, dir.path());
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("server.threads"), "{shown}");
}

/// A config without mistakes but whose variables are unset and hosts unknown: fine offline;
/// plain `check` names the variable, the key file and the host.
#[test]
fn plain_check_still_needs_the_environment_and_dns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    let config = r#"
[[providers]]
name = "openai"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "SWITCHYARD_CI_OPENAI_KEY"

[[providers]]
name = "claude"
kind = "anthropic"
base_url = "https://api.anthropic.invalid"

[[providers]]
name = "gemini"
kind = "gemini"
base_url = "http://127.0.0.1:9"
api_key_file = "/run/secrets/switchyard-ci-gemini-key"
"#;
    std::fs::write(&path, config).unwrap();
    let out = check(&path, true, dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok (3 providers"), "{stdout}");
    assert!(stdout.contains("offline"), "{stdout}");

    let out = check(&path, false, dir.path());
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let p = path.display();
    assert!(
        stderr.contains(&format!(
            "{p}:6: providers[0].api_key_env: environment variable SWITCHYARD_CI_OPENAI_KEY is not set"
        )),
        "{shown}"
    );
    assert!(
        stderr.contains(&format!(
            "{p}:11: providers[1].base_url: cannot resolve host api.anthropic.invalid:443"
        )),
        "{shown}"
    );
    assert!(
        stderr.contains(&format!(
            "{p}:17: providers[2].api_key_file: cannot read /run/secrets/switchyard-ci-gemini-key"
        )),
        "{shown}"
    );
    assert!(stderr.contains(&format!("{p}: 3 errors")), "{shown}");
}

/// The TOML of the Kubernetes ConfigMap (`deploy/kubernetes/configmap.yaml`).
fn kubernetes_config() -> String {
    let yaml = std::fs::read_to_string(root().join("deploy/kubernetes/configmap.yaml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    doc["data"]["switchyard.toml"]
        .as_str()
        .expect("data.switchyard.toml")
        .to_string()
}

/// Every config the repository ships passes `check --offline` with no environment at all.
#[test]
fn check_offline_passes_the_shipped_configs() {
    let dir = tempfile::tempdir().unwrap();
    let k8s = dir.path().join("kubernetes.toml");
    std::fs::write(&k8s, kubernetes_config()).unwrap();
    let mut shipped = vec![
        root().join("config/switchyard.toml"),
        root().join("deploy/container.toml"),
        k8s.clone(),
    ];
    for entry in std::fs::read_dir(root().join("config/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            shipped.push(path);
        }
    }
    for path in &shipped {
        let out = check(path, true, &root());
        assert!(out.status.success(), "{}: {}", path.display(), text(&out));
    }

    // Plain `check` of the Kubernetes config needs the vendor key variable.
    let out = check(&k8s, false, &root());
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("OPENAI_API_KEY is not set"), "{shown}");
}
