//! Vendor keys from files (`api_key_file`) through the binary: a vendor that checks the key,
//! the key file rotated by a rename over it and by a Kubernetes Secret's `..data` symlink
//! swap; the next request after the reload carries the new key, with no restart and no
//! failed request. And a reload that needs an environment variable the process was started
//! without says that a restart is needed.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::raw_vendor::{read_request, serve};
use support::*;
use tokio::io::AsyncWriteExt;

const CLIENT: &str = "sk-keyfile-client";
const EFFECT_BOUND: Duration = Duration::from_secs(10);

/// The keys the vendor accepts and the key each request carried, in order.
#[derive(Clone, Default)]
struct Vendor {
    accepted: Arc<Mutex<Vec<String>>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Vendor {
    fn accept(&self, keys: &[&str]) {
        *self.accepted.lock().unwrap() = keys.iter().map(|k| k.to_string()).collect();
    }
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// An OpenAI-compatible vendor on loopback that answers 200 to a request whose
/// `Authorization: Bearer` key it accepts and 401 otherwise; its base URL.
async fn start_vendor(vendor: &Vendor) -> String {
    let v = vendor.clone();
    let (base_url, _) = serve(move |mut sock, _| {
        let v = v.clone();
        async move {
            while let Some(request) = read_request(&mut sock).await {
                let key = request
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("authorization")
                            .then(|| value.trim().trim_start_matches("Bearer ").to_string())
                    })
                    .unwrap_or_default();
                v.seen.lock().unwrap().push(key.clone());
                let ok = v.accepted.lock().unwrap().contains(&key);
                let (status, body) = if ok {
                    (
                        "200 OK",
                        r#"{"id":"chatcmpl-k","object":"chat.completion","created":1,"model":"up","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#,
                    )
                } else {
                    (
                        "401 Unauthorized",
                        r#"{"error":{"message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}}"#,
                    )
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if sock.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    })
    .await;
    base_url
}

/// Writes `key` (with a trailing newline) to a sibling temp file and renames it over `path`.
fn rotate_by_rename(path: &Path, key: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{key}\n")).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A Kubernetes Secret volume: `dir/name -> ..data/name`, `..data -> ..genN`, the file in
/// `..genN/`. Each call writes a new generation and swaps `..data` to it (a `..data_tmp`
/// symlink renamed over it), then removes the old generation, as the kubelet does.
struct SecretVolume {
    dir: PathBuf,
    name: &'static str,
    generation: usize,
}

impl SecretVolume {
    fn new(dir: PathBuf, name: &'static str, key: &str) -> SecretVolume {
        std::fs::create_dir_all(&dir).unwrap();
        let mut volume = SecretVolume {
            dir,
            name,
            generation: 0,
        };
        volume.swap(key);
        std::os::unix::fs::symlink(format!("..data/{name}"), volume.path()).unwrap();
        volume
    }

    fn path(&self) -> PathBuf {
        self.dir.join(self.name)
    }

    fn swap(&mut self, key: &str) {
        let generation = format!("..gen{}", self.generation);
        self.generation += 1;
        std::fs::create_dir(self.dir.join(&generation)).unwrap();
        std::fs::write(self.dir.join(&generation).join(self.name), key).unwrap();
        let data = self.dir.join("..data");
        let old = std::fs::read_link(&data).ok();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&generation, &tmp).unwrap();
        std::fs::rename(&tmp, &data).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

fn config(plain_url: &str, plain_key: &Path, secret_url: &str, secret_key: &Path) -> String {
    format!(
        r#"
[[providers]]
name = "plain"
kind = "openai"
base_url = "{plain_url}"
api_key_file = "{}"

[[providers]]
name = "secret"
kind = "openai"
base_url = "{secret_url}"
api_key_file = "{}"

[[models]]
name = "m-plain"
  [[models.routes]]
  provider = "plain"
  model = "up"

[[models]]
name = "m-secret"
  [[models.routes]]
  provider = "secret"
  model = "up"

[[teams]]
name = "t"

[[keys]]
id = "client"
team = "t"
sha256 = "{}"
"#,
        plain_key.display(),
        secret_key.display(),
        sha256_hex(CLIENT)
    )
}

/// Sends requests to `model` (every one must answer 200) until the vendor sees `key`, then
/// one more, which must carry it: returns how many requests it took.
async fn until_vendor_sees(gw: &Gateway, vendor: &Vendor, model: &str, key: &str) -> usize {
    let start = Instant::now();
    let mut sent = 0;
    loop {
        let resp = gw.chat(CLIENT, &chat_body(model, "hello", false)).await;
        sent += 1;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(
            status,
            200,
            "request {sent} to {model}: {body}\n{}",
            gw.logs()
        );
        if vendor.seen().last().map(String::as_str) == Some(key) {
            return sent;
        }
        assert!(
            start.elapsed() < EFFECT_BOUND,
            "the vendor never saw the rotated key\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_rotated_key_file_is_used_by_the_next_request_without_a_restart() {
    let keys = tempfile::tempdir().unwrap();
    let plain = Vendor::default();
    let secret = Vendor::default();
    plain.accept(&["sk-plain-one"]);
    secret.accept(&["sk-secret-one"]);
    let plain_url = start_vendor(&plain).await;
    let secret_url = start_vendor(&secret).await;
    let plain_key = keys.path().join("plain").join("openai.key");
    std::fs::create_dir_all(plain_key.parent().unwrap()).unwrap();
    std::fs::write(&plain_key, "sk-plain-one\n").unwrap();
    let mut volume = SecretVolume::new(keys.path().join("secret"), "api-key", "sk-secret-one");

    let mut gw = Gateway::start(&config(&plain_url, &plain_key, &secret_url, &volume.path())).await;
    let pid = gw.child_pid();
    assert_eq!(
        until_vendor_sees(&gw, &plain, "m-plain", "sk-plain-one").await,
        1
    );
    assert_eq!(
        until_vendor_sees(&gw, &secret, "m-secret", "sk-secret-one").await,
        1
    );

    // A new file renamed over the old one. The vendor takes both keys while they rotate, as
    // vendors do; once the gateway sends the new key the old one is revoked.
    plain.accept(&["sk-plain-one", "sk-plain-two"]);
    rotate_by_rename(&plain_key, "sk-plain-two");
    until_vendor_sees(&gw, &plain, "m-plain", "sk-plain-two").await;
    plain.accept(&["sk-plain-two"]);
    assert_eq!(
        until_vendor_sees(&gw, &plain, "m-plain", "sk-plain-two").await,
        1
    );

    // The Secret volume's `..data` swapped to a new generation.
    secret.accept(&["sk-secret-one", "sk-secret-two"]);
    volume.swap("sk-secret-two");
    until_vendor_sees(&gw, &secret, "m-secret", "sk-secret-two").await;
    secret.accept(&["sk-secret-two"]);
    assert_eq!(
        until_vendor_sees(&gw, &secret, "m-secret", "sk-secret-two").await,
        1
    );
    // And again: the watch follows the new generation.
    secret.accept(&["sk-secret-two", "sk-secret-three"]);
    volume.swap("sk-secret-three");
    until_vendor_sees(&gw, &secret, "m-secret", "sk-secret-three").await;

    // The other provider kept its key; the same process served throughout.
    assert_eq!(
        until_vendor_sees(&gw, &plain, "m-plain", "sk-plain-two").await,
        1
    );
    assert!(gw.is_running());
    assert_eq!(gw.child_pid(), pid);
    let logs = gw.logs();
    for key in [
        "sk-plain-one",
        "sk-plain-two",
        "sk-secret-two",
        "sk-secret-three",
    ] {
        assert!(!logs.contains(key), "a key was logged\n{logs}");
    }
}

/// A reload that adds a provider whose `api_key_env` the running process does not have is
/// rejected with the variable's name and what to do; the running config keeps serving.
#[tokio::test]
async fn a_reload_needing_a_variable_the_process_lacks_says_to_restart() {
    let mock = r#"
[[providers]]
name = "builtin"
kind = "mock"

[[models]]
name = "demo"
  [[models.routes]]
  provider = "builtin"
  model = "mock-small"

[[teams]]
name = "t"

[[keys]]
id = "client"
team = "t"
sha256 = "SHA"
"#
    .replace("SHA", &sha256_hex(CLIENT));
    let gw = Gateway::start(&mock).await;
    let var = "SWITCHYARD_TEST_KEY_NOT_IN_THE_PROCESS";
    let with_vendor = format!(
        "{mock}\n[[providers]]\nname = \"openai\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\napi_key_env = \"{var}\"\n"
    );
    gw.write_config(&with_vendor);
    let logs = gw
        .wait_for_log("restart the process (or use api_key_file)")
        .await;
    let line = logs
        .lines()
        .find(|l| l.contains("restart the process (or use api_key_file)"))
        .unwrap();
    assert!(line.contains("config reload rejected"), "{line}");
    assert!(line.contains(var), "{line}");
    assert!(line.contains("providers[1].api_key_env"), "{line}");
    let resp = gw.chat(CLIENT, &chat_body("demo", "hello", false)).await;
    assert_eq!(resp.status(), 200, "{}", gw.logs());
}
