//! Golden fixtures for the dialect conversions: what the gateway sends each vendor for a
//! request at each front door, and what each front door's client gets for each vendor answer.
//! A change to a conversion shows as a diff of plain, checked-in files.
//!
//! - Requests: `tests/golden/requests/<door>/<case>.json` (written by hand) is read at its
//!   front door (`chat`, `messages`, `responses` with [`FrontRequest::read`]; `gemini` with
//!   [`FrontRequest::read_gemini`], the model `gw-model` in the path, streamed for `stream_*`
//!   cases) and rendered for every vendor
//!   kind (`openai`, `azure`, `anthropic`, `gemini`, and `converse`: a `bedrock` provider's
//!   Converse model; the Gemini door's cases also for Claude on Bedrock, Claude and Gemini on
//!   Vertex AI and an OpenAI-compatible server) with [`convert::upstream_body`]; the result
//!   is compared with `<case>.<vendor>.json` (pretty-printed, keys in the order they are sent).
//!   A refusal is `<case>.<vendor>.error.json` with its status and message.
//! - Answers: every vendor answer of `tests/fixtures/{openai,anthropic,gemini,bedrock_converse}/`
//!   (the last as Bedrock's re-framer renders a Converse stream) is rendered for
//!   each front door into `tests/golden/answers/<vendor>/<fixture>.<door>.<ext>`: a body
//!   (`*.json`) through [`AnswerTranslation`] whole, a stream (`*.sse`) through it in cuts of
//!   several sizes (which must all give the same bytes); an error body (`error_*.json`) the way
//!   the proxy answers a vendor's error status. When the vendor speaks the door's dialect
//!   ([`AnswerTranslation::new`] is `None`) the bytes pass through untouched; that is recorded
//!   as a one-line `<fixture>.<door>.passthrough` file.
//!
//! Timestamps the translators take from the clock are written as `0`.
//!
//! `SWITCHYARD_BLESS=1 cargo test --test it golden::` rewrites the golden files (and deletes the
//! stale ones); read the diff before committing it. Without it the test fails listing every
//! file that differs, is missing or is stale.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use regex::Regex;
use switchyard::accounting::meter::Meter;
use switchyard::config::{self, Config, Provider, ProviderKind};
use switchyard::convert::{self, unix_now, AnswerTranslation};
use switchyard::dialect::request::FrontRequest;
use switchyard::dialect::{self, Dialect};
use switchyard::error::GatewayError;
use switchyard::providers;

const DOORS: [(&str, Dialect); 4] = [
    ("chat", Dialect::Chat),
    ("messages", Dialect::Messages),
    ("responses", Dialect::Responses),
    ("gemini", Dialect::Gemini),
];

/// The providers a request is rendered for, with the upstream model of their route
/// (`converse`: a `bedrock` provider's non-Claude model, spoken through Converse).
const VENDORS: [(&str, &str); 5] = [
    ("openai", "gpt-5"),
    ("azure", "gpt-4o-deployment"),
    ("anthropic", "claude-sonnet-4-5"),
    ("gemini", "gemini-2.5-flash"),
    ("converse", CONVERSE_MODEL),
];

/// The upstream model of the `converse` provider's route (Amazon Nova: prompt caching,
/// forced tool choice, tool-result images).
const CONVERSE_MODEL: &str = "us.amazon.nova-pro-v1:0";

/// The Gemini door's requests are rendered for these too (the door is new: every vendor kind
/// and dialect is shown once): Claude on Bedrock (the Messages body), Claude and Gemini on
/// Vertex AI, and an OpenAI-compatible server (`openai` with `chat_only`).
const GEMINI_DOOR_VENDORS: [(&str, &str); 4] = [
    (
        "bedrock_claude",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    ),
    ("vertex_claude", "claude-sonnet-4-5@20250929"),
    ("vertex_gemini", "gemini-2.5-flash"),
    ("openai_compatible", "llama-3.1-8b"),
];

/// The provider of the golden config each of [`GEMINI_DOOR_VENDORS`] is.
fn door_vendor_provider(vendor: &str) -> &str {
    match vendor {
        "bedrock_claude" => "converse",
        "vertex_claude" | "vertex_gemini" => "vertex",
        "openai_compatible" => "compat",
        other => other,
    }
}

/// The model in a Gemini-door request's path (the body has none).
const GEMINI_DOOR_MODEL: &str = "gw-model";

/// The model name answers are translated under until the vendor names its own.
const MODEL_HINT: &str = "upstream-model";

/// Cut sizes (bytes) a stream is fed in; the whole stream at once is tried too.
const CUTS: [usize; 3] = [1, 7, 64];

/// The status a vendor answered each error fixture with (the fixtures hold only bodies).
const ERROR_STATUS: [(&str, u16); 7] = [
    ("error_invalid_request.json", 400),
    ("error_overloaded.json", 529),
    ("error_api_key_invalid.json", 400),
    ("error_resource_exhausted.json", 429),
    ("error_input_too_long.json", 400),
    ("error_throttling.json", 429),
    ("error_service_unavailable.json", 503),
];

const PROVIDERS: &str = r#"
[[providers]]
name = "openai"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"

[[providers]]
name = "azure"
kind = "azure"
base_url = "http://127.0.0.1:9"
api_version = "2024-10-21"

[[providers]]
name = "anthropic"
kind = "anthropic"
base_url = "http://127.0.0.1:9"
default_max_tokens = 4096

[[providers]]
name = "gemini"
kind = "gemini"
base_url = "http://127.0.0.1:9"

[[providers]]
name = "compat"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
chat_only = true
"#;

/// A Vertex AI provider, loaded offline (no Google credentials are looked for): the bodies
/// the gateway makes for it need none.
const VERTEX_PROVIDER: &str = r#"
[[providers]]
name = "vertex"
kind = "vertex"
base_url = "http://127.0.0.1:9"
project = "golden-project"
location = "us-east5"
"#;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn bless() -> bool {
    std::env::var_os("SWITCHYARD_BLESS").is_some_and(|v| v == "1")
}

// -------------------------------------------------------------------------------------------
// The golden files of one directory: compared (or rewritten), stale ones found.

struct Golden {
    dir: PathBuf,
    /// Files of `dir` that are golden outputs (the others are inputs).
    is_output: fn(&str) -> bool,
    written: BTreeSet<PathBuf>,
    problems: Vec<String>,
}

impl Golden {
    fn new(dir: PathBuf, is_output: fn(&str) -> bool) -> Golden {
        Golden {
            dir,
            is_output,
            written: BTreeSet::new(),
            problems: Vec::new(),
        }
    }

    /// Compares `actual` with the golden file `rel` (or writes it when blessing).
    fn check(&mut self, rel: &str, actual: &str) {
        let path = self.dir.join(rel);
        self.written.insert(path.clone());
        let expected = fs::read_to_string(&path).ok();
        if expected.as_deref() == Some(actual) {
            return;
        }
        if bless() {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, actual).unwrap();
            return;
        }
        let what = match expected {
            None => "missing".to_string(),
            Some(expected) => first_difference(&expected, actual),
        };
        self.problems
            .push(format!("{}: {what}", self.display(&path)));
    }

    /// A rendering that must hold whatever the golden files say.
    fn fail(&mut self, what: String) {
        self.problems.push(what);
    }

    /// Golden files on disk that no rendering wrote: deleted when blessing, else a problem.
    fn finish(mut self) -> Vec<String> {
        let mut stack = vec![self.dir.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.map(Result::unwrap) {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if !(self.is_output)(&name) || self.written.contains(&path) {
                    continue;
                }
                if bless() {
                    fs::remove_file(&path).unwrap();
                } else {
                    let shown = self.display(&path);
                    self.problems
                        .push(format!("{shown}: stale (nothing renders it)"));
                }
            }
        }
        self.problems
    }

    fn display(&self, path: &Path) -> String {
        path.strip_prefix(root().parent().unwrap())
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

fn first_difference(expected: &str, actual: &str) -> String {
    let mut lines = expected.lines().zip(actual.lines()).enumerate();
    match lines.find(|(_, (e, a))| e != a) {
        Some((i, (e, a))) => format!("line {}: expected `{e}`, got `{a}`", i + 1),
        None => format!(
            "expected {} lines, got {}",
            expected.lines().count(),
            actual.lines().count()
        ),
    }
}

fn report(problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{} golden file(s) differ (SWITCHYARD_BLESS=1 rewrites them):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// -------------------------------------------------------------------------------------------
// Rendering helpers.

/// Valid JSON re-indented by two spaces per level, every token kept as it was written (key
/// order, number spelling, string escapes), so a golden file shows the bytes sent.
fn pretty(json: &[u8]) -> Result<String, String> {
    serde_json::from_slice::<serde_json::Value>(json).map_err(|e| format!("not JSON: {e}"))?;
    let compact = String::from_utf8(compact(json)).map_err(|e| e.to_string())?;
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut chars = compact.chars().peekable();
    let (mut in_string, mut escaped) = (false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    while let Some(c) = chars.next() {
        out.push(c);
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            // An empty object or array stays on one line.
            '{' | '[' if matches!(chars.peek(), Some('}' | ']')) => {
                out.push(chars.next().unwrap());
            }
            '{' | '[' => {
                depth += 1;
                newline(&mut out, depth);
            }
            '}' | ']' => {
                out.pop();
                depth -= 1;
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => newline(&mut out, depth),
            ':' => out.push(' '),
            _ => {}
        }
    }
    out.push('\n');
    Ok(out)
}

/// JSON without the whitespace between its tokens (strings kept as they are).
fn compact(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if b.is_ascii_whitespace() {
            continue;
        }
        out.push(b);
    }
    out
}

/// Replaces the clock's reading (any 10-digit number between `from` and now) with `0`.
fn unclock(text: &str, from: u64) -> String {
    let to = unix_now();
    let number = Regex::new(r"\b\d{10}\b").unwrap();
    number
        .replace_all(text, |c: &regex::Captures<'_>| {
            let n: u64 = c[0].parse().unwrap();
            if (from..=to).contains(&n) {
                "0".to_string()
            } else {
                c[0].to_string()
            }
        })
        .into_owned()
}

/// A refusal as a golden file: its status and message.
fn error_file(err: &GatewayError) -> String {
    let message = serde_json::to_string(&err.to_string()).unwrap();
    pretty(format!(r#"{{"status":{},"message":{message}}}"#, err.status()).as_bytes()).unwrap()
}

/// The golden providers, and the `converse` provider (`kind = "bedrock"`, with a Bedrock API
/// key from a file written here: no AWS credentials are looked for).
fn config() -> Config {
    let key = std::env::temp_dir().join(format!(
        "switchyard-golden-bedrock-{}.key",
        std::process::id()
    ));
    fs::write(&key, "golden-bedrock-api-key\n").unwrap();
    let text = format!(
        "{PROVIDERS}\n[[providers]]\nname = \"converse\"\nkind = \"bedrock\"\n\
         region = \"us-east-1\"\nbase_url = \"http://127.0.0.1:9\"\napi_key_file = {:?}\n",
        key.display().to_string()
    );
    config::load_str(&text, Path::new("golden.toml")).expect("the golden providers load")
}

/// The Vertex AI provider (loaded offline, once).
fn vertex_config() -> &'static Config {
    static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        config::check_str(
            VERTEX_PROVIDER,
            Path::new("golden-vertex.toml"),
            config::Mode::Offline,
        )
        .expect("the golden Vertex provider loads")
    })
}

fn provider<'c>(config: &'c Config, name: &str) -> &'c Provider {
    if name == "vertex" {
        return provider_in(vertex_config(), name);
    }
    provider_in(config, name)
}

fn provider_in<'c>(config: &'c Config, name: &str) -> &'c Provider {
    config
        .providers
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no provider {name}"))
}

/// The files of `dir` whose names end in `ext` and have no other dot (inputs, not renderings).
fn inputs(dir: &Path, ext: &str) -> Vec<(String, PathBuf)> {
    let mut found: Vec<(String, PathBuf)> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let stem = name.strip_suffix(ext)?;
            (!stem.contains('.')).then(|| (stem.to_string(), p.clone()))
        })
        .collect();
    found.sort();
    found
}

// -------------------------------------------------------------------------------------------
// Requests.

#[test]
fn requests_render_as_the_golden_files_for_every_door_and_vendor() {
    let config = config();
    let dir = root().join("golden/requests");
    let mut golden = Golden::new(dir.clone(), |name| name.matches('.').count() >= 2);
    let mut cases = 0;
    for (door, dialect) in DOORS {
        for (case, path) in inputs(&dir.join(door), ".json") {
            cases += 1;
            let body = Bytes::from(fs::read(&path).unwrap());
            let more: &[(&str, &str)] = match dialect {
                Dialect::Gemini => &GEMINI_DOOR_VENDORS,
                _ => &[],
            };
            for &(vendor, upstream_model) in VENDORS.iter().chain(more) {
                let provider = provider(&config, door_vendor_provider(vendor));
                // The Gemini door's streamed cases are named `stream_*` (the method says it).
                let stream = case.starts_with("stream_");
                let rendered = read_at_door(dialect, body.clone(), stream)
                    .and_then(|mut req| convert::upstream_body(&mut req, provider, upstream_model));
                match rendered {
                    Ok(bytes) => match pretty(&bytes) {
                        Ok(text) => golden.check(&format!("{door}/{case}.{vendor}.json"), &text),
                        Err(e) => golden.fail(format!("{door}/{case} for {vendor}: {e}")),
                    },
                    Err(err) => golden.check(
                        &format!("{door}/{case}.{vendor}.error.json"),
                        &error_file(&err),
                    ),
                }
            }
        }
    }
    assert!(cases >= 20, "only {cases} request cases found");
    report(golden.finish());
}

/// A same-dialect route sends the client's bytes with only `model` changed: checked on the
/// bytes themselves (the golden files are re-indented). The fixtures are sent compact: the
/// splice keeps every top-level value's bytes, not the whitespace between top-level members.
/// The Gemini door's model is in the path: to `gemini` and Vertex Gemini routes its bodies go
/// byte for byte.
#[test]
fn same_dialect_requests_are_the_clients_bytes_with_model_spliced() {
    let config = config();
    let pairs = [
        ("messages", Dialect::Messages, "anthropic"),
        ("responses", Dialect::Responses, "openai"),
        ("responses", Dialect::Responses, "azure"),
        ("gemini", Dialect::Gemini, "gemini"),
        ("gemini", Dialect::Gemini, "vertex"),
    ];
    let mut checked = 0;
    for (door, dialect, vendor) in pairs {
        let dir = root().join("golden/requests").join(door);
        for (case, path) in inputs(&dir, ".json") {
            let body = Bytes::from(compact(&fs::read(&path).unwrap()));
            let mut req = read_at_door(dialect, body.clone(), case.starts_with("stream_")).unwrap();
            let model = match vendor {
                "vertex" => "gemini-2.5-flash",
                _ => "spliced-model",
            };
            let sent = convert::upstream_body(&mut req, provider(&config, vendor), model).unwrap();
            let expected = String::from_utf8(body.to_vec()).unwrap().replacen(
                "\"gw-model\"",
                "\"spliced-model\"",
                1,
            );
            assert_eq!(
                String::from_utf8(sent.to_vec()).unwrap(),
                expected,
                "{door}/{case} to {vendor}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20);
}

// -------------------------------------------------------------------------------------------
// Answers.

/// The vendor whose answers each fixture directory holds: its kind, or (for a kind whose
/// dialect depends on the model) the provider of that name and its route's model.
const ANSWER_VENDORS: [(&str, Target); 4] = [
    ("openai", Target::Kind(ProviderKind::OpenAi)),
    ("anthropic", Target::Kind(ProviderKind::Anthropic)),
    ("gemini", Target::Kind(ProviderKind::Gemini)),
    (
        "bedrock_converse",
        Target::Provider("converse", CONVERSE_MODEL),
    ),
];

/// Whom an answer fixture comes from.
#[derive(Clone, Copy)]
enum Target {
    Kind(ProviderKind),
    /// A provider of the golden config by name, and the upstream model.
    Provider(&'static str, &'static str),
}

impl Target {
    /// The answer's translation for a request at `req`'s door (`None`: passed through).
    fn translation(self, req: &FrontRequest) -> Option<AnswerTranslation> {
        match self {
            Target::Kind(kind) => AnswerTranslation::new(req, kind, MODEL_HINT),
            Target::Provider(name, model) => {
                let config = golden_config();
                AnswerTranslation::for_provider(req, provider(config, name), model)
            }
        }
    }

    /// The provider of the golden config that answers, and its route's model.
    fn provider<'c>(self, config: &'c Config, dir: &str) -> (&'c Provider, &'static str) {
        match self {
            Target::Kind(_) => (provider(config, dir), ""),
            Target::Provider(name, model) => (provider(config, name), model),
        }
    }
}

/// The golden config, loaded once.
fn golden_config() -> &'static Config {
    static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    CONFIG.get_or_init(config)
}

const PASSTHROUGH: &str =
    "pass-through: the vendor speaks this door's dialect; its bytes reach the client untouched\n";

#[test]
fn answers_render_as_the_golden_files_for_every_door() {
    let config = config();
    let out = root().join("golden/answers");
    let mut golden = Golden::new(out, |_| true);
    let mut rendered = 0;
    for (vendor, kind) in ANSWER_VENDORS {
        let (provider, model) = kind.provider(&config, vendor);
        let fixtures = root().join("fixtures").join(vendor);
        let mut files: Vec<PathBuf> = fs::read_dir(&fixtures)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for path in files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = fs::read(&path).unwrap();
            for (door, dialect) in DOORS {
                rendered += 1;
                let (stem, stream) = match name.strip_suffix(".sse") {
                    Some(stem) => (stem, true),
                    None => (name.strip_suffix(".json").unwrap(), false),
                };
                let rel = |ext: &str| format!("{vendor}/{stem}.{door}.{ext}");
                if let Some(&(_, status)) = ERROR_STATUS.iter().find(|(n, _)| *n == name) {
                    let text = vendor_error_answer(provider, model, dialect, status, &bytes);
                    golden.check(&rel("error.json"), &text);
                    continue;
                }
                let started = unix_now();
                match answer(dialect, kind, stream, &bytes) {
                    Answer::PassThrough => golden.check(&rel("passthrough"), PASSTHROUGH),
                    Answer::Refused(err) => golden.check(&rel("error.json"), &error_file(&err)),
                    Answer::Body(body) => match pretty(&body) {
                        Ok(text) => golden.check(&rel("json"), &unclock(&text, started)),
                        Err(e) => golden.fail(format!("{vendor}/{name} at {door}: {e}")),
                    },
                    Answer::Stream(cuts) => {
                        let whole = unclock(&cuts[0].1, started);
                        for (cut, text) in &cuts[1..] {
                            if unclock(text, started) != whole {
                                golden.fail(format!(
                                    "{vendor}/{name} at {door}: cuts of {cut} bytes give \
                                     another stream than the whole"
                                ));
                            }
                        }
                        golden.check(&rel("sse"), &whole);
                    }
                }
            }
        }
    }
    assert!(rendered >= 40, "only {rendered} answers rendered");
    report(golden.finish());
}

/// The answer fixtures in which the vendor's filter stopped the answer.
const REFUSALS: [&str; 10] = [
    "bedrock_converse/converse_content_filtered.json",
    "bedrock_converse/converse_guardrail_intervened.json",
    "bedrock_converse/stream_content_filtered.sse",
    "openai/completion_content_filter.json",
    "openai/stream_content_filter.sse",
    "anthropic/message_refusal.json",
    "anthropic/stream_refusal.sse",
    "gemini/generate_safety.json",
    "gemini/generate_prompt_blocked.json",
    "gemini/stream_safety.sse",
];

/// Every answer at every door: the meter (the door's dialect on pass-through, the chat pivot on
/// translated routes) says refused exactly for the refusal fixtures, and so does the door's own
/// reader of what the client gets (the translators carry the filter's finish in each shape).
#[test]
fn refusals_are_seen_by_the_meter_and_carried_to_every_door() {
    let mut checked = 0;
    for (vendor, kind) in ANSWER_VENDORS {
        let fixtures = root().join("fixtures").join(vendor);
        for entry in fs::read_dir(&fixtures).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("error_") {
                continue;
            }
            let stream = name.ends_with(".sse");
            let bytes = fs::read(&path).unwrap();
            let id = format!("{vendor}/{name}");
            let expected = REFUSALS.contains(&id.as_str())
                || (vendor == "gemini" && name == "stream_prompt_blocked.sse");
            for (door, front) in DOORS {
                let (Some(metered), Some(client)) = refusal_seen(front, kind, stream, &bytes)
                else {
                    continue;
                };
                assert_eq!(metered, expected, "meter of {id} at the {door} door");
                assert_eq!(client, expected, "what the {door} client gets of {id}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 3 * REFUSALS.len(), "only {checked} checked");
}

/// (the proxy's meter says refused, the door's reader of the client's bytes says refused);
/// `None` where the fixture is not what this door's client would get.
fn refusal_seen(
    front: Dialect,
    kind: Target,
    stream: bool,
    bytes: &[u8],
) -> (Option<bool>, Option<bool>) {
    let meter_of = |d| {
        if stream {
            Meter::stream_of(d)
        } else {
            Meter::body_of(d)
        }
    };
    let Some(mut t) = kind.translation(&front_request(front, stream)) else {
        // Pass-through: the vendor's own bytes, read in their dialect (an `openai` fixture is a
        // chat answer, not what the vendor sends the Responses door: it is not read there).
        if matches!(kind, Target::Kind(ProviderKind::OpenAi)) && front == Dialect::Responses {
            return (None, None);
        }
        let mut m = meter_of(front);
        m.feed(bytes);
        let refused = m.refused();
        return (Some(refused), Some(refused));
    };
    let mut metered = meter_of(Dialect::Chat);
    let out = t
        .chunk(Some(Bytes::copy_from_slice(bytes)), true, &mut metered)
        .expect("a translatable answer")
        .unwrap_or_default();
    let mut client = meter_of(front);
    client.feed(&out);
    (Some(metered.refused()), Some(client.refused()))
}

enum Answer {
    PassThrough,
    Refused(GatewayError),
    Body(Bytes),
    /// The stream fed whole, then in each cut size: (cut size, output).
    Stream(Vec<(usize, String)>),
}

fn answer(front: Dialect, kind: Target, stream: bool, bytes: &[u8]) -> Answer {
    if kind.translation(&front_request(front, stream)).is_none() {
        return Answer::PassThrough;
    }
    if !stream {
        return match translate(front, kind, false, bytes, bytes.len()) {
            Ok(out) => Answer::Body(Bytes::from(out)),
            Err(e) => Answer::Refused(e),
        };
    }
    let mut runs = Vec::new();
    for cut in std::iter::once(bytes.len()).chain(CUTS) {
        match translate(front, kind, true, bytes, cut) {
            Ok(out) => runs.push((cut, String::from_utf8(out).expect("UTF-8 stream"))),
            Err(e) => return Answer::Refused(e),
        }
    }
    Answer::Stream(runs)
}

/// A minimal request at `front`, streamed or not: what an answer's translation reads of it.
fn front_request(front: Dialect, stream: bool) -> switchyard::dialect::request::FrontRequest {
    let body = match front {
        Dialect::Responses => {
            format!(r#"{{"model":"m","max_output_tokens":16,"input":"x","stream":{stream}}}"#)
        }
        Dialect::Gemini => {
            r#"{"contents":[{"role":"user","parts":[{"text":"x"}]}],"generationConfig":{"maxOutputTokens":16}}"#.to_string()
        }
        _ => format!(
            r#"{{"model":"m","max_tokens":16,"messages":[{{"role":"user","content":"x"}}],"stream":{stream}}}"#
        ),
    };
    read_at_door(front, Bytes::from(body), stream).expect("a valid request")
}

/// A `generateContent` (or, `stream`, `streamGenerateContent?alt=sse`) body at the Gemini
/// door for `model`.
fn gemini_front_request(
    body: Bytes,
    model: &str,
    stream: bool,
) -> Result<FrontRequest, GatewayError> {
    use switchyard::dialect::gemini_door::{Call, Method};
    let call = Call {
        model: model.to_string(),
        method: if stream {
            Method::Stream
        } else {
            Method::Generate
        },
        sse: true,
    };
    FrontRequest::read_gemini(body, &call)
}

/// A request body as its door reads it; the Gemini door takes the model and `stream` from
/// the path ([`GEMINI_DOOR_MODEL`], the method).
fn read_at_door(door: Dialect, body: Bytes, stream: bool) -> Result<FrontRequest, GatewayError> {
    match door {
        Dialect::Gemini => gemini_front_request(body, GEMINI_DOOR_MODEL, stream),
        _ => FrontRequest::read(door, body),
    }
}

/// An answer through a fresh translation, fed in chunks of `cut` bytes.
fn translate(
    front: Dialect,
    kind: Target,
    stream: bool,
    bytes: &[u8],
    cut: usize,
) -> Result<Vec<u8>, GatewayError> {
    let mut t = kind.translation(&front_request(front, stream)).unwrap();
    let mut meter = Meter::None;
    let mut out = Vec::new();
    let chunks: Vec<&[u8]> = bytes.chunks(cut.max(1)).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let end = i + 1 == chunks.len();
        if let Some(b) = t.chunk(Some(Bytes::copy_from_slice(chunk)), end, &mut meter)? {
            out.extend_from_slice(&b);
        }
    }
    if chunks.is_empty() {
        if let Some(b) = t.chunk(None, true, &mut meter)? {
            out.extend_from_slice(&b);
        }
    }
    Ok(out)
}

/// A vendor's error answer the way the proxy gives it to the client: rewrapped in the front
/// door's error shape, with the status the client gets.
fn vendor_error_answer(
    provider: &Provider,
    model: &str,
    front: Dialect,
    status: u16,
    body: &[u8],
) -> String {
    let err = if providers::is_content_filter(provider.kind, status, body) {
        GatewayError::ContentFilter
    } else {
        convert::errors::at_door(
            providers::vendor_error(Some(provider), status, body),
            providers::dialect_for(provider, model),
            front,
            providers::serves(provider, model, front),
        )
    };
    let body = dialect::error_body(front, &err);
    let body = std::str::from_utf8(&body).expect("an error body is UTF-8");
    let file = format!(
        r#"{{"vendor_status":{status},"status":{},"body":{body}}}"#,
        err.status()
    );
    pretty(file.as_bytes()).expect("an error body is JSON")
}
