//! Token estimates, for when a vendor reports no usage (or the client left before it did).
//!
//! - **What was generated** ([`generated_chars`]): every text the client received — `content`,
//!   reasoning (`reasoning_content`, `reasoning`), `refusal`, tool-call names and arguments (and
//!   the legacy `function_call`) — in a chat chunk's `delta` or a completion's `message`, every
//!   choice. Tokens ≈ characters ÷ 4 ([`crate::accounting::usage::estimate_tokens`]). On a stream, the chat
//!   scanner counts `content` itself and asks [`generated_chars_besides_content`] for the rest,
//!   which parses only the events that hold one of those keys.
//! - **What a prompt will be billed** ([`prompt_tokens`]): a message's JSON at about four bytes
//!   a token, except that images, audio and files count what vendors bill for them, never their
//!   base64 length:
//!   - an image whose size can be read from its data URL (PNG, JPEG, GIF, WebP headers): the
//!     larger of OpenAI's figure (high detail: fit in 2048×2048, shortest side to 768, then
//!     85 + 170 per 512-px tile; `detail: "low"`: 85) and Anthropic's (w × h ÷ 750 after
//!     fitting the long side in 1568 px, at most ~1,600); an image by URL or unreadable:
//!     [`IMAGE_TOKENS`];
//!   - audio: [`AUDIO_TOKENS_PER_SECOND`] for each second at 16 kB/s of encoded data;
//!   - a file: [`FILE_PAGE_TOKENS`] for every [`FILE_PAGE_BYTES`] of data (at least one page).

use std::borrow::Cow;
use std::sync::LazyLock;

use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;

use memchr::memmem;

use crate::accounting::usage::estimate_tokens;

/// An image whose size cannot be read (a URL, or a header not understood): about the most
/// OpenAI (1,445 for 2048×768 at high detail) or Anthropic (~1,600) bill for one image.
pub const IMAGE_TOKENS: u64 = 1_600;
/// The most Anthropic bills for one image (its table: 1092×1092 → ~1,590; 1268×951 → ~1,600).
const ANTHROPIC_IMAGE_MAX: u64 = 1_600;
/// Audio input: Gemini bills 32 tokens a second (OpenAI's audio models about 10).
pub const AUDIO_TOKENS_PER_SECOND: u64 = 32;
/// Encoded audio bytes in a second (128 kbit/s).
const AUDIO_BYTES_PER_SECOND: u64 = 16_000;
/// A file (PDF) page: Anthropic bills 1,500–3,000 tokens of text plus the page as an image.
pub const FILE_PAGE_TOKENS: u64 = 1_600;
/// Data taken as one page of a file.
pub const FILE_PAGE_BYTES: u64 = 50_000;
/// Leading base64 characters decoded to read an image's size (48 KiB of image: enough for
/// the PNG, GIF and WebP headers, and the JPEG frame header after most EXIF blocks).
const HEADER_B64: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Generated text.

/// Characters of generated text in one event's data (a `chat.completion.chunk`) or in a whole
/// `chat.completion`: content, reasoning, refusal, tool-call names and arguments, of every
/// choice. Data that is not such JSON (`[DONE]`, an error, a cut event) counts 0.
pub fn generated_chars(data: &[u8]) -> u64 {
    chars_of(data, true)
}

/// Like [`generated_chars`] without `content`; 0 without parsing when the data holds none of
/// the other keys (most events of a stream), so that it costs a byte search.
pub fn generated_chars_besides_content(data: &[u8]) -> u64 {
    if OTHER_KEYS.iter().all(|k| k.find(data).is_none()) {
        return 0;
    }
    chars_of(data, false)
}

/// The keys of generated text besides `content`, as searchers built once: this runs on every
/// stream event, and `memmem::find` builds its searcher on every call (~1.5k instructions,
/// more than the search of a short event).
static OTHER_KEYS: LazyLock<[memmem::Finder<'static>; 4]> = LazyLock::new(|| {
    [
        memmem::Finder::new(b"\"reasoning"),
        memmem::Finder::new(b"\"refusal\""),
        memmem::Finder::new(b"\"tool_calls\""),
        memmem::Finder::new(b"\"function_call\""),
    ]
});

fn chars_of(data: &[u8], content: bool) -> u64 {
    let Ok(answer) = serde_json::from_slice::<Answer<'_>>(data) else {
        return 0;
    };
    answer
        .choices
        .iter()
        .flat_map(|c| [c.delta.as_ref(), c.message.as_ref()])
        .flatten()
        .map(|g| g.chars(content))
        .sum()
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Generated<'a>>,
    #[serde(borrow, default)]
    message: Option<Generated<'a>>,
}

/// A `delta` or a `message`; every field raw, so that a server's odd shape for one of them
/// (an array of content parts, an object) costs that field, not the whole count.
#[derive(Deserialize)]
struct Generated<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning_content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow, default)]
    refusal: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCall<'a>>>,
    #[serde(borrow, default)]
    function_call: Option<Function<'a>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow, default)]
    function: Option<Function<'a>>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

impl Generated<'_> {
    fn chars(&self, content: bool) -> u64 {
        let calls = self
            .tool_calls
            .iter()
            .flatten()
            .filter_map(|c| c.function.as_ref());
        let functions = calls.chain(self.function_call.as_ref());
        let texts = [
            self.content.filter(|_| content),
            self.reasoning_content,
            self.reasoning,
            self.refusal,
        ];
        let own: u64 = texts.into_iter().flatten().map(text_chars).sum();
        let called: u64 = functions
            .flat_map(|f| [f.name, f.arguments])
            .flatten()
            .map(text_chars)
            .sum();
        own + called
    }
}

/// Characters of a JSON string (unescaped); of an array of content parts, their `text`s.
fn text_chars(raw: &RawValue) -> u64 {
    #[derive(Deserialize)]
    struct Part<'a> {
        #[serde(borrow, default)]
        text: Option<Cow<'a, str>>,
    }
    let json = raw.get();
    if json.starts_with('"') {
        return serde_json::from_str::<Cow<'_, str>>(json).map_or(0, |s| s.chars().count() as u64);
    }
    serde_json::from_str::<Vec<Part<'_>>>(json).map_or(0, |parts| {
        parts
            .iter()
            .filter_map(|p| p.text.as_ref())
            .map(|t| t.chars().count() as u64)
            .sum()
    })
}

// ---------------------------------------------------------------------------------------------
// Prompts.

/// Prompt tokens estimated from a request's messages (at least 1): each message's JSON at
/// about four bytes a token, with every image, audio clip and file counted at what vendors
/// bill for it instead of its encoded length.
pub fn prompt_tokens(messages: &[&RawValue]) -> u64 {
    messages
        .iter()
        .map(|m| message_tokens(m))
        .fold(0u64, u64::saturating_add)
        .max(1)
}

/// Prompt tokens estimated from the raw JSON of a request's input parts (an Anthropic request's
/// `system`, `messages` and `tools`): an array's elements as messages (media counted as in
/// [`prompt_tokens`]), anything else at about four bytes a token; at least 1.
pub fn json_tokens<'a>(parts: impl Iterator<Item = &'a str>) -> u64 {
    parts
        .map(|json| match serde_json::from_str::<Vec<&RawValue>>(json) {
            Ok(items) => items.iter().map(|m| message_tokens(m)).sum(),
            Err(_) => estimate_tokens(json.len() as u64),
        })
        .fold(0u64, u64::saturating_add)
        .max(1)
}

fn message_tokens(message: &RawValue) -> u64 {
    let json = message.get();
    let media = serde_json::from_str::<Message<'_>>(json)
        .ok()
        .and_then(|m| m.content)
        .unwrap_or_default();
    let mut payload_bytes = 0u64;
    let mut media_tokens = 0u64;
    for part in &media {
        if let Some((bytes, tokens)) = part.estimate() {
            payload_bytes += bytes;
            media_tokens = media_tokens.saturating_add(tokens);
        }
    }
    let text_bytes = (json.len() as u64).saturating_sub(payload_bytes);
    estimate_tokens(text_bytes).saturating_add(media_tokens)
}

#[derive(Deserialize)]
struct Message<'a> {
    /// Only an array of parts holds media; a string content, or an odd shape, is text.
    #[serde(borrow, default, deserialize_with = "parts_or_none")]
    content: Option<Vec<Part<'a>>>,
}

fn parts_or_none<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<Part<'a>>>, D::Error> {
    let raw = <Option<&'de RawValue>>::deserialize(d)?;
    // A string (the usual content) is not parsed as parts: that would only make an error.
    Ok(raw
        .filter(|r| r.get().starts_with('['))
        .and_then(|r| serde_json::from_str(r.get()).ok()))
}

/// A content part: OpenAI's (`image_url`, `input_audio`, `file`) or Anthropic's (`image` and
/// `document` blocks with a base64 `source`).
#[derive(Deserialize)]
struct Part<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source: Option<Source<'a>>,
    #[serde(borrow, default)]
    image_url: Option<ImageUrl<'a>>,
    #[serde(borrow, default)]
    input_audio: Option<Audio<'a>>,
    #[serde(borrow, default)]
    file: Option<File<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ImageUrl<'a> {
    Object {
        #[serde(borrow)]
        url: Cow<'a, str>,
        #[serde(borrow, default)]
        detail: Option<Cow<'a, str>>,
    },
    Url(#[serde(borrow)] Cow<'a, str>),
}

/// Anthropic's `source` of an image or document block.
#[derive(Deserialize)]
struct Source<'a> {
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Audio<'a> {
    #[serde(borrow, default)]
    data: Cow<'a, str>,
}

#[derive(Deserialize)]
struct File<'a> {
    #[serde(borrow, default)]
    file_data: Option<Cow<'a, str>>,
}

impl Part<'_> {
    /// The bytes of the part's payload in the message's JSON, and the tokens it is billed.
    fn estimate(&self) -> Option<(u64, u64)> {
        if let Some(data) = self.source.as_ref().and_then(|s| s.data.as_ref()) {
            let bytes = data.len() as u64;
            return match self.kind.as_deref() {
                Some("image") => Some((bytes, image_tokens_of_base64(data))),
                Some("document") => {
                    let pages = base64_decoded_len(data).div_ceil(FILE_PAGE_BYTES).max(1);
                    Some((bytes, pages * FILE_PAGE_TOKENS))
                }
                _ => None,
            };
        }
        if let Some(image) = &self.image_url {
            let (url, detail) = match image {
                ImageUrl::Object { url, detail } => (url, detail.as_deref()),
                ImageUrl::Url(url) => (url, None),
            };
            return Some((url.len() as u64, image_tokens(url, detail)));
        }
        if let Some(audio) = &self.input_audio {
            let bytes = base64_decoded_len(&audio.data);
            let seconds = bytes.div_ceil(AUDIO_BYTES_PER_SECOND).max(1);
            return Some((audio.data.len() as u64, seconds * AUDIO_TOKENS_PER_SECOND));
        }
        let data = self.file.as_ref()?.file_data.as_ref()?;
        let pages = base64_decoded_len(data).div_ceil(FILE_PAGE_BYTES).max(1);
        Some((data.len() as u64, pages * FILE_PAGE_TOKENS))
    }
}

/// Bytes a base64 payload (after any `data:…,` prefix) decodes to.
fn base64_decoded_len(data: &str) -> u64 {
    let b64 = data.split_once(',').map_or(data, |(_, b)| b);
    (b64.trim_end_matches('=').len() as u64) * 3 / 4
}

/// Tokens billed for one image: from its size when its data URL's header can be read.
pub fn image_tokens(url: &str, detail: Option<&str>) -> u64 {
    if detail == Some("low") {
        return 85;
    }
    match image_size(url) {
        Some((w, h)) => openai_image_tokens(w, h).max(anthropic_image_tokens(w, h)),
        None => IMAGE_TOKENS,
    }
}

/// Tokens billed for an image given as bare base64 (Anthropic's `source.data`).
fn image_tokens_of_base64(b64: &str) -> u64 {
    match base64_image_size(b64) {
        Some((w, h)) => openai_image_tokens(w, h).max(anthropic_image_tokens(w, h)),
        None => IMAGE_TOKENS,
    }
}

/// Width and height from a `data:image/…;base64,` URL's image header.
fn image_size(url: &str) -> Option<(u64, u64)> {
    let (head, b64) = url.strip_prefix("data:")?.split_once(',')?;
    if !head.ends_with(";base64") {
        return None;
    }
    base64_image_size(b64)
}

/// Width and height from the header of a base64-encoded image.
fn base64_image_size(b64: &str) -> Option<(u64, u64)> {
    let mut prefix = &b64.as_bytes()[..b64.len().min(HEADER_B64)];
    prefix = &prefix[..prefix.len() / 4 * 4];
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(prefix)
        .ok()?;
    let size = imagesize::blob_size(&bytes).ok()?;
    Some((size.width as u64, size.height as u64)).filter(|(w, h)| *w > 0 && *h > 0)
}

/// OpenAI, high detail: fit within 2048×2048, scale the shortest side to 768 (never up), then
/// 85 + 170 per 512-px tile.
fn openai_image_tokens(w: u64, h: u64) -> u64 {
    let (mut w, mut h) = (w as f64, h as f64);
    let fit = (2048.0 / w.max(h)).min(1.0);
    (w, h) = (w * fit, h * fit);
    let short = (768.0 / w.min(h)).min(1.0);
    (w, h) = (w * short, h * short);
    let tiles = (w / 512.0).ceil() * (h / 512.0).ceil();
    85 + 170 * tiles as u64
}

/// Anthropic: w × h ÷ 750, after fitting the long side within 1568 px; a larger image is
/// scaled to about 1.15 megapixels, ~1,600 tokens ([`ANTHROPIC_IMAGE_MAX`]).
fn anthropic_image_tokens(w: u64, h: u64) -> u64 {
    let fit = (1568.0 / w.max(h) as f64).min(1.0);
    let (w, h) = (w as f64 * fit, h as f64 * fit);
    ((w * h / 750.0).ceil() as u64).min(ANTHROPIC_IMAGE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_text_counts() {
        let chunk =
            br#"{"choices":[{"index":0,"delta":{"reasoning_content":"abcd","content":"ef"}},
            {"index":1,"delta":{"reasoning":"gh","refusal":"ij",
             "tool_calls":[{"index":0,"function":{"name":"get","arguments":"{\"a\":1}"}}]}}]}"#;
        // 4 + 2 + 2 + 2 + 3 + 7
        assert_eq!(generated_chars(chunk), 20);
        let body = br#"{"choices":[{"message":{"role":"assistant","content":null,
            "function_call":{"name":"f","arguments":"xy"},"reasoning_content":"\u00e9t\u00e9"}}]}"#;
        assert_eq!(generated_chars(body), 1 + 2 + 3);
        // Content as parts; an odd reasoning shape costs only itself.
        let odd = br#"{"choices":[{"delta":{"content":[{"type":"text","text":"abc"}],"reasoning":{"x":1}}}]}"#;
        assert_eq!(generated_chars(odd), 3);
        for nothing in [
            &b"[DONE]"[..],
            b"{\"error\":{\"message\":\"x\"}}",
            b"{\"choices\":[{",
            b"",
        ] {
            assert_eq!(generated_chars(nothing), 0);
        }
        assert_eq!(generated_chars_besides_content(chunk), 20 - 2);
        let plain = br#"{"choices":[{"delta":{"content":"only content"}}]}"#;
        assert_eq!(generated_chars_besides_content(plain), 0);
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        b
    }

    fn data_url(mime: &str, bytes: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
        format!("data:{mime};base64,{b64}")
    }

    #[test]
    fn image_figures_follow_the_vendors() {
        // OpenAI's documented examples: 1024×1024 → 765; 2048×4096 → 1105.
        assert_eq!(openai_image_tokens(1024, 1024), 765);
        assert_eq!(openai_image_tokens(2048, 4096), 1105);
        assert_eq!(openai_image_tokens(100, 100), 255);
        // Anthropic's table: 1092×1092 → ~1590; 200×200 → ~54.
        assert_eq!(anthropic_image_tokens(1092, 1092), 1590);
        assert_eq!(anthropic_image_tokens(200, 200), 54);
        assert_eq!(
            anthropic_image_tokens(4000, 3000),
            1600,
            "scaled to ~1.15 MP"
        );
        let url = data_url("image/png", &png(1024, 1024));
        assert_eq!(image_tokens(&url, None), 1399);
        assert_eq!(image_tokens(&url, Some("low")), 85);
        assert_eq!(
            image_tokens("https://example.com/a.png", None),
            IMAGE_TOKENS
        );
        assert_eq!(
            image_tokens("data:image/png;base64,!!!!", None),
            IMAGE_TOKENS
        );
        // GIF: width and height little-endian after the signature.
        let gif = b"GIF89a\x40\x01\xf0\x00\0\0\0";
        assert_eq!(image_size(&data_url("image/gif", gif)), Some((320, 240)));
    }

    #[test]
    fn base64_payloads_are_not_text() {
        // A 1 MB PNG (its header, then noise): billed ~1,400 tokens, not 350,000.
        let mut img = png(1024, 1024);
        img.resize(1_000_000, b'z');
        let msg = format!(
            r#"{{"role":"user","content":[{{"type":"text","text":"What is in this picture?"}},
                {{"type":"image_url","image_url":{{"url":"{}"}}}}]}}"#,
            data_url("image/png", &img)
        );
        let raw: Box<RawValue> = serde_json::from_str(&msg).unwrap();
        let n = prompt_tokens(&[&raw]);
        assert!((1399..1399 + 60).contains(&n), "{n}");
        // 160 kB of audio: 10 s at 32 tokens/s; a 120 kB file: 3 pages.
        let audio = format!(
            r#"{{"role":"user","content":[{{"type":"input_audio","input_audio":{{"data":"{}","format":"mp3"}}}}]}}"#,
            base64::engine::general_purpose::STANDARD.encode(vec![0u8; 160_000])
        );
        let raw: Box<RawValue> = serde_json::from_str(&audio).unwrap();
        assert!((320..360).contains(&prompt_tokens(&[&raw])));
        let file = format!(
            r#"{{"role":"user","content":[{{"type":"file","file":{{"filename":"a.pdf","file_data":"{}"}}}}]}}"#,
            data_url("application/pdf", &vec![0u8; 120_000])
        );
        let raw: Box<RawValue> = serde_json::from_str(&file).unwrap();
        assert!((4800..4830).contains(&prompt_tokens(&[&raw])));
        // Anthropic's blocks (the Messages front door): the same figures.
        let mut png = png(1024, 1024);
        png.resize(600_000, 0);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
        let messages = format!(
            r#"[{{"role":"user","content":[{{"type":"image","source":{{"type":"base64","media_type":"image/png","data":"{b64}"}}}},
                {{"type":"document","source":{{"type":"base64","media_type":"application/pdf","data":"{b64}"}}}},
                {{"type":"text","text":"Compare them."}}]}}]"#
        );
        let n = json_tokens([r#""Be brief.""#, messages.as_str()].into_iter());
        // 1,399 for the image, 12 pages of 1,600 for the 600 kB document, and the text.
        assert!((1399 + 19_200..1399 + 19_200 + 80).contains(&n), "{n}");
        assert_eq!(json_tokens(std::iter::empty()), 1);
        // Text is still about four bytes a token.
        let raw: Box<RawValue> =
            serde_json::from_str(r#"{"role":"user","content":"abcdefghijklmnop"}"#).unwrap();
        assert_eq!(prompt_tokens(&[&raw]), 11);
    }
}
