//! Auth, account isolation, bad input, heartbeats and crash durability against the
//! real server binary.

mod common;

use std::time::Duration;

use common::{assert_seed_fields, create_keys, Server, Ws};
use serde_json::{json, Value};

/// A visitor with a wrong key gets an error frame and the socket is closed.
#[tokio::test]
async fn wrong_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut ws = Ws::connect_from(
        &format!("ws://{}/ws/visitor", server.addr),
        Some(common::PAGE_ORIGIN),
    )
    .await;
    ws.send(json!({"type": "hello", "protocol_version": 1, "api_key": "pk_nope", "short_id": null, "connection": {}})).await;
    assert_eq!(ws.expect("error").await["code"], "invalid_api_key");
    assert!(ws.closed_within(Duration::from_secs(3)).await);

    // A secret key is not a public key.
    let mut ws = Ws::connect_from(
        &format!("ws://{}/ws/visitor", server.addr),
        Some(common::PAGE_ORIGIN),
    )
    .await;
    ws.send(json!({"type": "hello", "protocol_version": 1, "api_key": "sk_demo", "short_id": null, "connection": {}})).await;
    assert_eq!(ws.expect("error").await["code"], "invalid_api_key");

    let mut ws = Ws::connect(&format!("ws://{}/ws/agent", server.addr)).await;
    ws.send(json!({"type": "hello", "protocol_version": 1, "secret_key": "pk_demo", "name": "Eve", "external_id": "eve"})).await;
    assert_eq!(ws.expect("error").await["code"], "invalid_secret_key");
    assert!(ws.closed_within(Duration::from_secs(3)).await);

    let mut ws = Ws::connect(&format!("ws://{}/ws/agent", server.addr)).await;
    ws.send(json!({"type": "heartbeat"})).await;
    assert_eq!(ws.expect("error").await["code"], "hello_required");

    let mut ws = Ws::connect_from(
        &format!("ws://{}/ws/visitor", server.addr),
        Some(common::PAGE_ORIGIN),
    )
    .await;
    ws.send(
        json!({"type": "hello", "protocol_version": 9, "api_key": "pk_demo", "connection": {}}),
    )
    .await;
    assert_eq!(
        ws.expect("error").await["code"],
        "unsupported_protocol_version"
    );

    // A config the SDK would reject is refused here too.
    let mut ws = Ws::connect_from(
        &format!("ws://{}/ws/visitor", server.addr),
        Some(common::PAGE_ORIGIN),
    )
    .await;
    ws.send(json!({"type": "hello", "protocol_version": 1, "api_key": "pk_demo", "connection": {}, "config": {"allowEverything": true}})).await;
    assert_eq!(ws.expect("error").await["code"], "config_unknown_key");
}

#[tokio::test]
async fn rest_auth_and_errors_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (status, body) = server.rest("pk_demo").get("/api/v1/visitors").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, body) = server.rest("sk_wrong").get("/api/v1/visitors").await;
    assert_eq!(status, 401);
    assert!(body["error"]["message"].is_string());
    let resp = reqwest::get(server.url("/api/v1/visitors")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let rest = server.rest("sk_demo");
    let (status, body) = rest.get("/api/v1/sessions/s_nope").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let (status, _) = rest.get("/api/v1/visitors/nobody").await;
    assert_eq!(status, 404);
    let (status, _) = rest.get("/api/v2/whatever").await;
    assert_eq!(status, 404);
    let (status, body) = rest
        .post("/api/v1/visitors/nobody/session_requests", "{not json")
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("bad_json"))
    );
    let (status, _) = rest
        .post(
            "/api/v1/visitors/nobody/session_requests",
            r#"{"agent": {"name": 5}}"#,
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = rest
        .post(
            "/api/v1/visitors/nobody/session_requests",
            r#"{"agent": {"name": "Bot"}}"#,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = rest
        .post("/api/v1/sessions/s_nope/notes", r#"{"text": 1}"#)
        .await;
    assert_eq!(status, 400);
    let (status, _) = rest.get("/api/v1/visitors?online=maybe").await;
    assert_eq!(status, 400);
    let health: Value = reqwest::get(server.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "covisit_online_visitors",
        "covisit_live_sessions",
        "covisit_messages_relayed_total",
        "covisit_errors_total",
    ] {
        assert!(
            metrics.contains(&format!("\n{name} ")),
            "{name} missing from {metrics}"
        );
    }
}

/// Requests axum refuses before a handler runs still get typed JSON errors: a body over
/// its 2 MB limit, a path segment that is not UTF-8, a method the route does not take.
#[tokio::test]
async fn requests_refused_before_a_handler_get_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = reqwest::Client::new();
    let big = "[".repeat(2_100_000);
    for (method, path, body, status, code) in [
        (
            "POST",
            "/api/v1/analytics/conversations/details/query",
            big.as_str(),
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/journey/beacon",
            big.as_str(),
            413,
            "payload_too_large",
        ),
        (
            "GET",
            "/api/v1/journey/sessions/%FF",
            "",
            400,
            "invalid_argument",
        ),
        (
            "GET",
            "/api/v1/analytics/conversations/%FF%FE/details",
            "",
            400,
            "invalid_argument",
        ),
        ("GET", "/api/v1/visitors/%C3", "", 400, "invalid_argument"),
        (
            "PUT",
            "/api/v1/journey/sessions",
            "",
            405,
            "method_not_allowed",
        ),
    ] {
        let r = client
            .request(method.parse().unwrap(), server.url(path))
            .bearer_auth("sk_demo")
            .header("content-type", "text/plain")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(v["error"]["code"], code, "{method} {path}: {v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
}

#[tokio::test]
async fn accounts_never_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("covisit.db");
    // Create the second account before the server runs (same database file).
    let server = Server::start(dir.path());
    let (_pk, sk) = create_keys(&db, "other");
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let short_id = visitor.short_id();
    let mut other = server.agent(&sk, "Mallory").await;
    let list = other.expect("visitors").await;
    assert_eq!(list["visitors"], json!([]));
    other
        .send(json!({"type": "request_session", "short_id": short_id, "found_by": "search"}))
        .await;
    assert_eq!(other.expect("error").await["code"], "visitor_offline");
    let rest = server.rest(&sk);
    assert_eq!(
        rest.get(&format!("/api/v1/visitors/{short_id}")).await.0,
        404
    );
    assert_eq!(rest.get("/api/v1/visitors").await.1["visitors"], json!([]));
    // The owner's session is invisible to the other account, and its traffic too.
    let mut owner = server.agent("sk_demo", "Grace").await;
    owner
        .send(json!({"type": "request_session", "short_id": short_id, "found_by": "search"}))
        .await;
    let update = owner.expect("session_update").await;
    let session_id = update["session"]["id"].as_str().unwrap().to_string();
    visitor.expect("session_request").await;
    assert_eq!(
        rest.get(&format!("/api/v1/sessions/{session_id}")).await.0,
        404
    );
    other
        .send(json!({"type": "join_session", "session_id": session_id}))
        .await;
    assert_eq!(other.expect("error").await["code"], "unknown_session");
    other
        .send(json!({"type": "end_session", "session_id": session_id}))
        .await;
    assert_eq!(other.expect("error").await["code"], "unknown_session");
    for frame in other.frames_until_ack().await {
        assert_ne!(frame["type"], "session_update", "leaked: {frame}");
        assert_ne!(frame["type"], "visitor_update", "leaked: {frame}");
        assert_ne!(frame["type"], "visitor_updates", "leaked: {frame}");
    }
}

/// Malformed, unknown, oversized and wrong-state frames get error frames; the socket
/// and the session survive all of them.
#[tokio::test]
async fn bad_frames_get_error_frames_and_the_socket_survives() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    visitor.send_text("{not json".into()).await;
    assert_eq!(visitor.expect("error").await["code"], "malformed_frame");
    visitor.send(json!({"type": "teleport"})).await;
    assert_eq!(
        visitor.expect("error").await["code"],
        "unknown_message_type"
    );
    visitor
        .send(json!({"type": "url", "currentUrl": "x".repeat(70 * 1024)}))
        .await;
    assert_eq!(visitor.expect("error").await["code"], "frame_too_large");
    visitor.send(json!({"type": "authorize"})).await;
    assert_eq!(visitor.expect("error").await["code"], "wrong_session_state");
    visitor
        .send(json!({"type": "rate", "session_id": "s_nope", "rating": 9, "feedback": null}))
        .await;
    assert_eq!(visitor.expect("error").await["code"], "invalid_argument");
    visitor
        .send(json!({"type": "update_visitor", "identity": {"bogus": 1}}))
        .await;
    assert_eq!(visitor.expect("error").await["code"], "config_unknown_key");
    visitor.send(json!({"type": "heartbeat"})).await;
    visitor.expect("heartbeat_ack").await;

    // The same during a live session, from both sides.
    let mut agent = server.agent("sk_demo", "Grace").await;
    agent.send(json!({"type": "request_session", "short_id": visitor.short_id(), "found_by": "search"})).await;
    let session_id = agent.expect("session_update").await["session"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    visitor.expect("session_request").await;
    visitor.send(json!({"type": "authorize"})).await;
    agent.expect_status(&session_id, "active").await;
    agent.send_text("[1,2".into()).await;
    assert_eq!(agent.expect("error").await["code"], "malformed_frame");
    agent.send(json!({"type": "request_session", "short_id": visitor.short_id(), "found_by": "search"})).await;
    assert_eq!(agent.expect("error").await["code"], "wrong_session_state");
    visitor.send(json!({"type": "control_grant"})).await;
    assert_eq!(visitor.expect("error").await["code"], "wrong_control_state");
    visitor.send_text("\u{0}".into()).await;
    assert_eq!(visitor.expect("error").await["code"], "malformed_frame");
    agent.send(json!({"type": "heartbeat"})).await;
    agent.expect("heartbeat_ack").await;
    visitor.send(json!({"type": "end"})).await;
    assert_eq!(
        visitor.expect("session_end").await["disconnectType"],
        "client"
    );
    visitor
        .send(json!({"type": "rate", "session_id": session_id, "rating": 5, "feedback": "great"}))
        .await;
    let (_, session) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/sessions/{session_id}"))
        .await;
    assert_eq!(session["visitor_agent_rating"], 5.0);
    assert_eq!(session["quality_feedback"][0]["feedback"], "great");
    // Rating again replaces the visitor's rating: a page cannot grow the Session.
    for n in 0..50 {
        visitor
            .send(json!({"type": "rate", "session_id": session_id, "rating": 1 + n % 5, "feedback": "x".repeat(1000)}))
            .await;
    }
    visitor
        .send(json!({"type": "rate", "session_id": session_id, "rating": 2, "feedback": "on second thought"}))
        .await;
    visitor.frames_until_ack().await;
    let (_, session) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/sessions/{session_id}"))
        .await;
    let feedback = session["quality_feedback"].as_array().unwrap();
    assert_eq!(feedback.len(), 1, "{feedback:?}");
    assert_eq!(feedback[0]["feedback"], "on second thought");
    assert_eq!(session["visitor_agent_rating"], 2.0);
}

#[tokio::test]
async fn lookup_code_searches_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("COVISIT_LOOKUP_RATE_PER_MINUTE", "3")]);
    let rest = server.rest("sk_demo");
    for _ in 0..3 {
        assert_eq!(rest.get("/api/v1/visitors?q=1234").await.0, 200);
    }
    let (status, body) = rest.get("/api/v1/visitors?q=1234").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (429, json!("rate_limited"))
    );
    // Other searches are not lookup-code searches.
    assert_eq!(rest.get("/api/v1/visitors?q=ada").await.0, 200);
    // The console's socket search shares the account's budget: guessing codes there is
    // no cheaper, and a name search still answers.
    let mut agent = server.agent("sk_demo", "Ada").await;
    agent.send(json!({"type": "search", "q": "5678"})).await;
    let refused = agent.expect("error").await;
    assert_eq!(refused["code"], "rate_limited");
    agent.send(json!({"type": "search", "q": "ada"})).await;
    let answer = agent.expect("search_result").await;
    assert_eq!(answer["q"], "ada");
}

/// kill -9 mid-run, restart on the same database: nothing stored is lost, and the
/// session that was live at the crash is closed, not left dangling.
#[tokio::test]
async fn data_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let mut visitor = server
        .visitor(
            None,
            None,
            true,
            json!({"uniqueId": "cust-1", "tags": ["vip"]}),
        )
        .await;
    let short_id = visitor.short_id();
    let ids = visitor.ids();
    let mut agent = server.agent("sk_demo", "Grace").await;
    agent
        .send(json!({"type": "request_session", "short_id": short_id, "found_by": "search"}))
        .await;
    let first = agent.expect("session_update").await["session"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    visitor.expect("session_request").await;
    visitor.send(json!({"type": "authorize"})).await;
    agent.expect_status(&first, "active").await;
    agent
        .send(json!({"type": "note", "session_id": first, "text": "before the crash"}))
        .await;
    agent
        .expect_where("session_update", |v| {
            v["session"]["agent_notes"]
                .as_array()
                .is_some_and(|n| !n.is_empty())
        })
        .await;
    visitor.send(json!({"type": "end"})).await;
    agent.expect_status(&first, "ended").await;
    agent
        .send(json!({"type": "request_session", "short_id": short_id, "found_by": "search"}))
        .await;
    let second = agent
        .expect_where("session_update", |v| v["session"]["id"] != first.as_str())
        .await["session"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    visitor.expect("session_request").await;
    visitor.send(json!({"type": "authorize"})).await;
    agent.expect_status(&second, "active").await;
    // A note acknowledged by REST, then one whose session_update reached the agent:
    // kill -9 the moment the push arrives, with nothing in between.
    let (status, reply) = server
        .rest("sk_demo")
        .post(
            &format!("/api/v1/sessions/{second}/notes"),
            r#"{"text": "by rest"}"#,
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    agent
        .send(json!({"type": "note", "session_id": second, "text": "last words"}))
        .await;
    agent
        .expect_where("session_update", |v| {
            v["session"]["agent_notes"]
                .as_array()
                .is_some_and(|n| n.len() == 2)
        })
        .await;
    server.kill();

    let server = server.restart();
    let rest = server.rest("sk_demo");
    let (status, s1) = rest.get(&format!("/api/v1/sessions/{first}")).await;
    assert_eq!(status, 200, "{s1}");
    assert_seed_fields("Session", &s1);
    assert_eq!(s1["agent_notes"][0]["text"], "before the crash");
    assert_eq!(s1["went_live"], true);
    assert_eq!(s1["visitor_unique_id"], "cust-1");
    let (_, s2) = rest.get(&format!("/api/v1/sessions/{second}")).await;
    assert_eq!(s2["status"], "ended");
    assert!(s2["ended_at"].is_string());
    assert_eq!(s2["went_live"], true, "{s2}");
    assert_eq!(s2["session_authorized"], true, "{s2}");
    assert_eq!(s2["agent_notes"][0]["text"], "by rest", "{s2}");
    assert_eq!(s2["agent_notes"][1]["text"], "last words", "{s2}");
    // Closed coherently by the restart: its length runs to ended_at, and every
    // communication was disconnected by the server at that time.
    let started = s2["started_at"].as_str().unwrap();
    let ended = s2["ended_at"].as_str().unwrap();
    let secs = |t: &str| covisit::core::Millis::parse_iso8601(t).unwrap().0 / 1000;
    let length = s2["length_seconds"].as_u64().unwrap();
    assert!(length.abs_diff(secs(ended) - secs(started)) <= 1, "{s2}");
    assert_eq!(
        s2["formatted_length"],
        covisit::core::derive::formatted_length(length),
        "{s2}"
    );
    let (_, comms2) = rest
        .get(&format!("/api/v1/sessions/{second}/communications"))
        .await;
    let comms2 = comms2.as_array().unwrap();
    assert_eq!(comms2.len(), 2, "{comms2:?}");
    for c in comms2 {
        assert_seed_fields("Cobrowsesession", c);
        assert_eq!(c["state"], "disconnected", "{c}");
        assert_eq!(c["disconnectType"], "system", "{c}");
        assert_eq!(c["disconnectedTime"], ended, "{c}");
        assert_eq!(c["controlling"], json!([]), "{c}");
        for seg in c["segments"].as_array().unwrap() {
            assert!(seg["endTime"].is_string(), "{c}");
        }
    }
    let (_, comms) = rest
        .get(&format!("/api/v1/sessions/{first}/communications"))
        .await;
    assert_eq!(comms.as_array().unwrap().len(), 2);
    let (status, v) = rest.get(&format!("/api/v1/visitors/{short_id}")).await;
    assert_eq!(status, 200);
    assert_seed_fields("Visitor", &v);
    assert_eq!(v["is_online"], false);
    assert_eq!(v["tags"], json!(["vip"]));
    let (_, found) = rest.get("/api/v1/visitors?q=cust-1").await;
    assert_eq!(found["visitors"][0]["short_id"], short_id.as_str());
    let (_, list) = rest
        .get(&format!("/api/v1/sessions?visitor_id={short_id}"))
        .await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2);
    // The visitor comes back with its stored id.
    let back = server.returning(&ids, None, true).await;
    assert_eq!(back.short_id(), short_id);
}

/// Every REST write answered with success is on disk when the answer arrives: kill -9
/// right after each answer, restart, and the change is there.
#[tokio::test]
async fn acknowledged_rest_writes_survive_an_immediate_kill() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let visitor = server
        .visitor(None, None, true, json!({"uniqueId": "cust-9"}))
        .await;
    let short_id = visitor.short_id();
    let agent_body = r#"{"agent": {"name": "Ada", "external_id": "ada-1"}}"#;

    // session_requests 201, then kill.
    let (status, created) = server
        .rest("sk_demo")
        .post(
            &format!("/api/v1/visitors/{short_id}/session_requests"),
            agent_body,
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let first = created["session_id"].as_str().unwrap().to_string();
    let server = server.restart();
    let rest = server.rest("sk_demo");
    let (status, s) = rest.get(&format!("/api/v1/sessions/{first}")).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["source"], "api");
    assert_eq!(s["agents"][0]["name"], "Ada", "{s}");

    // end 200, then kill.
    let ids = visitor.ids();
    let visitor = server.returning(&ids, None, true).await;
    let (status, created) = rest
        .post(
            &format!("/api/v1/visitors/{short_id}/session_requests"),
            agent_body,
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let second = created["session_id"].as_str().unwrap().to_string();
    let (status, ended) = rest
        .post(&format!("/api/v1/sessions/{second}/end"), "{}")
        .await;
    assert_eq!(
        (status, &ended["status"]),
        (200, &json!("ended")),
        "{ended}"
    );
    let server = server.restart();
    let rest = server.rest("sk_demo");
    let (_, s) = rest.get(&format!("/api/v1/sessions/{second}")).await;
    assert_eq!(s["status"], "ended", "{s}");
    assert_eq!(s["ended_at"], ended["ended_at"], "{s}");

    // A note on the ended (stored-only) session: 201, then kill.
    let (status, reply) = rest
        .post(
            &format!("/api/v1/sessions/{second}/notes"),
            r#"{"text": "follow up"}"#,
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    let server = server.restart();
    let rest = server.rest("sk_demo");
    let (_, s) = rest.get(&format!("/api/v1/sessions/{second}")).await;
    assert_eq!(s["agent_notes"][0]["text"], "follow up", "{s}");

    // Erasure 200, then kill: the visitor is gone and its sessions are scrubbed.
    let _visitor = server.returning(&ids, None, true).await;
    drop(visitor);
    let (status, reply) = rest
        .call("DELETE", &format!("/api/v1/visitors/{short_id}"), None)
        .await;
    assert_eq!(status, 200, "{reply}");
    let server = server.restart();
    let rest = server.rest("sk_demo");
    assert_eq!(
        rest.get(&format!("/api/v1/visitors/{short_id}")).await.0,
        404
    );
    let (_, s) = rest.get(&format!("/api/v1/sessions/{first}")).await;
    assert_eq!(s["visitor_unique_id"], Value::Null, "{s}");
}

#[tokio::test]
async fn serves_the_demo_site_console_and_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(www.join("agent")).unwrap();
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(www.join("index.html"), "demo site").unwrap();
    std::fs::write(www.join("agent/index.html"), "agent console").unwrap();
    std::fs::write(dist.join("covisit.js"), "sdk").unwrap();
    let (www, dist) = (www.display().to_string(), dist.display().to_string());
    let server = Server::start_with(
        dir.path(),
        &[("COVISIT_WWW", &www), ("COVISIT_SDK_DIR", &dist)],
    );
    let get = |path: &str| {
        let url = server.url(path);
        async move {
            let resp = reqwest::get(url).await.unwrap();
            let cors = resp
                .headers()
                .get("access-control-allow-origin")
                .map(|h| h.to_str().unwrap().to_string());
            (resp.status().as_u16(), cors, resp.text().await.unwrap())
        }
    };
    assert_eq!(get("/").await.2, "demo site");
    assert_eq!(get("/agent/").await.2, "agent console");
    let (status, cors, body) = get("/sdk/covisit.js").await;
    assert_eq!(
        (status, cors.as_deref(), body.as_str()),
        (200, Some("*"), "sdk")
    );
    assert_eq!(get("/sdk/nope.js").await.0, 404);
}

/// Garbage of every shape on every endpoint: answered, never a crash.
#[tokio::test]
async fn garbage_never_kills_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let mut agent = server.agent("sk_demo", "Grace").await;
    let samples = [
        "",
        "null",
        "[]",
        "{}",
        "1e999",
        "\"x\"",
        r#"{"type":null}"#,
        r#"{"type":"focus"}"#,
        r#"{"type":"focus","hasFocus":"yes"}"#,
        r#"{"type":"url","currentUrl":7}"#,
        r#"{"type":"expect_disconnect","returnTimeSeconds":-1}"#,
        r#"{"type":"expect_disconnect","returnTimeSeconds":99999999999,"message":null,"title":null}"#,
        r#"{"type":"rate","session_id":"","rating":300}"#,
        r#"{"type":"update_visitor","identity":[]}"#,
        r#"{"type":"update_visitor","identity":{"tags":[1,2]}}"#,
        r#"{"type":"hello","protocol_version":1}"#,
        r#"{"type":"request_session","short_id":"","found_by":"magic"}"#,
        r#"{"type":"note","session_id":"x","text":""}"#,
        r#"{"type":"join_session","session_id":"../../etc"}"#,
        "\u{feff}{}",
        "{\"type\":\"end\"",
    ];
    for sample in samples {
        visitor.send_text(sample.to_string()).await;
        assert_eq!(
            visitor.expect("error").await["type"],
            "error",
            "visitor: {sample}"
        );
        agent.send_text(sample.to_string()).await;
        assert_eq!(
            agent.expect("error").await["type"],
            "error",
            "agent: {sample}"
        );
    }
    visitor.send(json!({"type": "heartbeat"})).await;
    visitor.expect("heartbeat_ack").await;
    agent.send(json!({"type": "heartbeat"})).await;
    agent.expect("heartbeat_ack").await;
    let rest = server.rest("sk_demo");
    for path in [
        "/api/v1/visitors/%00",
        "/api/v1/sessions/%ff%fe",
        "/api/v1/visitors?q=%00",
        "/api/v1/sessions?visitor_id=",
    ] {
        let (status, _) = rest.get(path).await;
        assert!(status < 500, "{path} gave {status}");
    }
    for body in [
        "",
        "null",
        "[]",
        r#"{"agent":null}"#,
        r#"{"agent":{"name":""}}"#,
        "\u{0}",
    ] {
        let (status, reply) = rest
            .post(
                &format!("/api/v1/visitors/{}/session_requests", visitor.short_id()),
                body,
            )
            .await;
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(reply["error"]["code"].is_string());
    }
    assert_eq!(
        reqwest::get(server.url("/healthz"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

/// SIGTERM with sockets open: the server exits promptly and keeps what it stored.
#[tokio::test]
async fn sigterm_exits_with_sockets_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let visitor = server
        .visitor(None, None, true, json!({"tags": ["t1"]}))
        .await;
    let _agent = server.agent("sk_demo", "Grace").await;
    assert!(
        server.terminate(Duration::from_secs(10)),
        "the server did not exit on SIGTERM"
    );
    let server = server.restart();
    let (status, v) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/visitors/{}", visitor.short_id()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["tags"], json!(["t1"]));
}

/// A page URL's `user:password@` is a secret: the Visitor's `last_url` and the
/// Connection's `currentUrl` never keep it, from the hello or from a `url` frame.
#[tokio::test]
async fn credentials_in_page_urls_are_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut ws = Ws::connect_from(
        &format!("ws://{}/ws/visitor", server.addr),
        Some(common::PAGE_ORIGIN),
    )
    .await;
    ws.send(json!({
        "type": "hello", "protocol_version": 1, "api_key": "pk_demo", "short_id": null,
        "connection": {"currentUrl": "https://ann:hunter2@shop.test/cart?x=1", "screenWidth": 1280,
            "screenHeight": 800, "audioSupported": false, "hasFocus": true},
        "config": {},
    }))
    .await;
    ws.welcome = ws.expect("welcome").await;
    let short_id = ws.short_id();
    let rest = server.rest("sk_demo");
    let (status, v) = rest.get(&format!("/api/v1/visitors/{short_id}")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["last_url"], "https://shop.test/cart?x=1");
    ws.send(json!({"type": "url", "currentUrl": "https://ann:hunter2@shop.test/pay#now"}))
        .await;
    ws.send(json!({"type": "heartbeat"})).await;
    ws.expect("heartbeat_ack").await;
    let (_, v) = rest.get(&format!("/api/v1/visitors/{short_id}")).await;
    assert_eq!(v["last_url"], "https://shop.test/pay#now");
    assert!(!v.to_string().contains("hunter2"), "{v}");
}

/// A page's address is where a visitor is: `currentUrl` in a hello or a `url` frame
/// must be an http(s) URL. `javascript:`, `data:` and the like are refused with
/// `invalid_argument` and never become the Visitor's `last_url`.
#[tokio::test]
async fn a_pages_address_is_an_http_url() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let url = format!("ws://{}/ws/visitor", server.addr);
    for bad in [
        "javascript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "not a url",
    ] {
        let mut ws = Ws::connect_from(&url, Some(common::PAGE_ORIGIN)).await;
        ws.send(
            json!({"type": "hello", "protocol_version": 1, "api_key": "pk_demo", "short_id": null,
            "connection": {"hasFocus": true, "currentUrl": bad}, "config": {}}),
        )
        .await;
        let e = ws.expect("error").await;
        assert_eq!(e["code"], "invalid_argument", "{bad}: {e}");
    }
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let short_id = visitor.short_id();
    for bad in ["javascript:alert(1)", "data:text/html,x", "vbscript:x"] {
        visitor
            .send(json!({"type": "url", "currentUrl": bad}))
            .await;
        let e = visitor.expect("error").await;
        assert_eq!(e["code"], "invalid_argument", "{bad}: {e}");
    }
    visitor
        .send(json!({"type": "url", "currentUrl": "https://shop.example/cart"}))
        .await;
    visitor.frames_until_ack().await;
    let (status, v) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/visitors/{short_id}"))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["last_url"], "https://shop.example/cart");
}

/// Every machine-facing route answers a client error as typed JSON with a stable
/// `code`: `/api/` itself, a method a route does not take, a socket path without the
/// upgrade, `/healthz` and `/metrics` (axum answers these before any handler runs).
#[tokio::test]
async fn machine_routes_answer_errors_as_typed_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = reqwest::Client::new();
    for (method, path, status, code) in [
        ("GET", "/api/", 404, "not_found"),
        ("GET", "/api/v2/nothing", 404, "not_found"),
        ("POST", "/healthz", 405, "method_not_allowed"),
        ("DELETE", "/metrics", 405, "method_not_allowed"),
        ("POST", "/api/v1/visitors", 405, "method_not_allowed"),
        ("GET", "/ws/visitor", 400, "invalid_argument"),
        ("GET", "/ws/agent", 400, "invalid_argument"),
    ] {
        let resp = client
            .request(method.parse().unwrap(), server.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
        assert!(
            body["error"]["message"].is_string(),
            "{method} {path}: {body}"
        );
    }
}

/// A text frame that is not UTF-8 breaks the WebSocket protocol: the library refuses it
/// before any frame reaches the hub, so the socket cannot be answered with an error
/// frame; it gets the close that says why (1007), not a silent drop. Visitor and agent
/// sockets alike; the server goes on serving others.
#[tokio::test]
async fn a_text_frame_that_is_not_utf8_gets_close_1007() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    visitor
        .send_raw_text(b"{\"type\":\"url\",\"currentUrl\":\"http://127.0.0.1/\xc3\x28\"}")
        .await;
    assert_eq!(
        visitor.close_code_within(Duration::from_secs(5)).await,
        Some(1007)
    );
    let mut agent = server.agent("sk_demo", "Utf").await;
    agent
        .send_raw_text(b"{\"type\":\"note\",\"session_id\":\"s\",\"text\":\"\xff\"}")
        .await;
    assert_eq!(
        agent.close_code_within(Duration::from_secs(5)).await,
        Some(1007)
    );
    let mut other = server.visitor(None, None, true, json!({})).await;
    other.frames_until_ack().await;
}

/// The console socket's search takes what REST's does: a `q` over 256 bytes is refused
/// (`invalid_argument`), not searched and echoed back.
#[tokio::test]
async fn a_socket_search_is_bounded_like_rests() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut agent = server.agent("sk_demo", "Seeker").await;
    agent
        .send(json!({"type": "search", "q": "x".repeat(60 * 1024)}))
        .await;
    assert_eq!(agent.expect("error").await["code"], "invalid_argument");
    let (status, body) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/visitors?q={}", "x".repeat(257)))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("invalid_argument"))
    );
    agent
        .send(json!({"type": "search", "q": "x".repeat(256)}))
        .await;
    assert_eq!(agent.expect("search_result").await["visitors"], json!([]));
}
