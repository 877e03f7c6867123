//! Test harness: starts the real `covisit-server` binary on a free loopback port with
//! a temporary SQLite file (or a PostgreSQL database: [`pg::PgServer`]), and talks to
//! it as visitor, agent and REST client.
#![allow(dead_code)] // each test file uses a different part of the harness

pub mod pg;
pub mod redis;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const BIN: &str = env!("CARGO_BIN_EXE_covisit-server");
/// Where the test visitors' pages are (a loopback origin: `--dev` allows it).
pub const PAGE_ORIGIN: &str = "http://127.0.0.1";
pub const CHROME_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const WAIT: Duration = Duration::from_secs(5);

pub struct Server {
    child: Child,
    /// A node of several: its number in the cluster (from its start-up log).
    node: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    pub addr: String,
    pub db: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

fn command(db: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("COVISIT_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "info").env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.arg("--database").arg(db);
    cmd
}

impl Server {
    /// Starts a dev server (`pk_demo`/`sk_demo`) on the database in `dir`.
    pub fn start(dir: &Path) -> Server {
        Server::start_with(dir, &[])
    }

    pub fn start_with(dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_with_args(dir, env, &[])
    }

    /// With environment variables and extra command-line arguments.
    pub fn start_with_args(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Server {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args = args.iter().map(|a| a.to_string()).collect();
        Server::spawn(dir.join("covisit.db"), env, args)
    }

    /// A dev server on `database`: a SQLite file, or a `postgres://` URL.
    pub fn start_on(database: &str, env: &[(&str, &str)], args: &[&str]) -> Server {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args = args.iter().map(|a| a.to_string()).collect();
        Server::spawn(PathBuf::from(database), env, args)
    }

    fn spawn(db: PathBuf, env: Vec<(String, String)>, args: Vec<String>) -> Server {
        let mut cmd = command(&db, &env);
        cmd.args(["--dev", "--listen", "127.0.0.1:0"]).args(&args);
        if !env.iter().any(|(k, _)| k == "COVISIT_WWW") {
            cmd.args([
                "--www",
                "/nonexistent-www",
                "--sdk-dir",
                "/nonexistent-dist",
            ]);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server binary starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        let node: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
        let node_seen = node.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("joined the cluster") {
                    if let Some(n) = line
                        .split("node=")
                        .nth(1)
                        .and_then(|r| r.split_whitespace().next())
                    {
                        *node_seen.lock().unwrap() = Some(n.to_string());
                    }
                }
                if !sent {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let addr = rest.split(':').take(2).collect::<Vec<_>>().join(":");
                        let _ = tx.send(addr);
                        sent = true;
                    }
                }
                if std::env::var_os("COVISIT_TEST_LOG").is_some() {
                    eprintln!("[server] {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs its address");
        Server {
            child,
            node,
            addr,
            db,
            env,
            args,
        }
    }

    /// This node's number in its cluster, once it logged it (None before it joined).
    pub fn try_node_id(&self) -> Option<String> {
        self.node.lock().unwrap().clone()
    }

    /// This node's number in its cluster.
    pub fn node_id(&self) -> String {
        self.node
            .lock()
            .unwrap()
            .clone()
            .expect("a node of several logs its number")
    }

    /// Sends a signal (`STOP`, `CONT`, `TERM`…) to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig}");
    }

    /// Whether the process still runs: it exists and is not a zombie (exited, not
    /// yet reaped), which `kill -0` would call running.
    pub fn is_running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .ok()
            .and_then(|stat| {
                let (_, after) = stat.rsplit_once(')')?;
                after.trim_start().chars().next()
            })
            .is_some_and(|state| state != 'Z')
    }

    /// kill -9, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `wait` for the process to exit; true when it did.
    pub fn terminate(&mut self, wait: Duration) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        let deadline = std::time::Instant::now() + wait;
        while sent && std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Starts a new process on the same database.
    pub fn restart(mut self) -> Server {
        self.kill();
        let (db, env, args) = (self.db.clone(), self.env.clone(), self.args.clone());
        Server::spawn(db, env, args)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn rest(&self, key: &str) -> Rest {
        Rest {
            base: self.url(""),
            key: key.to_string(),
            client: reqwest::Client::new(),
        }
    }

    /// A visitor's socket from a page of `http://127.0.0.1` (the demo key allows any
    /// loopback origin under `--dev`). `short_id` is proven with `secret`.
    pub async fn visitor(
        &self,
        short_id: Option<&str>,
        connection_id: Option<&str>,
        focus: bool,
        config: Value,
    ) -> Ws {
        self.visitor_as(short_id, None, connection_id, focus, config)
            .await
    }

    /// A visitor that names `short_id` and proves it with `secret` (a returning visitor
    /// sends the secret its first welcome gave: `Ws::secret()`).
    pub async fn visitor_as(
        &self,
        short_id: Option<&str>,
        secret: Option<&str>,
        connection_id: Option<&str>,
        focus: bool,
        config: Value,
    ) -> Ws {
        let ws =
            Ws::connect_from(&format!("ws://{}/ws/visitor", self.addr), Some(PAGE_ORIGIN)).await;
        Server::visitor_hello(ws, short_id, secret, connection_id, focus, config).await
    }

    /// The same visitor again (a reload, a second tab): with its id and secret.
    pub async fn returning(
        &self,
        ids: &VisitorIds,
        connection_id: Option<&str>,
        focus: bool,
    ) -> Ws {
        self.visitor_as(
            Some(&ids.short_id),
            Some(&ids.secret),
            connection_id,
            focus,
            json!({}),
        )
        .await
    }

    /// A visitor (new, or the one `ids` names) whose socket says `X-Forwarded-For:
    /// forwarded_for` (the server believes it with `--trust-proxy`).
    pub async fn visitor_from(&self, forwarded_for: &str, ids: Option<&VisitorIds>) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{}/ws/visitor", self.addr)
            .into_client_request()
            .expect("a websocket request");
        request.headers_mut().insert(
            "x-forwarded-for",
            forwarded_for.parse().expect("a header value"),
        );
        request
            .headers_mut()
            .insert("origin", PAGE_ORIGIN.parse().expect("a header value"));
        let (stream, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket connects");
        let ws = Ws {
            stream,
            welcome: Value::Null,
        };
        Server::visitor_hello(
            ws,
            ids.map(|i| i.short_id.as_str()),
            ids.map(|i| i.secret.as_str()),
            None,
            true,
            json!({}),
        )
        .await
    }

    async fn visitor_hello(
        mut ws: Ws,
        short_id: Option<&str>,
        secret: Option<&str>,
        connection_id: Option<&str>,
        focus: bool,
        config: Value,
    ) -> Ws {
        ws.send(json!({
            "type": "hello", "protocol_version": 1, "api_key": "pk_demo", "short_id": short_id,
            "visitor_secret": secret,
            "connection": {"uniqueConnectionId": connection_id, "currentUrl": "http://127.0.0.1/shop",
                "screenWidth": 1280, "screenHeight": 800, "audioSupported": false, "hasFocus": focus,
                "userAgent": CHROME_UA},
            "config": config,
        }))
        .await;
        ws.welcome = ws.expect("welcome").await;
        ws
    }

    /// A visitor whose browser can make calls (`audioSupported`), welcomed.
    pub async fn caller(&self) -> Ws {
        let mut ws =
            Ws::connect_from(&format!("ws://{}/ws/visitor", self.addr), Some(PAGE_ORIGIN)).await;
        ws.send(json!({
            "type": "hello", "protocol_version": 1, "api_key": "pk_demo",
            "connection": {"currentUrl": "http://127.0.0.1/shop", "screenWidth": 1280,
                "screenHeight": 800, "audioSupported": true, "hasFocus": true,
                "userAgent": CHROME_UA},
            "config": {},
        }))
        .await;
        ws.welcome = ws.expect("welcome").await;
        ws
    }

    /// An integration's agent (the secret key; its id comes from `external_id`, here
    /// the name).
    pub async fn agent(&self, key: &str, name: &str) -> Ws {
        let mut ws = Ws::connect(&format!("ws://{}/ws/agent", self.addr)).await;
        ws.send(json!({"type": "hello", "protocol_version": 1, "secret_key": key, "name": name, "external_id": name})).await;
        ws.welcome = ws.expect("welcome").await;
        ws
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Creates another account with `keys create` on the same database; returns (pk, sk).
pub fn create_keys(db: &Path, name: &str) -> (String, String) {
    let out = command(db, &[])
        .args([
            "keys",
            "create",
            "--name",
            name,
            "--origin",
            "http://127.0.0.1",
        ])
        .output()
        .expect("keys create runs");
    assert!(
        out.status.success(),
        "keys create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let find = |label: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(label))
            .map(|s| s.trim().to_string())
            .expect("key printed")
    };
    (find("public key:"), find("secret key:"))
}

/// A visitor's id and the secret that proves it.
#[derive(Debug, Clone)]
pub struct VisitorIds {
    pub short_id: String,
    pub secret: String,
}

pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub welcome: Value,
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        Ws::connect_with(url, &[]).await
    }

    /// A socket whose handshake says `Origin: origin` (as a browser page's does).
    pub async fn connect_from(url: &str, origin: Option<&str>) -> Ws {
        match origin {
            Some(o) => Ws::connect_with(url, &[("origin", o)]).await,
            None => Ws::connect_with(url, &[]).await,
        }
    }

    /// A socket with extra handshake headers (Origin, Cookie).
    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().expect("a websocket request");
        for (k, v) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes())
                    .expect("a header name"),
                v.parse().expect("a header value"),
            );
        }
        let (stream, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket connects");
        Ws {
            stream,
            welcome: Value::Null,
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(v.to_string()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        self.stream
            .send(Message::text(text))
            .await
            .expect("send works");
    }

    /// A text frame whose payload is `bytes` as they are (not necessarily UTF-8: what a
    /// broken or hostile client sends).
    pub async fn send_raw_text(&mut self, bytes: &[u8]) {
        use tokio_tungstenite::tungstenite::protocol::frame::{
            coding::{Data, OpCode},
            Frame,
        };
        let frame = Frame::message(bytes.to_vec(), OpCode::Data(Data::Text), true);
        self.stream
            .send(Message::Frame(frame))
            .await
            .expect("send works");
    }

    /// The close frame's code the server sends within `wait` (None: none came, the
    /// socket just ended or stayed open).
    pub async fn close_code_within(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    /// The next text frame as JSON; None when the socket closed or nothing came in time.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, self.stream.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Some(serde_json::from_str(&t).expect("server sends JSON"))
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => {
                    return None
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Every frame the server sent this socket before it handled a heartbeat sent now:
    /// frames on one socket keep the order the hub produced them, so whatever the frames
    /// this socket sent earlier caused (and whatever other sockets' frames, already
    /// answered, caused for this one) is in the list. A barrier, not a wait.
    pub async fn frames_until_ack(&mut self) -> Vec<Value> {
        self.send(json!({"type": "heartbeat"})).await;
        let mut frames = Vec::new();
        loop {
            let f = self.next(WAIT).await.expect("a heartbeat_ack");
            if f["type"] == "heartbeat_ack" {
                return frames;
            }
            frames.push(f);
        }
    }

    /// Skips frames until one of type `kind` arrives (panics after 5 s).
    pub async fn expect(&mut self, kind: &str) -> Value {
        self.expect_where(kind, |_| true).await
    }

    /// As an agent: asks `short_id` for a session (`found_by` says how the agent found
    /// them) and returns the new session's id from the `session_update` that follows.
    pub async fn request_session(&mut self, short_id: &str, found_by: &str) -> String {
        self.send(json!({"type": "request_session", "short_id": short_id, "found_by": found_by}))
            .await;
        let update = self
            .expect_where("session_update", |v| v["session"]["visitor_id"] == short_id)
            .await;
        update["session"]["id"]
            .as_str()
            .expect("session id")
            .to_string()
    }

    pub async fn expect_where(&mut self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.expect_within(kind, WAIT, pred).await
    }

    /// Skips frames until one of type `kind` for which `pred` holds arrives (panics
    /// after `wait`).
    pub async fn expect_within(
        &mut self,
        kind: &str,
        wait: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(v) if v["type"] == kind && pred(&v) => return v,
                Some(_) => continue,
                None => panic!("no `{kind}` frame arrived"),
            }
        }
    }

    /// A session_update for `session_id` with `status`.
    pub async fn expect_status(&mut self, session_id: &str, status: &str) -> Value {
        self.expect_where("session_update", |v| {
            v["session"]["id"] == session_id && v["status"] == status
        })
        .await
    }

    /// True when the server closes the socket within `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => return true,
                Ok(Some(Ok(_))) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Every text frame until the server closes the socket, and the close code (0 when
    /// the connection ended without a close frame). Panics when it stays open `wait`.
    pub async fn frames_until_closed(&mut self, wait: Duration) -> (Vec<Value>, u16) {
        let deadline = tokio::time::Instant::now() + wait;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.stream.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    frames.push(serde_json::from_str(&t).expect("server sends JSON"))
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return (frames, frame.map_or(0, |f| u16::from(f.code)))
                }
                Ok(Some(Err(_))) | Ok(None) => return (frames, 0),
                Ok(Some(Ok(_))) => continue,
                Err(_) => panic!("the socket stayed open for {wait:?}"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }

    pub fn short_id(&self) -> String {
        self.welcome["short_id"]
            .as_str()
            .expect("welcome has short_id")
            .to_string()
    }

    /// Who this visitor is, to come back as it (`Server::returning`).
    pub fn ids(&self) -> VisitorIds {
        VisitorIds {
            short_id: self.short_id(),
            secret: self.secret(),
        }
    }

    /// The visitor secret the welcome gave (a new visitor's).
    pub fn secret(&self) -> String {
        self.welcome["visitor_secret"]
            .as_str()
            .expect("welcome has visitor_secret")
            .to_string()
    }

    pub fn connection_id(&self) -> String {
        self.welcome["uniqueConnectionId"]
            .as_str()
            .expect("welcome has uniqueConnectionId")
            .to_string()
    }
}

pub struct Rest {
    base: String,
    key: String,
    client: reqwest::Client,
}

impl Rest {
    pub async fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request is answered");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body is read");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        self.call("POST", path, Some(body)).await
    }
}

/// Asserts that `obj` has every field of the fixture's `name` object with an allowed
/// JSON type, recursing into the parts the fixture names.
pub fn assert_seed_fields(name: &str, obj: &Value) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/seed_fields.json"
    );
    let text = std::fs::read_to_string(path).expect("tests/fixtures/seed_fields.json exists");
    let fixture: Value = serde_json::from_str(&text).expect("fixture is JSON");
    check(&fixture, name, obj, name);
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(fixture: &Value, name: &str, obj: &Value, at: &str) {
    let spec = &fixture[name];
    let fields = spec["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("fixture has no object {name}"));
    let map = obj
        .as_object()
        .unwrap_or_else(|| panic!("{at} is not an object: {obj}"));
    for (field, types) in fields {
        let value = map
            .get(field)
            .unwrap_or_else(|| panic!("{at} lacks seed field `{field}`: {obj}"));
        let allowed: Vec<&str> = types
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let t = json_type(value);
        assert!(
            allowed.contains(&t),
            "{at}.{field} is {t}, the seed allows {allowed:?}"
        );
        if let (Some(values), Value::String(s)) = (spec["values"][field].as_array(), value) {
            assert!(
                values.iter().any(|v| v == s),
                "{at}.{field} = {s:?} is not one of the seed's values {values:?}"
            );
        }
        if let Some(part) = spec["parts"][field].as_str() {
            match value {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        check(fixture, part, item, &format!("{at}.{field}[{i}]"));
                    }
                }
                Value::Object(_) => check(fixture, part, value, &format!("{at}.{field}")),
                _ => {}
            }
        }
    }
}

/// The wall clock in ms since the epoch, as the SDK stamps events.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Sends a journey `track` batch and proves it was taken (no error frame before the ack).
pub async fn track(ws: &mut Ws, events: Vec<Value>) {
    ws.send(json!({"type": "track", "sent_at": now_ms(), "events": events}))
        .await;
    ws.send(json!({"type": "heartbeat"})).await;
    loop {
        let f = ws.next(Duration::from_secs(5)).await.expect("a frame");
        assert_ne!(f["type"], "error", "track refused: {f}");
        if f["type"] == "heartbeat_ack" {
            return;
        }
    }
}

/// The visitor's journey sessions (REST, demo secret key).
pub async fn journeys(server: &Server, visitor: &str) -> Vec<Value> {
    let (status, body) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/journey/sessions?visitor_id={visitor}"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["sessions"]
        .as_array()
        .cloned()
        .expect("a sessions list")
}

// ----- console users (cookie sign-in) -----------------------------------------------------

/// The demo admin `--dev` creates.
pub const DEMO_ADMIN: (&str, &str) = ("admin@demo.test", "open-the-demo-console");

/// A signed-in console: its session cookie and CSRF token, as the browser would hold them.
#[derive(Clone)]
pub struct Console {
    pub base: String,
    pub cookie: String,
    pub csrf: String,
    pub user: Value,
    pub client: reqwest::Client,
}

/// The `covisit_session=…` pair of a response's Set-Cookie, and the whole header.
pub fn session_cookie(resp: &reqwest::Response) -> Option<(String, String)> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("covisit_session="))
        .map(|v| {
            (
                v.split(';').next().unwrap_or_default().to_string(),
                v.to_string(),
            )
        })
}

impl Server {
    /// POST /api/v1/auth/sign_in; the response's status and body, and the console when it worked.
    pub async fn sign_in_raw(&self, email: &str, password: &str) -> (u16, Value, Option<Console>) {
        let client = reqwest::Client::new();
        let resp = client
            .post(self.url("/api/v1/auth/sign_in"))
            .header("content-type", "application/json")
            .body(json!({"email": email, "password": password}).to_string())
            .send()
            .await
            .expect("sign-in is answered");
        let status = resp.status().as_u16();
        let cookie = session_cookie(&resp).map(|(pair, _)| pair);
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let console = cookie.filter(|_| status == 200).map(|cookie| Console {
            base: self.url(""),
            cookie,
            csrf: body["csrf_token"].as_str().unwrap_or_default().to_string(),
            user: body["user"].clone(),
            client,
        });
        (status, body, console)
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Console {
        let (status, body, console) = self.sign_in_raw(email, password).await;
        console.unwrap_or_else(|| panic!("sign-in of {email} failed: {status} {body}"))
    }

    /// A new user of the demo account with `role` (invited by the demo admin, invite
    /// accepted with a password); signed in.
    pub async fn user(&self, role: &str, name: &str) -> Console {
        let admin = self.sign_in(DEMO_ADMIN.0, DEMO_ADMIN.1).await;
        let email = format!("{}@demo.test", name.to_lowercase().replace(' ', "."));
        let (status, invited) = admin
            .call(
                "POST",
                "/api/v1/users",
                Some(json!({"email": email, "name": name, "role": role})),
            )
            .await;
        assert_eq!(status, 201, "{invited}");
        let token = invited["invite_url"]
            .as_str()
            .and_then(|u| u.rsplit('/').next())
            .expect("an invite link")
            .to_string();
        let (status, body) = self
            .accept(&token, &format!("{name} has a long password"))
            .await;
        assert_eq!(status, 200, "{body}");
        self.sign_in(&email, &format!("{name} has a long password"))
            .await
    }

    /// POST /api/v1/auth/accept (an invite's or a reset link's token).
    pub async fn accept(&self, token: &str, password: &str) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(self.url("/api/v1/auth/accept"))
            .header("content-type", "application/json")
            .body(json!({"token": token, "password": password}).to_string())
            .send()
            .await
            .expect("accept is answered");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The console's agent socket, opened from this server's page with the cookie.
    pub async fn console_socket(&self, console: &Console) -> Ws {
        let origin = format!("http://{}", self.addr);
        let mut ws = Ws::connect_with(
            &format!("ws://{}/ws/agent", self.addr),
            &[
                ("origin", origin.as_str()),
                ("cookie", console.cookie.as_str()),
            ],
        )
        .await;
        ws.send(json!({"type": "hello", "protocol_version": 1}))
            .await;
        ws.welcome = ws.expect("welcome").await;
        ws
    }
}

impl Console {
    /// A REST call with the session cookie and (on writes) the CSRF token.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_with(method, path, body, true).await
    }

    /// As `call`, with or without the CSRF header.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        csrf: bool,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
        let mut req = self
            .client
            .request(m, format!("{}{path}", self.base))
            .header("cookie", &self.cookie);
        if csrf {
            req = req.header("x-csrf-token", &self.csrf);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.expect("request is answered");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body is read");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub fn id(&self) -> String {
        self.user["id"].as_str().expect("a user id").to_string()
    }
}
