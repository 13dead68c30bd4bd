//! Starts the real `yunquan` binary on port 0 with its own data directory and talks
//! to it over HTTP. No sleeps: readiness is polled with a deadline.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_yunquan");

/// A running server process.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub data: PathBuf,
}

impl Server {
    /// Starts `yunquan serve` on `data` and waits until it is ready.
    pub fn start(data: &Path) -> Server {
        Server::start_with(data, &[])
    }

    /// Like [`Server::start`], with `extra` arguments for `serve` (e.g. a snapshot interval).
    pub fn start_with(data: &Path, extra: &[&str]) -> Server {
        let mut server = Server::spawn_listening(data, extra);
        server.wait_ready();
        server
    }

    /// Starts `yunquan serve` and returns as soon as it prints its listening line, without
    /// waiting for readiness (a crash test kills it there, during start-up).
    pub fn spawn_listening(data: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--data"])
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--shards", "2"])
            // Exact-count tests must not see queue-age or latency shedding on a busy
            // machine; a test of shedding passes its own value.
            .args(if extra.contains(&"--queue-wait-ms-max") {
                &[][..]
            } else {
                &["--queue-wait-ms-max", "0"][..]
            })
            .args(if extra.contains(&"--request-latency-ms-p90-target") {
                &[][..]
            } else {
                &["--request-latency-ms-p90-target", "0"][..]
            })
            .args(extra)
            .stdout(Stdio::piped())
            // YUNQUAN_TEST_SERVER_STDERR=1 shows the servers' logs, to debug a failing test.
            .stderr(
                if std::env::var_os("YUNQUAN_TEST_SERVER_STDERR").is_some() {
                    Stdio::inherit()
                } else {
                    Stdio::null()
                },
            )
            .spawn()
            .expect("spawn yunquan serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read listening line");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server {
            child,
            base,
            data: data.to_path_buf(),
        }
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(READY_DEADLINE_S);
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            match readyz_status(&self.base) {
                Ok(200) => return,
                Ok(status) => last = format!("/readyz answered {status}"),
                Err(e) => last = format!("/readyz failed: {e}"),
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited before it was ready ({status}); last: {last}");
            }
            std::thread::yield_now();
        }
        panic!(
            "server not ready within {READY_DEADLINE_S} s; last: {last} \
             (YUNQUAN_TEST_SERVER_STDERR=1 shows its log)"
        );
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Mints a token with the binary's `token` command (reads DIR/token.key).
    pub fn token(&self, role: &str, subject: &str, merchant: Option<&str>) -> String {
        let mut cmd = Command::new(BIN);
        cmd.args(["token", "--data"])
            .arg(&self.data)
            .args(["--role", role, "--subject", subject]);
        if let Some(m) = merchant {
            cmd.args(["--merchant", m]);
        }
        let out = cmd.output().expect("yunquan token");
        assert!(
            out.status.success(),
            "token: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a started server may take to answer `/readyz` with 200.
const READY_DEADLINE_S: u64 = 60;

/// The status of `GET /readyz` on `base` (`http://127.0.0.1:PORT`), over a plain socket.
/// Readiness is polled from async tests too, where reqwest's blocking client must not be
/// built: building one inside a runtime can hang for good.
fn readyz_status(base: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(READY_REQUEST_TIMEOUT_S)))?;
    stream.set_write_timeout(Some(Duration::from_secs(READY_REQUEST_TIMEOUT_S)))?;
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = Vec::new();
    stream.read_to_end(&mut head)?;
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:.60}")))
}

/// Longest one readiness request may take, in seconds.
const READY_REQUEST_TIMEOUT_S: u64 = 5;

/// A small async HTTP client bound to a server and a token.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

impl Api {
    pub fn new(base: &str, token: Option<String>) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: base.to_owned(),
            token,
        }
    }

    pub fn as_(&self, token: &str) -> Api {
        Api {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn send(&self, r: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        let text = resp.text().await.expect("body");
        if status >= 400 {
            assert!(
                ct.starts_with("application/problem+json"),
                "status {status} with content-type {ct:?}: {text}"
            );
        }
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.req(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.req(reqwest::Method::POST, path).json(&body))
            .await
    }

    pub async fn post_key(&self, path: &str, body: Value, key: &str) -> (u16, Value) {
        self.send(
            self.req(reqwest::Method::POST, path)
                .header("Idempotency-Key", key)
                .json(&body),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, body: String, content_type: &str) -> (u16, Value) {
        self.send(
            self.req(reqwest::Method::POST, path)
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let resp = self
            .req(reqwest::Method::GET, path)
            .send()
            .await
            .expect("request");
        (resp.status().as_u16(), resp.text().await.expect("body"))
    }
}

/// Local (Asia/Shanghai) wall-clock time `offset_s` from now, as the API's naive datetime.
pub fn local(offset_s: i64) -> String {
    let now = chrono::Utc::now() + chrono::Duration::seconds(offset_s);
    (now + chrono::Duration::hours(8))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// A campaign whose round is live now, with the given tiers.
pub fn live_campaign(tiers: Value) -> Value {
    json!({
        "name": "e2e round", "funder": "commerce dept", "budget_fen": 100_000_000_000u64,
        "rounds": [{"start": local(-60), "end": local(3600)}],
        "tiers": tiers,
        "limits": {"per_tier_per_round": 1},
        "eligibility": {"categories": ["catering", "retail"]},
        "validity": {"kind": "days_after_claim", "days": 1}
    })
}

/// NDJSON of `n` residents `{prefix}{i}` with distinct identities.
pub fn residents_ndjson(prefix: &str, n: usize) -> String {
    let tag: String = prefix.bytes().map(|b| format!("{b:03}")).collect();
    (0..n)
        .map(|i| json!({"account": format!("{prefix}{i}"), "identity_number": format!("{tag}{i:08}"), "region": "guiyang"}).to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
