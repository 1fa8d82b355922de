//! The examples of `README.md` and `docs/*.md` cannot rot: every fenced block marked
//! `title="checked"` (`sh` or `python`) is run against the real binary serving
//! `config/switchyard.toml` on loopback ports, and what it prints must match the block marked
//! `title="output"` right after it, where `...` stands for any text (ids, times, hashes).
//!
//! In the examples `localhost:8080` is the API listener and `localhost:9090` the admin one
//! (the example config's addresses); they are rewritten to the test's ports. `sh` blocks run
//! in `bash` from the repository's root with the built `switchyard` first on `PATH`; `python`
//! blocks run in the interpreter of the Python tests (`SWITCHYARD_PYTHON`, see `.ci/run`).
//! Only stdout is compared: an example that shows stderr redirects it (`2>&1`).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// One checked example: where it is, its language, its code and the output it shows.
#[derive(Debug)]
struct Example {
    place: String,
    lang: String,
    code: String,
    expected: String,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every `docs/*.md`, sorted.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The fenced blocks of a markdown text: (line of the opening fence, info string, body).
fn fences(text: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String, Vec<&str>)> = None;
    for (i, line) in text.lines().enumerate() {
        match open.take() {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    open = Some((i + 1, info.trim().to_string(), Vec::new()));
                }
            }
            Some((at, info, mut body)) => {
                if line.trim_end() == "```" {
                    out.push((at, info, body.join("\n")));
                } else {
                    body.push(line);
                    open = Some((at, info, body));
                }
            }
        }
    }
    assert!(open.is_none(), "an unclosed fence");
    out
}

/// The checked examples of one file; panics when one lacks its output block.
fn examples_of(path: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.strip_prefix(root()).unwrap().display().to_string();
    let blocks = fences(&text);
    let mut out = Vec::new();
    for (i, (line, info, body)) in blocks.iter().enumerate() {
        if !info.contains(r#"title="checked""#) {
            continue;
        }
        let place = format!("{name}:{line}");
        let lang = info.split_whitespace().next().unwrap_or("").to_string();
        assert!(
            matches!(lang.as_str(), "sh" | "python"),
            "{place}: a checked block is sh or python"
        );
        let output = blocks
            .get(i + 1)
            .filter(|(_, info, _)| info.contains(r#"title="output""#))
            .unwrap_or_else(|| panic!("{place}: no ```text title=\"output\"``` block after it"));
        out.push(Example {
            place,
            lang,
            code: body.clone(),
            expected: output.2.clone(),
        });
    }
    out
}

/// Lines with their trailing spaces cut, and no trailing empty lines.
fn normalized(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim_end().to_string()
}

/// Whether `actual` is `expected` with each `...` standing for any text (newlines included).
fn matches(expected: &str, actual: &str) -> bool {
    let (expected, actual) = (normalized(expected), normalized(actual));
    let pieces: Vec<&str> = expected.split("...").collect();
    if pieces.len() == 1 {
        return expected == actual;
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if !actual.starts_with(first) {
        return false;
    }
    let mut at = first.len();
    for piece in &pieces[1..pieces.len() - 1] {
        match actual[at..].find(piece) {
            Some(found) => at += found + piece.len(),
            None => return false,
        }
    }
    actual.len() >= at + last.len() && actual.ends_with(last)
}

/// Runs one example against the gateway `gw`; its stdout.
fn run(ex: &Example, gw: &Gateway) -> String {
    let code = ex
        .code
        .replace("localhost:8080", &gw.api_addr().to_string())
        .replace("localhost:9090", &gw.admin_addr().to_string());
    let bin_dir = switchyard_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = match ex.lang.as_str() {
        "sh" => {
            let mut c = Command::new("bash");
            c.args(["-euo", "pipefail", "-c", &code]);
            c
        }
        _ => {
            let mut c = Command::new(python());
            c.args(["-c", &code]);
            c
        }
    };
    let out = cmd
        .current_dir(root())
        .env("PATH", path)
        .output()
        .expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}: exited {:?}\n--- code ---\n{}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        ex.place,
        out.status.code(),
        ex.code,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn every_checked_example_prints_what_it_shows() {
    let examples: Vec<Example> = doc_files().iter().flat_map(|f| examples_of(f)).collect();
    assert!(
        examples.len() >= 10,
        "only {} checked examples",
        examples.len()
    );
    assert!(
        examples.iter().any(|e| e.place.starts_with("README.md")),
        "the README's examples are checked"
    );
    let gw = Gateway::start_raw(&shipped_config("config/switchyard.toml")).await;
    let mut failures = Vec::new();
    for ex in &examples {
        let actual = run(ex, &gw);
        if !matches(&ex.expected, &actual) {
            failures.push(format!(
                "{}: the output differs\n--- shown ---\n{}\n--- printed ---\n{actual}",
                ex.place, ex.expected
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_matcher_takes_dots_for_any_text() {
    assert!(matches("a\nb", "a\nb  \n\n"));
    assert!(!matches("a\nb", "a\nc"));
    assert!(matches(
        r#"{"id":"...","n":1}"#,
        r#"{"id":"chatcmpl-12ab","n":1}"#
    ));
    assert!(!matches(r#"{"id":"...","n":1}"#, r#"{"id":"x","n":2}"#));
    assert!(matches("head\n...\ntail", "head\nx\ny\ntail"));
    assert!(!matches("ab...ba", "aba"), "the pieces may not overlap");
}

#[test]
fn every_checked_block_is_followed_by_its_output() {
    // examples_of panics on a checked block without an output block.
    let n: usize = doc_files().iter().map(|f| examples_of(f).len()).sum();
    assert!(n > 0);
}
