//! The command line of spec §5: `check`, `key new`, `--version`, and `serve` refusing a bad
//! config.

use crate::support;

use serde_json::Value;
use support::*;

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_accepts_the_example_config() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = run_switchyard(&["check", "-c", "config/switchyard.toml"], root);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_names_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // (config, line, words the reason must contain)
        ("[server]\nlisten = \"127.0.0.1:1\"\nbogus = 1\n", 3, "bogus"),
        (
            "[[providers]]\nname = \"p\"\nkind = \"mock\"\n\n[[models]]\nname = \"m\"\n  [[models.routes]]\n  provider = \"nope\"\n  model = \"x\"\n",
            8,
            "nope",
        ),
        ("[[models]\nname = 1\n", 1, ""),
        (
            "[[content_filters]]\nname = \"f\"\ndeny = ['(unclosed']\n",
            3,
            "regex",
        ),
    ];
    for (text, line, words) in cases {
        let path = write(dir.path(), "bad.toml", text);
        let out = run_switchyard(&["check", "-c", path.to_str().unwrap()], dir.path());
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        let want = format!("{}:{line}:", path.display());
        assert!(err.contains(&want), "{text}\nwanted {want} in: {err}");
        assert!(err.contains(words), "{text}\nwanted {words} in: {err}");
    }
}

#[test]
fn serve_refuses_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.toml",
        "[server]\nlisten = \"not an address\"\n",
    );
    let out = run_switchyard(&["serve", "-c", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:2:", path.display())), "{err}");
}

#[tokio::test]
async fn key_new_prints_a_working_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_switchyard(
        &["key", "new", "--id", "ci-bot", "--team", "demo"],
        dir.path(),
    );
    assert!(out.status.success());
    // The secret on stderr; stdout is the stanza alone (`>> config` never writes the secret).
    let err = String::from_utf8(out.stderr).unwrap();
    let secret = err
        .lines()
        .find(|l| l.starts_with("sk-"))
        .expect("the secret is printed")
        .to_string();
    let stanza = &String::from_utf8(out.stdout).unwrap();
    assert!(stanza.starts_with("[[keys]]"), "{stanza}");
    assert!(stanza.contains(&sha256_hex(&secret)));
    assert!(!stanza.contains(&secret), "the stanza holds only the hash");

    // The stanza, pasted into a config, lets the secret in.
    let config = format!(
        "[[providers]]\nname = \"m\"\nkind = \"mock\"\n\n[[models]]\nname = \"x\"\n  [[models.routes]]\n  provider = \"m\"\n  model = \"y\"\n\n[[teams]]\nname = \"demo\"\n\n{stanza}"
    );
    let gw = Gateway::start(&config).await;
    let resp = gw.chat(&secret, &chat_body("x", "hello", false)).await;
    assert_eq!(resp.status(), 200, "{}", gw.logs());
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
}

#[test]
fn key_new_refuses_an_id_check_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    for (args, flag) in [
        (["--id", "ci/bot", "--team", "demo"], "--id"),
        (["--id", "", "--team", "demo"], "--id"),
        (["--id", "ci-bot", "--team", "a team"], "--team"),
    ] {
        let mut all = vec!["key", "new"];
        all.extend(args);
        let out = run_switchyard(&all, dir.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: no stanza");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag), "{args:?}: {err}");
        assert!(
            !err.contains("sk-"),
            "{args:?}: no secret for a refused key: {err}"
        );
    }
}

#[test]
fn version_is_printed() {
    let out = run_switchyard(&["--version"], std::path::Path::new("."));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("switchyard "));
}
