//! The real server binary on PostgreSQL (`--database postgres://…`, with the Redis bus
//! it needs): a session's whole path through the store, a crash and the recovery after
//! it (by the node that takes the dead one's slots), and the start-up errors when the
//! database cannot be reached or one of the two is missing. The store's own behaviour on PostgreSQL is the
//! conformance suite's (`src/store_suite.rs`).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pg::PgServer;
use common::redis::RedisServer;
use common::{Server, BIN};
use serde_json::json;

#[tokio::test]
async fn a_session_is_stored_in_postgres_and_ended_by_the_recovery_after_a_crash() {
    let pg = PgServer::start();
    let redis = RedisServer::start();
    let mut server = Server::start_on(&pg.url(), &[], &["--bus", &redis.url()]);
    let mut visitor = server
        .visitor(None, None, true, json!({"identities": ["Ada Lovelace"]}))
        .await;
    let short_id = visitor.short_id();
    let mut agent = server.agent("sk_demo", "Grace").await;
    let session_id = agent.request_session(&short_id, "search").await;
    visitor.expect("session_request").await;
    visitor.send(json!({"type": "authorize"})).await;
    visitor.expect("session_start").await;
    agent.expect_status(&session_id, "active").await;

    let rest = server.rest("sk_demo");
    let (status, session) = rest.get(&format!("/api/v1/sessions/{session_id}")).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["visitor_id"], short_id.as_str());
    assert_eq!(session["session_authorized"], true);
    assert_eq!(session["went_live"], true);
    assert_eq!(session["ended_at"], serde_json::Value::Null);
    assert_eq!(session["agents"][0]["name"], "Grace");
    let (status, v) = rest.get(&format!("/api/v1/visitors/{short_id}")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["is_in_session"].as_bool()),
        (Some("Ada Lovelace"), Some(true))
    );

    // The rows are PostgreSQL's.
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    let status_of = |id: String| {
        let client = &client;
        async move {
            client
                .query_one("SELECT status FROM sessions WHERE id = $1", &[&id])
                .await
                .expect("the session's row")
                .get::<_, String>(0)
        }
    };
    assert_eq!(status_of(session_id.clone()).await, "active");

    // kill -9: the node that starts next takes the dead one's slots once it is declared
    // dead, and ends what was live there (a transport failure), in PostgreSQL too.
    server.kill();
    let server = server.restart();
    let rest = server.rest("sk_demo");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, session) = rest.get(&format!("/api/v1/sessions/{session_id}")).await;
        assert_eq!(status, 200, "{session}");
        if session["ended_at"].is_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session was not ended: {session}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, comms) = rest
        .get(&format!("/api/v1/sessions/{session_id}/communications"))
        .await;
    assert_eq!(status, 200, "{comms}");
    let comms = comms.as_array().expect("a list");
    assert_eq!(comms.len(), 2);
    for c in comms {
        assert_eq!(
            (c["state"].as_str(), c["disconnectType"].as_str()),
            (Some("disconnected"), Some("transport.failure"))
        );
    }
    assert_eq!(status_of(session_id).await, "ended");
}

#[test]
fn an_unreachable_postgres_stops_the_start_up_with_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--bus",
            "redis://127.0.0.1:1",
            "--database",
        ])
        .arg(format!(
            "postgres://covisit:hunter2@127.0.0.1:{port}/covisit"
        ))
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server kept running without its database");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::io::read_to_string(child.stderr.take().expect("piped")).expect("stderr");
    assert!(!status.success());
    assert!(
        stderr.contains(&format!(
            "cannot open the PostgreSQL database postgres://covisit:***@127.0.0.1:{port}/covisit"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("error connecting to server"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// Runs the binary with `args` until it exits (at most 20 s); its status and stderr.
fn start_up_fails(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server binary starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut child = out;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(!status.success());
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server started with {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::io::read_to_string(child.stderr.take().expect("piped")).expect("stderr")
}

#[test]
fn postgres_without_the_bus_or_the_bus_without_postgres_stops_the_start_up() {
    let stderr = start_up_fails(&["--database", "postgres://covisit@127.0.0.1:1/covisit"]);
    assert!(stderr.contains("--bus redis://"), "{stderr}");
    let stderr = start_up_fails(&["--bus", "redis://127.0.0.1:1"]);
    assert!(stderr.contains("PostgreSQL --database"), "{stderr}");
}
