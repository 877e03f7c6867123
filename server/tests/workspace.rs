//! Issue 16 against the real server binary: agents' laser and ink (`draw`) reach the
//! visitor's tab and the session's other agents only while the session is active, only
//! for an open tab of the visitor whose page allows drawing, each agent in its own
//! colour; `features_used` gains `laser` and `drawing`; `set_active_connection` records
//! the tab an agent watches, lists the visitor's tabs, and asks that tab for a snapshot.

mod common;

use std::time::Duration;

use common::{Server, Ws};
use serde_json::{json, Value};

const QUIET: Duration = Duration::from_millis(400);

/// True when no frame of `kind` arrives within `wait` (others are skipped).
async fn none_of(ws: &mut Ws, kind: &str, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return true;
        }
        match ws.next(left).await {
            Some(v) if v["type"] == kind => return false,
            Some(_) => continue,
            None => return true,
        }
    }
}

fn stroke(session_id: &str, tab: &str, points: Value) -> Value {
    json!({"type": "draw", "session_id": session_id, "tab": tab, "ink": {
        "kind": "stroke", "id": 1, "node": 4, "ox": 10, "oy": 20, "shape": "free",
        "pinned": false, "done": true, "points": points}})
}

fn features(update: &Value) -> Vec<String> {
    update["session"]["features_used"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn inks_reach_the_tab_and_the_other_agents_in_each_agents_colour() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let tab = visitor.connection_id();
    let mut grace = server.agent("sk_demo", "Grace").await;
    let mut ola = server.agent("sk_demo", "Ola <b>x</b>").await;
    let mut outsider = server.agent("sk_demo", "Nobody").await;
    let session_id = grace.request_session(&visitor.short_id(), "search").await;
    visitor.expect("session_request").await;

    // Not live yet: refused, nothing reaches the page.
    grace.send(stroke(&session_id, &tab, json!([[0, 0]]))).await;
    assert_eq!(grace.expect("error").await["code"], "wrong_session_state");
    visitor.send(json!({"type": "authorize"})).await;
    grace.expect_status(&session_id, "active").await;
    ola.send(json!({"type": "join_session", "session_id": session_id}))
        .await;
    ola.expect_status(&session_id, "active").await;

    grace
        .send(stroke(&session_id, &tab, json!([[0, 0], [5, -3]])))
        .await;
    let shown = visitor.expect("draw").await;
    assert_eq!(shown["name"], "Grace");
    assert_eq!(shown["color"], 0);
    assert_eq!(shown["ink"]["points"], json!([[0, 0], [5, -3]]));
    assert_eq!(shown["ink"]["node"], 4);
    // The other agent of the session sees it too, with the tab it is on; the sender
    // does not get its own back, and an agent outside the session nothing.
    let relayed = ola.expect("draw").await;
    assert_eq!(relayed["tab"], tab.as_str());
    assert_eq!(relayed["session_id"], session_id.as_str());
    assert_eq!(relayed["agent_id"], shown["agent_id"]);
    assert!(none_of(&mut grace, "draw", QUIET).await);
    assert!(none_of(&mut outsider, "draw", Duration::from_millis(50)).await);

    // The second agent's ink: the next colour, its name as it is (text for the page).
    ola.send(json!({"type": "draw", "session_id": session_id, "tab": tab,
        "ink": {"kind": "laser", "node": 0, "ox": 0, "oy": 0, "x": 40, "y": 50}}))
        .await;
    let laser = visitor.expect("draw").await;
    assert_eq!(laser["color"], 1);
    assert_eq!(laser["name"], "Ola <b>x</b>");
    assert_eq!(laser["ink"]["kind"], "laser");

    // Both kinds were used.
    let update = grace
        .expect_where("session_update", |v| {
            let f = features(v);
            f.contains(&"laser".to_string()) && f.contains(&"drawing".to_string())
        })
        .await;
    assert_eq!(update["session"]["id"], session_id.as_str());

    // Out of bounds, not the visitor's tab, not in the session: typed errors.
    let many: Vec<Value> = (0..257).map(|i| json!([i, 0])).collect();
    grace.send(stroke(&session_id, &tab, json!(many))).await;
    assert_eq!(grace.expect("error").await["code"], "invalid_argument");
    grace
        .send(stroke(&session_id, &tab, json!([[2_000_000, 0]])))
        .await;
    assert_eq!(grace.expect("error").await["code"], "invalid_argument");
    grace
        .send(stroke(&session_id, "c_not_a_tab", json!([[0, 0]])))
        .await;
    assert_eq!(grace.expect("error").await["code"], "unknown_connection");
    grace
        .send(json!({"type": "draw", "session_id": session_id, "tab": tab, "ink": {"kind": "stroke", "id": 1}}))
        .await;
    assert_eq!(grace.expect("error").await["code"], "malformed_frame");
    outsider
        .send(stroke(&session_id, &tab, json!([[0, 0]])))
        .await;
    assert_eq!(outsider.expect("error").await["code"], "not_in_session");
    assert!(none_of(&mut visitor, "draw", QUIET).await);

    // Clear is relayed; after the end, nothing is.
    grace
        .send(
            json!({"type": "draw", "session_id": session_id, "tab": tab, "ink": {"kind": "clear"}}),
        )
        .await;
    assert_eq!(visitor.expect("draw").await["ink"]["kind"], "clear");
    visitor.send(json!({"type": "end"})).await;
    grace.expect_status(&session_id, "ended").await;
    grace.send(stroke(&session_id, &tab, json!([[0, 0]]))).await;
    assert_eq!(grace.expect("error").await["code"], "wrong_session_state");
    assert!(none_of(&mut visitor, "draw", QUIET).await);

    let (status, session) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/sessions/{session_id}"))
        .await;
    assert_eq!(status, 200);
    let used: Vec<&str> = session["features_used"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        used.contains(&"laser") && used.contains(&"drawing"),
        "{used:?}"
    );
}

#[tokio::test]
async fn a_tab_whose_page_turned_drawing_off_gets_none() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server
        .visitor(None, None, true, json!({"allowAgentDrawing": false}))
        .await;
    let tab = visitor.connection_id();
    let mut agent = server.agent("sk_demo", "Grace").await;
    let session_id = agent.request_session(&visitor.short_id(), "search").await;
    visitor.expect("session_request").await;
    visitor.send(json!({"type": "authorize"})).await;
    agent.expect_status(&session_id, "active").await;
    agent.send(stroke(&session_id, &tab, json!([[0, 0]]))).await;
    let e = agent.expect("error").await;
    assert_eq!(e["code"], "permission_denied");
    assert!(e["message"].as_str().unwrap().contains("allowAgentDrawing"));
    assert!(none_of(&mut visitor, "draw", QUIET).await);
    // A wrong type is a config error, as for every key.
    let mut ws = Ws::connect_from(
        &server.url("/ws/visitor").replace("http", "ws"),
        Some("http://127.0.0.1"),
    )
    .await;
    ws.send(json!({"type": "hello", "protocol_version": 1, "api_key": "pk_demo", "short_id": null,
        "connection": {"currentUrl": "http://127.0.0.1/x", "hasFocus": true}, "config": {"allowAgentDrawing": "no"}}))
        .await;
    assert_eq!(ws.expect("error").await["code"], "config_wrong_type");
}

#[tokio::test]
async fn set_active_connection_records_the_watched_tab_and_lists_the_tabs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut first = server.visitor(None, None, true, json!({})).await;
    let mut agent = server.agent("sk_demo", "Grace").await;
    let mut outsider = server.agent("sk_demo", "Nobody").await;
    let session_id = agent.request_session(&first.short_id(), "search").await;
    first.expect("session_request").await;
    first.send(json!({"type": "authorize"})).await;
    agent.expect_status(&session_id, "active").await;
    let mut second = server.returning(&first.ids(), None, false).await;
    let (a, b) = (first.connection_id(), second.connection_id());

    // Both open tabs are listed (seed Connection objects) in the session's updates.
    let update = agent
        .expect_where("session_update", |v| {
            v["connections"].as_array().is_some_and(|c| c.len() == 2)
        })
        .await;
    let ids: Vec<&str> = update["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["uniqueConnectionId"].as_str())
        .collect();
    assert!(
        ids.contains(&a.as_str()) && ids.contains(&b.as_str()),
        "{ids:?}"
    );
    for c in update["connections"].as_array().unwrap() {
        common::assert_seed_fields("Connection", c);
    }
    assert_eq!(update["watching"], json!({}));

    // Watch the second tab: recorded, announced, and that tab (only) is asked for a snapshot.
    agent
        .send(json!({"type": "set_active_connection", "session_id": session_id, "uniqueConnectionId": b}))
        .await;
    let update = agent
        .expect_where("session_update", |v| {
            v["watching"].as_object().is_some_and(|w| !w.is_empty())
        })
        .await;
    let watching = update["watching"].as_object().unwrap();
    assert_eq!(watching.values().next().unwrap(), b.as_str());
    second.expect("mirror_resync").await;
    assert!(none_of(&mut first, "mirror_resync", QUIET).await);

    // Not a tab of this visitor, not in the session: typed errors; nothing changed.
    agent
        .send(json!({"type": "set_active_connection", "session_id": session_id, "uniqueConnectionId": "c_elsewhere"}))
        .await;
    assert_eq!(agent.expect("error").await["code"], "unknown_connection");
    outsider
        .send(json!({"type": "set_active_connection", "session_id": session_id, "uniqueConnectionId": a}))
        .await;
    assert_eq!(outsider.expect("error").await["code"], "not_in_session");

    // Back to following the visitor.
    agent
        .send(json!({"type": "set_active_connection", "session_id": session_id, "uniqueConnectionId": null}))
        .await;
    agent
        .expect_where("session_update", |v| v["watching"] == json!({}))
        .await;

    // A closed tab leaves the list.
    second.close().await;
    agent
        .expect_where("session_update", |v| {
            v["connections"].as_array().is_some_and(|c| c.len() == 1)
        })
        .await;
}
