//! `switchyard usage` (spec §5): the report over a generated month of usage log — the live
//! file, a rotated one and a gzipped older one, with a corrupt line, a line that is not UTF-8
//! and a last line cut short — in each format, checked against a straightforward recount of
//! the generated lines; the config's log and its rotated siblings when no file is named; a log
//! the real gateway wrote; and the argument errors (exit 2, the argument named).

use crate::support;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};
use support::*;

/// One generated usage line's fields that a report reads.
#[derive(Clone, Debug)]
struct Rec {
    time: String,
    key: &'static str,
    team: &'static str,
    model: &'static str,
    provider: &'static str,
    user: Option<&'static str>,
    tags: Vec<&'static str>,
    prompt: u64,
    completion: u64,
    cost: f64,
}

impl Rec {
    /// The line as the gateway writes it (every field; `user` and `tags` only when present).
    fn line(&self) -> String {
        let mut v = json!({
            "request_id": "req_x", "time": self.time, "key": self.key, "team": self.team,
            "model": self.model, "provider": self.provider, "upstream_model": self.model,
            "stream": false, "status": 200, "attempts": 1, "prompt_tokens": self.prompt,
            "completion_tokens": self.completion, "cached_tokens": 0, "cache_write_tokens": 0,
            "reasoning_tokens": 0, "cost_usd": self.cost, "duration_ms": 12.5,
        });
        if let Some(u) = self.user {
            v["user"] = json!(u);
        }
        if !self.tags.is_empty() {
            v["tags"] = json!(self.tags);
        }
        v.to_string()
    }

    /// The value of one grouping (a line with several tags has several: one per tag).
    fn values(&self, by: &str) -> Vec<String> {
        match by {
            "team" => vec![self.team.into()],
            "key" => vec![self.key.into()],
            "model" => vec![self.model.into()],
            "provider" => vec![self.provider.into()],
            "user" => vec![self.user.unwrap_or("-").into()],
            "tag" if self.tags.is_empty() => vec!["-".into()],
            "tag" => self.tags.iter().map(|t| t.to_string()).collect(),
            "day" => vec![self.time[..10].into()],
            "month" => vec![self.time[..7].into()],
            other => panic!("{other}"),
        }
    }
}

/// A month (November 2026, UTC) of `n` requests, deterministic.
fn month(n: usize) -> Vec<Rec> {
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let teams = [
        ("platform", "k-plat"),
        ("search", "k-search"),
        ("ads", "k-ads"),
    ];
    let models = [
        ("gpt-4o", "openai"),
        ("claude", "anthropic"),
        ("gemini", "google"),
    ];
    let users = [None, Some("alice"), Some("bob"), Some("x,\"y\"")];
    let tags: [&[&str]; 4] = [&[], &["a"], &["a", "b"], &["b"]];
    (0..n)
        .map(|i| {
            let secs = i as u64 * (30 * 86_400) / n as u64;
            let (day, rest) = (1 + secs / 86_400, secs % 86_400);
            let time = format!(
                "2026-11-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
                rest / 3600,
                rest / 60 % 60,
                rest % 60,
                next() % 1000
            );
            let (team, key) = teams[next() as usize % 3];
            let (model, provider) = models[next() as usize % 3];
            let prompt = next() % 50_000;
            let completion = next() % 4_000;
            Rec {
                time,
                key,
                team,
                model,
                provider,
                user: users[next() as usize % 4],
                tags: tags[next() as usize % 4].to_vec(),
                prompt,
                completion,
                cost: (prompt as f64 * 3.0 + completion as f64 * 15.0) / 1e6,
            }
        })
        .collect()
}

/// The straightforward recount: group values → (requests, prompt, completion, cost).
fn recount(recs: &[Rec], by: &[&str]) -> HashMap<Vec<String>, (u64, u64, u64, f64)> {
    let mut groups: HashMap<Vec<String>, (u64, u64, u64, f64)> = HashMap::new();
    for r in recs {
        let mut keys: Vec<Vec<String>> = vec![Vec::new()];
        for b in by {
            keys = keys
                .into_iter()
                .flat_map(|k| {
                    r.values(b).into_iter().map(move |v| {
                        let mut k = k.clone();
                        k.push(v);
                        k
                    })
                })
                .collect();
        }
        for k in keys {
            let g = groups.entry(k).or_default();
            g.0 += 1;
            g.1 += r.prompt;
            g.2 += r.completion;
            g.3 += r.cost;
        }
    }
    groups
}

/// Writes the month as a gateway and logrotate leave it: `usage.jsonl.2.gz` (the oldest
/// third, gzipped, with a line that is not UTF-8), `usage.jsonl.1` (with a corrupt line) and
/// `usage.jsonl` (ending in a line cut short). Three lines to skip.
fn write_logs(dir: &Path, recs: &[Rec]) {
    let third = recs.len() / 3;
    let lines = |rs: &[Rec]| -> Vec<u8> {
        rs.iter()
            .flat_map(|r| (r.line() + "\n").into_bytes())
            .collect()
    };
    let mut old = lines(&recs[..third]);
    old.extend_from_slice(b"{\"time\":\"2026-11-05T00:00:00.000Z\",\"team\":\"\xff\xfe\"}\n");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&old).unwrap();
    std::fs::write(dir.join("usage.jsonl.2.gz"), gz.finish().unwrap()).unwrap();
    let mut rotated = lines(&recs[third..2 * third]);
    rotated.extend_from_slice(b"garbage{\n");
    rotated.extend(lines(&recs[2 * third..2 * third + 10]));
    std::fs::write(dir.join("usage.jsonl.1"), rotated).unwrap();
    let mut live = lines(&recs[2 * third + 10..]);
    let cut = recs[0].line();
    live.extend_from_slice(&cut.as_bytes()[..cut.len() / 2]);
    std::fs::write(dir.join("usage.jsonl"), live).unwrap();
}

fn usage(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let mut all = vec!["usage"];
    all.extend_from_slice(args);
    let out = run_switchyard(&all, cwd);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Checks a JSON report against the recount: the same groups, each with the same figures
/// (cost to the micro-dollar, as printed).
fn assert_json_matches(stdout: &str, recs: &[Rec], by: &[&str]) {
    let rows: Vec<Value> = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let want = recount(recs, by);
    assert_eq!(rows.len(), want.len(), "groups of {by:?}: {stdout}");
    for row in &rows {
        let key: Vec<String> = by
            .iter()
            .map(|b| row[*b].as_str().unwrap().to_string())
            .collect();
        let (n, p, c, cost) = want
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} not in the recount"));
        assert_eq!(row["requests"], *n, "{row}");
        assert_eq!(row["prompt_tokens"], *p, "{row}");
        assert_eq!(row["completion_tokens"], *c, "{row}");
        let got = row["cost_usd"].as_f64().unwrap();
        assert!((got - cost).abs() < 1e-6, "{row}: {got} vs {cost}");
    }
}

#[test]
fn the_report_over_a_rotated_gzipped_month_matches_a_recount() {
    let dir = tempfile::tempdir().unwrap();
    let recs = month(4_000);
    write_logs(dir.path(), &recs);
    let files = ["usage.jsonl.2.gz", "usage.jsonl.1", "usage.jsonl"];

    // JSON, files named, grouped by team and model.
    let mut args = files.to_vec();
    args.extend(["--by", "team,model", "--format", "json"]);
    let (code, out, err) = usage(&args, dir.path());
    assert_eq!(code, 0, "{err}");
    assert_json_matches(&out, &recs, &["team", "model"]);
    assert!(
        err.contains("4003 lines read from 3 files; 3 skipped (truncated or corrupt)"),
        "{err}"
    );

    // Every grouping, one at a time and together with a day.
    for by in ["key", "provider", "user", "tag", "month"] {
        let mut args = files.to_vec();
        let both = format!("{by},day");
        args.extend(["--by", &both, "--format", "json"]);
        let (code, out, err) = usage(&args, dir.path());
        assert_eq!(code, 0, "{err}");
        assert_json_matches(&out, &recs, &[by, "day"]);
    }

    // CSV: a header, then one row per group; a value with a comma and quotes is quoted.
    let mut args = files.to_vec();
    args.extend(["--by", "user", "--format", "csv"]);
    let (code, out, _) = usage(&args, dir.path());
    assert_eq!(code, 0);
    let want = recount(&recs, &["user"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "user,requests,prompt_tokens,completion_tokens,cost_usd"
    );
    assert_eq!(lines.len(), want.len() + 1, "{out}");
    let (n, p, c, cost) = want[&vec!["x,\"y\"".to_string()]];
    let row = format!("\"x,\"\"y\"\"\",{n},{p},{c},{cost:.6}");
    assert!(lines.contains(&row.as_str()), "{row} in {out}");

    // A table over ten days of the month: a row per day, the total, what was read.
    let mut args = files.to_vec();
    args.extend([
        "--by",
        "day",
        "--since",
        "2026-11-10",
        "--until",
        "2026-11-19",
    ]);
    let (code, out, err) = usage(&args, dir.path());
    assert_eq!(code, 0, "{err}");
    let in_window: Vec<Rec> = recs
        .iter()
        .filter(|r| ("2026-11-10".."2026-11-20").contains(&&r.time[..10]))
        .cloned()
        .collect();
    let want = recount(&in_window, &["day"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "day",
            "requests",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd"
        ]
    );
    assert_eq!(lines.len(), 1 + 10 + 2, "{out}");
    for line in &lines[1..11] {
        let cells: Vec<&str> = line.split_whitespace().collect();
        let (n, p, c, cost) = want[&vec![cells[0].to_string()]];
        assert_eq!(
            cells[1..],
            [
                n.to_string(),
                p.to_string(),
                c.to_string(),
                format!("{cost:.6}")
            ],
            "{line}"
        );
    }
    let total: u64 = want.values().map(|g| g.0).sum();
    assert!(lines[11].starts_with("total"), "{out}");
    assert!(
        lines[11].split_whitespace().nth(1) == Some(&total.to_string()),
        "{out}"
    );
    assert!(
        lines[12].contains("3 skipped (truncated or corrupt)"),
        "{out}"
    );
    assert!(lines[12].contains("outside --since/--until"), "{out}");
}

#[test]
fn with_no_file_named_the_configs_log_and_its_rotated_siblings_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let recs = month(3_000);
    write_logs(&logs, &recs);
    // Not the log's: another file in the same folder.
    std::fs::write(logs.join("usage.jsonlx"), recs[0].line() + "\n").unwrap();
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        format!("[log]\nusage = \"{}/usage.jsonl\"\n", logs.display()),
    )
    .unwrap();
    let (code, out, err) = usage(
        &[
            "-c",
            config.to_str().unwrap(),
            "--by",
            "tag,month",
            "--format",
            "json",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert_json_matches(&out, &recs, &["tag", "month"]);
    assert!(err.contains("from 3 files; 3 skipped"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_reads_the_log_the_gateway_wrote() {
    let body = ConfigBody::new()
        .usage_log()
        .mock_provider("mock")
        .model_with(
            "m",
            "input_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0",
            &[("mock", "mock-1")],
        )
        .team("t", "")
        .demo_key("k", "t")
        .build();
    let gw = Gateway::builder(&body).start().await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let r = client
            .post(format!("http://{}/v1/chat/completions", gw.api_addr()))
            .bearer_auth(DEMO_SECRET)
            .json(&json!({"model":"m","messages":[{"role":"user","content":"hello there"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let lines = gw.wait_usage_lines(3).await;
    let (code, out, err) = usage(
        &[
            "-c",
            gw.config_path().to_str().unwrap(),
            "--by",
            "team,key,model,provider",
            "--format",
            "json",
        ],
        gw.dir(),
    );
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 1, "{out}");
    let row = &rows[0];
    assert_eq!(
        (
            &row["team"],
            &row["key"],
            &row["model"],
            &row["provider"],
            &row["requests"]
        ),
        (
            &json!("t"),
            &json!("k"),
            &json!("m"),
            &json!("mock"),
            &json!(3)
        )
    );
    let prompt: u64 = lines
        .iter()
        .map(|l| l["prompt_tokens"].as_u64().unwrap())
        .sum();
    assert!(prompt > 0);
    assert_eq!(row["prompt_tokens"], prompt);
    assert!(err.contains("3 lines read from 1 file; 0 skipped"), "{err}");
}

#[test]
fn bad_arguments_are_named_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("u.jsonl"), month(3)[0].line() + "\n").unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&["u.jsonl", "--by", "team,colour"], "--by: unknown grouping `colour` (one of team, key, model, provider, user, tag, day, month)"),
        (&["u.jsonl", "--by", "day,day"], "--by: `day` is named twice"),
        (&["u.jsonl", "--since", "2026-02-30"], "--since: `2026-02-30` is not a date"),
        (&["u.jsonl", "--until", "last tuesday"], "--until: `last tuesday` is not a date"),
        (&["u.jsonl", "--since", "2026-12", "--until", "2026-11"], "--since (2026-12-01T00:00:00.000Z) is not before --until"),
        (&["nope.jsonl"], "nope.jsonl: No such file"),
        (&["-c", "missing.toml"], "--config:"),
    ];
    for (args, want) in cases {
        let (code, out, err) = usage(args, dir.path());
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(want), "{args:?}: wanted {want} in: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
    }
    let (code, _, err) = usage(&["u.jsonl", "--format", "xml"], dir.path());
    assert_eq!(code, 2);
    assert!(err.contains("--format"), "{err}");
}
