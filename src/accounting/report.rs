//! `switchyard usage`: spend and tokens from the usage log (`accounting::usage_log`), grouped by
//! any of `team`, `key`, `model`, `provider`, `user`, `tag`, `day`, `month` — the monthly
//! chargeback a platform team sends.
//!
//! It streams: each file is read line by line through one reused buffer, and only the groups
//! are held (one entry per distinct group: a month's `team,model` report holds a few hundred),
//! never the lines. Files are plain or gzip (by their `.gz` name or their magic bytes;
//! concatenated gzip members too), read in the order given.
//!
//! A line counts when it is a JSON object with `time` (RFC 3339) and the numbers
//! `prompt_tokens`, `completion_tokens`, `cost_usd`; `key`, `team`, `model`, `provider`
//! default to `-`, `user` to `-` and `tags` to none (a line with no tag is in group `-`; a line
//! with several tags counts in each tag's group, so a `tag` report's total may exceed the
//! spend). Any other line (cut short by a crash or a rotation, corrupt, not JSON) is skipped
//! and counted: [`Totals::skipped`]. Every line counts, whatever its status (a refused request
//! costs 0; a client that left, 499, costs what it used).
//!
//! `--since` and `--until` take a date (`2026-11-01`: that day from 00:00 UTC), a month
//! (`2026-11`) or an RFC 3339 time; `--until` includes its whole day or month (a time is
//! excluded), so `--since 2026-11 --until 2026-11` is November (UTC).
//!
//! Throughput (`/usr/bin/time -v`, `--profile fast`, a generated log of 5,000,000 lines of
//! 455 bytes in the gateway's shape, `--by team,model`, a 2-core machine at load 9): 4.4 s of
//! CPU (1.1 M lines/s, 500 MB/s; 11.5 s wall clock under that load), peak RSS 6.3 MB; gzipped,
//! 5.8 s of CPU (860 k lines/s), 6.8 MB; 60,301 groups (`team,model,user,tag,day`): 36.7 MB.
//! A month at 100 requests/s (259 M lines) is about 4 minutes of one core. The table is in
//! `docs/usage-and-metrics.md`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// What a report groups by (`--by`), in the order given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Team,
    Key,
    Model,
    Provider,
    User,
    Tag,
    Day,
    Month,
}

impl Group {
    const ALL: [(&'static str, Group); 8] = [
        ("team", Group::Team),
        ("key", Group::Key),
        ("model", Group::Model),
        ("provider", Group::Provider),
        ("user", Group::User),
        ("tag", Group::Tag),
        ("day", Group::Day),
        ("month", Group::Month),
    ];

    /// Its name: the column's and the JSON field's.
    pub fn name(self) -> &'static str {
        Group::ALL
            .iter()
            .find(|(_, g)| *g == self)
            .map_or("", |(n, _)| n)
    }
}

/// `--by`: comma-separated groupings, each once. Errors name the argument and the value.
pub fn parse_by(by: &str) -> Result<Vec<Group>, String> {
    let mut groups = Vec::new();
    for name in by.split(',').map(str::trim) {
        let Some((_, g)) = Group::ALL.iter().find(|(n, _)| *n == name) else {
            let known: Vec<&str> = Group::ALL.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "--by: unknown grouping `{name}` (one of {})",
                known.join(", ")
            ));
        };
        if groups.contains(g) {
            return Err(format!("--by: `{name}` is named twice"));
        }
        groups.push(*g);
    }
    Ok(groups)
}

/// The time window of a report: the lines whose `time` is in `[since, until)`, both as the
/// usage log writes times (RFC 3339, UTC, milliseconds: `2026-11-01T00:00:00.000Z`), so that
/// a line's time is compared as it is written, without parsing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<String>,
    pub until: Option<String>,
}

impl Window {
    /// `--since` and `--until` (see the module doc). Errors name the argument.
    pub fn parse(since: Option<&str>, until: Option<&str>) -> Result<Window, String> {
        let since = since
            .map(|s| bound(s, false).map_err(|e| format!("--since: {e}")))
            .transpose()?;
        let until = until
            .map(|s| bound(s, true).map_err(|e| format!("--until: {e}")))
            .transpose()?;
        if let (Some(s), Some(u)) = (&since, &until) {
            if s >= u {
                return Err(format!(
                    "--since ({s}) is not before --until (its end: {u}): the window is empty"
                ));
            }
        }
        Ok(Window { since, until })
    }

    /// Whether a line's time (as written in the log) is in the window.
    fn holds(&self, time: &str) -> bool {
        self.since.as_deref().is_none_or(|s| time >= s)
            && self.until.as_deref().is_none_or(|u| time < u)
    }

    fn is_open(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }
}

/// A `--since`/`--until` value as a time in the log's format; `end`: the end of the day or
/// month it names (the start of the next).
fn bound(value: &str, end: bool) -> Result<String, String> {
    let v = value.trim();
    let bad = || {
        format!(
            "`{value}` is not a date (YYYY-MM-DD), a month (YYYY-MM) or an RFC 3339 time \
             (2026-11-01T00:00:00Z)"
        )
    };
    if v.len() == 7 {
        let (y, m) = v.split_once('-').ok_or_else(bad)?;
        let year: i16 = y.parse().map_err(|_| bad())?;
        let month: i8 = m.parse().map_err(|_| bad())?;
        let first = jiff::civil::Date::new(year, month, 1).map_err(|_| bad())?;
        let day = if end {
            first.last_of_month().tomorrow().map_err(|_| bad())?
        } else {
            first
        };
        return Ok(format!("{day}T00:00:00.000Z"));
    }
    if let Ok(date) = v.parse::<jiff::civil::Date>() {
        if v.len() == 10 {
            let day = if end {
                date.tomorrow().map_err(|_| bad())?
            } else {
                date
            };
            return Ok(format!("{day}T00:00:00.000Z"));
        }
    }
    let ts = v.parse::<jiff::Timestamp>().map_err(|_| bad())?;
    Ok(log_time(ts))
}

/// A timestamp written as the usage log writes times (`2026-11-01T00:00:00.000Z`).
fn log_time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A line's time as the log writes it: as it is when it has that shape (24 bytes, `Z`),
/// else parsed (another offset, other precision) and written so; `None`: not a time.
fn normal_time(time: &str) -> Option<Cow<'_, str>> {
    let b = time.as_bytes();
    if b.len() == 24 && b[23] == b'Z' && b[10] == b'T' && b[19] == b'.' {
        return Some(Cow::Borrowed(time));
    }
    time.parse::<jiff::Timestamp>()
        .ok()
        .map(|ts| Cow::Owned(log_time(ts)))
}

/// What a report asks.
#[derive(Debug, Clone)]
pub struct Query {
    pub by: Vec<Group>,
    pub window: Window,
}

/// One group's sums.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sums {
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

impl Sums {
    /// Adds one line. Counts saturate at `u64::MAX` rather than wrap: a corrupt or hostile
    /// line with huge numbers must not panic the report nor wrap it round to small sums.
    fn add(&mut self, line: &Line<'_>) {
        self.requests = self.requests.saturating_add(1);
        self.prompt_tokens = self.prompt_tokens.saturating_add(line.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(line.completion_tokens);
        self.cost_usd += line.cost_usd;
    }

    /// Adds a group's sums into a total, saturating as [`Sums::add`] does.
    fn merge(&mut self, s: &Sums) {
        self.requests = self.requests.saturating_add(s.requests);
        self.prompt_tokens = self.prompt_tokens.saturating_add(s.prompt_tokens);
        self.completion_tokens = self.completion_tokens.saturating_add(s.completion_tokens);
        self.cost_usd += s.cost_usd;
    }
}

/// The report so far: the groups and what was read.
#[derive(Debug, Default)]
pub struct Totals {
    /// Group values joined by [`SEP`] → their sums.
    groups: HashMap<String, Sums>,
    /// Lines read (blank ones not counted).
    pub lines: u64,
    /// Lines that were not a usage line (cut short, corrupt): not counted in any group.
    pub skipped: u64,
    /// Lines outside the time window.
    pub outside: u64,
    /// Files that ended in a read error (a gzip stream cut short): what came before counts.
    pub cut_files: Vec<String>,
}

/// Between a group's values in [`Totals::groups`]' keys.
const SEP: char = '\u{1f}';

/// The fields of a usage-log line that a report reads (the rest is skipped unparsed). The
/// strings borrow from the line unless they hold escapes.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow, default = "dash")]
    key: Cow<'a, str>,
    #[serde(borrow, default = "dash")]
    team: Cow<'a, str>,
    #[serde(borrow, default = "dash")]
    model: Cow<'a, str>,
    #[serde(borrow, default = "dash")]
    provider: Cow<'a, str>,
    #[serde(borrow, default = "dash")]
    user: Cow<'a, str>,
    #[serde(borrow, default)]
    tags: Vec<Tag<'a>>,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost_usd: f64,
}

/// One of a line's `tags`.
#[derive(Deserialize)]
struct Tag<'a>(#[serde(borrow)] Cow<'a, str>);

fn dash<'a>() -> Cow<'a, str> {
    Cow::Borrowed("-")
}

/// Appends a group value to a group key. A [`SEP`] inside the value (never written by the
/// gateway: a corrupt or hand-made line) becomes U+FFFD, so it cannot split the value into
/// two columns.
fn push_value(key: &mut String, value: &str) {
    if value.contains(SEP) {
        key.extend(value.chars().map(|c| if c == SEP { '\u{fffd}' } else { c }));
    } else {
        key.push_str(value);
    }
}

/// A group value as a table prints it: control characters (an ESC that would drive the
/// terminal, a tab or line break that would break the columns) written as escapes (`\u{1b}`).
fn printable(v: &str) -> Cow<'_, str> {
    if v.chars().any(char::is_control) {
        Cow::Owned(
            v.chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_unicode().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(v)
    }
}

/// A value as grouped: `-` for an empty one.
fn or_dash(v: &str) -> &str {
    if v.is_empty() {
        "-"
    } else {
        v
    }
}

impl Totals {
    /// Reads one file (plain or gzip) into the totals. `Err`: it cannot be opened, or it is
    /// a directory (which opens on Unix but cannot be read).
    pub fn read_file(&mut self, query: &Query, path: &Path) -> Result<(), String> {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(format!(
                "{}: is a directory, not a usage log",
                path.display()
            ));
        }
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let gzip = path.extension().is_some_and(|e| e == "gz")
            || reader
                .fill_buf()
                .is_ok_and(|b| b.starts_with(&[0x1f, 0x8b]));
        let result = if gzip {
            let decoder = flate2::bufread::MultiGzDecoder::new(reader);
            self.read(query, BufReader::with_capacity(256 * 1024, decoder))
        } else {
            self.read(query, reader)
        };
        if let Err(e) = result {
            self.cut_files.push(format!("{}: {e}", path.display()));
        }
        Ok(())
    }

    /// Reads lines until the end (`Err`: a read failed; the lines before it count, a line cut
    /// by it is skipped).
    pub fn read<R: Read>(
        &mut self,
        query: &Query,
        mut reader: BufReader<R>,
    ) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(1024);
        let mut key = String::new();
        loop {
            buf.clear();
            let n = match reader.read_until(b'\n', &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    if !buf.iter().all(u8::is_ascii_whitespace) {
                        self.lines += 1;
                        self.skipped += 1;
                    }
                    return Err(e);
                }
            };
            if n == 0 {
                return Ok(());
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.lines += 1;
            self.line(query, &buf, &mut key);
        }
    }

    /// Counts one line in its groups (several when grouped by tag and it has several).
    fn line(&mut self, query: &Query, bytes: &[u8], key: &mut String) {
        let Ok(line) = serde_json::from_slice::<Line>(bytes) else {
            self.skipped += 1;
            return;
        };
        // The gateway writes a finite cost >= 0 (prices are checked so): another is corrupt.
        if !line.cost_usd.is_finite() || line.cost_usd < 0.0 {
            self.skipped += 1;
            return;
        }
        let Some(time) = normal_time(&line.time) else {
            self.skipped += 1;
            return;
        };
        if !query.window.is_open() && !query.window.holds(&time) {
            self.outside += 1;
            return;
        }
        let tags = &line.tags;
        let by_tag = query.by.contains(&Group::Tag);
        let tag_count = if by_tag { tags.len().max(1) } else { 1 };
        for t in 0..tag_count {
            key.clear();
            for (i, g) in query.by.iter().enumerate() {
                if i > 0 {
                    key.push(SEP);
                }
                let value: &str = match g {
                    Group::Team => or_dash(&line.team),
                    Group::Key => or_dash(&line.key),
                    Group::Model => or_dash(&line.model),
                    Group::Provider => or_dash(&line.provider),
                    Group::User => or_dash(&line.user),
                    Group::Tag => tags.get(t).map_or("-", |s| or_dash(&s.0)),
                    Group::Day => time.get(..10).unwrap_or("-"),
                    Group::Month => time.get(..7).unwrap_or("-"),
                };
                push_value(key, value);
            }
            match self.groups.get_mut(key.as_str()) {
                Some(sums) => sums.add(&line),
                None => {
                    let mut sums = Sums::default();
                    sums.add(&line);
                    self.groups.insert(key.clone(), sums);
                }
            }
        }
    }

    /// The groups, sorted by their values (so days and months in order), each with its values
    /// in `--by`'s order.
    pub fn rows(&self) -> Vec<(Vec<&str>, Sums)> {
        let mut rows: Vec<(Vec<&str>, Sums)> = self
            .groups
            .iter()
            .map(|(k, s)| (k.split(SEP).collect(), *s))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    /// The sum over the groups (over lines, but for a line counted in several tags).
    pub fn total(&self) -> Sums {
        self.groups.values().fold(Sums::default(), |mut t, s| {
            t.merge(s);
            t
        })
    }

    /// What was read, for the report's last line (on stderr for CSV and JSON).
    pub fn summary(&self, files: usize) -> String {
        let mut s = format!(
            "{} line{} read from {files} file{}; {} skipped (truncated or corrupt)",
            self.lines,
            if self.lines == 1 { "" } else { "s" },
            if files == 1 { "" } else { "s" },
            self.skipped
        );
        if self.outside > 0 {
            let _ = write!(s, "; {} outside --since/--until", self.outside);
        }
        s
    }
}

/// The output format (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// The four sums' column names, after the groups'.
const SUM_COLUMNS: [&str; 4] = ["requests", "prompt_tokens", "completion_tokens", "cost_usd"];

/// Cost as printed: dollars to the micro-dollar (the sum of float costs rounded).
fn usd(cost: f64) -> String {
    format!("{cost:.6}")
}

/// The report in `format`; a table ends with a total line and the summary of what was read.
pub fn render(query: &Query, totals: &Totals, format: Format, files: usize) -> String {
    let rows = totals.rows();
    match format {
        Format::Table => table(query, &rows, totals, files),
        Format::Csv => csv(query, &rows),
        Format::Json => json(query, &rows),
    }
}

fn sum_cells(s: &Sums) -> [String; 4] {
    [
        s.requests.to_string(),
        s.prompt_tokens.to_string(),
        s.completion_tokens.to_string(),
        usd(s.cost_usd),
    ]
}

fn table(query: &Query, rows: &[(Vec<&str>, Sums)], totals: &Totals, files: usize) -> String {
    let mut lines: Vec<Vec<String>> = Vec::with_capacity(rows.len() + 2);
    lines.push(
        query
            .by
            .iter()
            .map(|g| g.name().to_string())
            .chain(SUM_COLUMNS.iter().map(|c| c.to_string()))
            .collect(),
    );
    for (values, sums) in rows {
        lines.push(
            values
                .iter()
                .map(|v| printable(v).into_owned())
                .chain(sum_cells(sums))
                .collect(),
        );
    }
    let mut total: Vec<String> = vec![String::new(); query.by.len()];
    if let Some(first) = total.first_mut() {
        *first = "total".into();
    }
    total.extend(sum_cells(&totals.total()));
    lines.push(total);
    let groups = query.by.len();
    let widths: Vec<usize> = (0..groups + SUM_COLUMNS.len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        let mut cells = Vec::with_capacity(line.len());
        for (c, cell) in line.iter().enumerate() {
            let w = widths[c];
            // Names to the left, numbers to the right.
            cells.push(if c < groups {
                format!("{cell:<w$}")
            } else {
                format!("{cell:>w$}")
            });
        }
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&totals.summary(files));
    out.push('\n');
    out
}

/// RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled.
fn csv_field(v: &str) -> Cow<'_, str> {
    if v.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", v.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(v)
    }
}

fn csv(query: &Query, rows: &[(Vec<&str>, Sums)]) -> String {
    let mut out = String::new();
    let head: Vec<&str> = query
        .by
        .iter()
        .map(|g| g.name())
        .chain(SUM_COLUMNS)
        .collect();
    out.push_str(&head.join(","));
    out.push_str("\r\n");
    for (values, sums) in rows {
        let cells: Vec<Cow<str>> = values
            .iter()
            .map(|v| csv_field(v))
            .chain(sum_cells(sums).into_iter().map(Cow::Owned))
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A JSON array, one object per group (one a line): the group's fields in `--by`'s order,
/// then `requests`, `prompt_tokens`, `completion_tokens`, `cost_usd`.
fn json(query: &Query, rows: &[(Vec<&str>, Sums)]) -> String {
    let mut out = String::from("[");
    for (i, (values, sums)) in rows.iter().enumerate() {
        out.push_str(if i == 0 { "\n{" } else { ",\n{" });
        for (g, v) in query.by.iter().zip(values) {
            // A string always serializes.
            let v = serde_json::to_string(v).unwrap_or_default();
            let _ = write!(out, "\"{}\":{v},", g.name());
        }
        // Rounded to the micro-dollar, as in the other formats.
        let _ = write!(
            out,
            "\"requests\":{},\"prompt_tokens\":{},\"completion_tokens\":{},\"cost_usd\":{}}}",
            sums.requests,
            sums.prompt_tokens,
            sums.completion_tokens,
            usd(sums.cost_usd)
                .trim_end_matches('0')
                .trim_end_matches('.')
        );
    }
    out.push_str("\n]\n");
    out
}

/// The usage log file named in a config and its rotated siblings in its folder: every file
/// whose name is the log's name followed by `.`, `-` or `_` and anything (`usage.jsonl.1`,
/// `usage.jsonl.2.gz`, `usage.jsonl-20261101.gz`), sorted by name, the log itself first.
pub fn with_rotated(log: &Path) -> Result<Vec<PathBuf>, String> {
    let name = log
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: not a file name", log.display()))?;
    let dir = match log.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut rotated: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let rest = n.strip_prefix(name)?;
            rest.starts_with(['.', '-', '_']).then(|| dir.join(n))
        })
        .collect();
    rotated.sort();
    let mut files = Vec::with_capacity(rotated.len() + 1);
    if log.is_file() {
        files.push(log.to_path_buf());
    }
    files.extend(rotated);
    if files.is_empty() {
        return Err(format!(
            "{}: no usage log there (nor a rotated one)",
            log.display()
        ));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(by: &str) -> Query {
        Query {
            by: parse_by(by).unwrap(),
            window: Window::default(),
        }
    }

    fn read(q: &Query, text: &str) -> Totals {
        let mut t = Totals::default();
        t.read(q, BufReader::new(text.as_bytes())).unwrap();
        t
    }

    const A: &str = r#"{"time":"2026-11-03T10:00:00.000Z","key":"k1","team":"a","model":"m","provider":"p","prompt_tokens":10,"completion_tokens":5,"cost_usd":0.5,"tags":["x","y"],"user":"u1"}"#;
    const B: &str = r#"{"time":"2026-11-04T10:00:00.000Z","key":"k2","team":"b","model":"m","provider":"p","prompt_tokens":1,"completion_tokens":2,"cost_usd":0.25}"#;

    #[test]
    fn groups_sum_and_skip() {
        let text = format!("{A}\n\n{B}\nnot json\n{{\"time\":\"2026-11-04T1");
        let t = read(&query("team"), &text);
        assert_eq!((t.lines, t.skipped), (4, 2));
        let rows = t.rows();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, vec!["a"]);
        assert_eq!(rows[0].1.prompt_tokens, 10);
        assert_eq!(rows[1].1.cost_usd, 0.25);
    }

    #[test]
    fn a_line_counts_in_each_of_its_tags() {
        let t = read(&query("tag,user"), &format!("{A}\n{B}\n"));
        let rows: Vec<_> = t
            .rows()
            .into_iter()
            .map(|(v, s)| (v.join("/"), s.requests))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("-/-".to_string(), 1),
                ("x/u1".into(), 1),
                ("y/u1".into(), 1)
            ]
        );
    }

    #[test]
    fn hostile_lines_neither_panic_nor_wrap_nor_split_columns() {
        let max = u64::MAX;
        let huge = format!(
            r#"{{"time":"2026-11-03T10:00:00.000Z","team":"a","prompt_tokens":{max},"completion_tokens":{max},"cost_usd":1}}"#
        );
        let negative = r#"{"time":"2026-11-03T10:00:00.000Z","team":"a","prompt_tokens":1,"completion_tokens":1,"cost_usd":-5}"#;
        let split = r#"{"time":"2026-11-03T10:00:00.000Z","team":"x\u001fy","model":"m","prompt_tokens":1,"completion_tokens":1,"cost_usd":1}"#;
        let escape = r#"{"time":"2026-11-03T10:00:00.000Z","team":"\u001b[31mred","model":"m","prompt_tokens":1,"completion_tokens":1,"cost_usd":1}"#;
        let q = query("team,model");
        let t = read(
            &q,
            &format!("{huge}\n{huge}\n{negative}\n{split}\n{escape}\n"),
        );
        assert_eq!((t.lines, t.skipped), (5, 1), "the negative cost is skipped");
        let rows = t.rows();
        let a = rows.iter().find(|r| r.0[0] == "a").unwrap();
        assert_eq!((a.1.requests, a.1.prompt_tokens), (2, max), "saturates");
        assert!(rows.iter().all(|r| r.0.len() == 2), "two columns each");
        assert!(rows.iter().any(|r| r.0 == ["x\u{fffd}y", "m"]));
        assert_eq!(t.total().prompt_tokens, max);
        let text = render(&q, &t, Format::Table, 1);
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("\\u{1b}[31mred"), "{text}");
    }

    #[test]
    fn a_directory_is_not_a_log() {
        let dir = tempfile::tempdir().unwrap();
        let e = Totals::default()
            .read_file(&query("team"), dir.path())
            .unwrap_err();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn bad_arguments_are_named() {
        assert!(parse_by("team,colour")
            .unwrap_err()
            .starts_with("--by: unknown grouping `colour`"));
        assert!(parse_by("day,day").unwrap_err().contains("twice"));
        assert!(Window::parse(Some("2026-13-01"), None)
            .unwrap_err()
            .starts_with("--since: `2026-13-01`"));
        assert!(Window::parse(None, Some("yesterday"))
            .unwrap_err()
            .starts_with("--until:"));
        assert!(Window::parse(Some("2026-12-01"), Some("2026-11-30")).is_err());
    }

    #[test]
    fn windows_take_days_months_and_times() {
        let w = Window::parse(Some("2026-11"), Some("2026-11")).unwrap();
        assert_eq!(w.since.as_deref(), Some("2026-11-01T00:00:00.000Z"));
        assert_eq!(w.until.as_deref(), Some("2026-12-01T00:00:00.000Z"));
        let w = Window::parse(Some("2026-11-03T11:00:00+01:00"), Some("2026-11-03")).unwrap();
        assert_eq!(w.since.as_deref(), Some("2026-11-03T10:00:00.000Z"));
        assert_eq!(w.until.as_deref(), Some("2026-11-04T00:00:00.000Z"));
        let q = Query {
            by: vec![Group::Day],
            window: w,
        };
        let t = read(&q, &format!("{A}\n{B}\n"));
        assert_eq!((t.rows().len(), t.outside), (1, 1));
    }

    #[test]
    fn other_time_shapes_are_read() {
        assert_eq!(
            normal_time("2026-11-03T10:00:00Z").as_deref(),
            Some("2026-11-03T10:00:00.000Z")
        );
        assert_eq!(
            normal_time("2026-11-03T10:00:00.5+01:00").as_deref(),
            Some("2026-11-03T09:00:00.500Z")
        );
        assert_eq!(
            normal_time("1960-01-01T00:00:00Z").as_deref(),
            Some("1960-01-01T00:00:00.000Z")
        );
        assert_eq!(normal_time("tomorrow"), None);
    }
}
