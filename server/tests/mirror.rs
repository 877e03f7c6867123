//! Co-browsing relay against the real server binary: mirror frames reach the session's
//! agents only while the session is active; remote actions reach the visitor only while
//! control is granted to that agent and the visitor's config allows them; applied
//! actions are counted into the Session's `features_used` (docs/MIRROR.md).

mod common;

use common::{Server, Ws};
use serde_json::{json, Value};

/// Whether no frame of `kind` reached `ws` before its heartbeat's answer (a barrier:
/// see `Ws::frames_until_ack`).
async fn none_of(ws: &mut Ws, kind: &str) -> bool {
    ws.frames_until_ack()
        .await
        .iter()
        .all(|f| f["type"] != kind)
}

fn mirror(text: &str) -> Value {
    json!({"type": "mirror", "data": [["S", 1, "http://127.0.0.1/shop", 800, 600, 1], ["N", 1, 0, [0, "html"], [1, 0, text]]]})
}

#[tokio::test]
async fn mirror_frames_are_relayed_only_while_the_session_is_active() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let short_id = visitor.short_id();
    let mut agent = server.agent("sk_demo", "Grace").await;
    let mut other = server.agent("sk_demo", "Ola").await;

    // Before any session: dropped, no error for the page.
    visitor.send(mirror("before session")).await;
    let session_id = agent.request_session(&short_id, "search").await;
    visitor.expect("session_request").await;
    // Authorizing: still dropped.
    visitor.send(mirror("while authorizing")).await;
    assert!(
        none_of(&mut visitor, "error").await,
        "no error for the page"
    );
    assert!(none_of(&mut agent, "mirror").await);

    visitor.send(json!({"type": "authorize"})).await;
    visitor.expect("session_start").await;
    agent.expect_status(&session_id, "active").await;
    visitor.send(mirror("live text")).await;
    let m = agent.expect("mirror").await;
    assert_eq!(m["session_id"], session_id.as_str());
    assert_eq!(m["tab"], visitor.connection_id().as_str());
    assert_eq!(m["data"][1][4][2], "live text");
    // An agent of the account that is not in the session sees nothing.
    assert!(none_of(&mut other, "mirror").await);

    // Malformed data: a stable error code, the socket and the session survive.
    visitor
        .send(json!({"type": "mirror", "data": {"not": "an array"}}))
        .await;
    let e = visitor.expect("error").await;
    assert_eq!(e["code"], "invalid_mirror_frame");
    visitor
        .send(json!({"type": "mirror", "data": [[1, 2]]}))
        .await;
    assert_eq!(
        visitor.expect("error").await["code"],
        "invalid_mirror_frame"
    );

    // The agent asks for a fresh snapshot: the visitor hears of it.
    agent
        .send(json!({"type": "mirror_resync", "session_id": session_id}))
        .await;
    visitor.expect("mirror_resync").await;
    // Only agents in the session may.
    other
        .send(json!({"type": "mirror_resync", "session_id": session_id}))
        .await;
    assert_eq!(other.expect("error").await["code"], "not_in_session");

    visitor.send(json!({"type": "end"})).await;
    agent.expect_status(&session_id, "ended").await;
    visitor.send(mirror("after the end")).await;
    assert!(none_of(&mut visitor, "error").await);
    assert!(none_of(&mut agent, "mirror").await);
}

#[tokio::test]
async fn remote_actions_need_granted_control_and_permission_and_count_when_applied() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server
        .visitor(None, None, true, json!({"allowRemoteScroll": false}))
        .await;
    let short_id = visitor.short_id();
    let mut agent = server.agent("sk_demo", "Grace").await;
    let session_id = agent.request_session(&short_id, "search").await;
    visitor.expect("session_request").await;
    let click = json!({"type": "remote_action", "session_id": session_id, "action": {"kind": "click", "node": 5, "x": 1, "y": 2}});

    // Authorizing: not active.
    agent.send(click.clone()).await;
    assert_eq!(agent.expect("error").await["code"], "wrong_session_state");
    visitor.send(json!({"type": "authorize"})).await;
    agent.expect_status(&session_id, "active").await;
    // Active, but no control.
    agent.send(click.clone()).await;
    assert_eq!(agent.expect("error").await["code"], "control_not_granted");
    assert!(none_of(&mut visitor, "remote_action").await);

    agent
        .send(json!({"type": "request_control", "session_id": session_id}))
        .await;
    visitor.expect("control_request").await;
    visitor.send(json!({"type": "control_grant"})).await;
    let granted = agent
        .expect_where("session_update", |v| v["control"]["state"] == "granted")
        .await;
    assert_eq!(granted["control"]["tab"], visitor.connection_id().as_str());

    agent.send(click.clone()).await;
    let action = visitor.expect("remote_action").await;
    assert_eq!(action["action"]["kind"], "click");
    assert_eq!(action["action"]["node"], 5);
    let id = action["id"].as_u64().unwrap();

    // A permission that is off, a tab that is not the controlled one, a bad value.
    agent
        .send(json!({"type": "remote_action", "session_id": session_id, "action": {"kind": "scroll", "node": 0, "x": 0, "y": 100}}))
        .await;
    assert_eq!(agent.expect("error").await["code"], "permission_denied");
    agent
        .send(json!({"type": "remote_action", "session_id": session_id, "action": {"kind": "redirect", "url": "/x"}}))
        .await;
    assert_eq!(agent.expect("error").await["code"], "permission_denied");
    agent
        .send(json!({"type": "remote_action", "session_id": session_id, "tab": "nope", "action": {"kind": "click", "node": 1, "x": 0, "y": 0}}))
        .await;
    assert_eq!(agent.expect("error").await["code"], "wrong_tab");
    agent
        .send(json!({"type": "remote_action", "session_id": session_id, "action": {"kind": "click", "node": -1, "x": 0, "y": 0}}))
        .await;
    assert_eq!(agent.expect("error").await["code"], "malformed_frame");

    // An ack for an action never sent is refused; the real one counts.
    visitor
        .send(json!({"type": "remote_applied", "id": 999_999, "ok": true, "reason": null}))
        .await;
    assert_eq!(visitor.expect("error").await["code"], "unknown_action");
    visitor
        .send(json!({"type": "remote_applied", "id": id, "ok": true, "reason": null}))
        .await;
    let result = agent.expect("remote_result").await;
    assert_eq!(result["ok"], true);
    assert_eq!(result["kind"], "click");
    let update = agent
        .expect_where("session_update", |v| {
            v["session"]["features_used"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "remote_click"))
        })
        .await;
    assert_eq!(update["session"]["id"], session_id.as_str());

    // A refused one does not count.
    agent
        .send(json!({"type": "remote_action", "session_id": session_id, "action": {"kind": "type", "node": 9, "value": "hi"}}))
        .await;
    let typed = visitor.expect("remote_action").await;
    visitor
        .send(json!({"type": "remote_applied", "id": typed["id"], "ok": false, "reason": "masked_target"}))
        .await;
    let result = agent.expect("remote_result").await;
    assert_eq!(result["reason"], "masked_target");

    // Revoked: nothing more reaches the page.
    visitor.send(json!({"type": "control_revoke"})).await;
    agent
        .expect_where("session_update", |v| v["control"]["state"] == "none")
        .await;
    agent.send(click).await;
    assert_eq!(agent.expect("error").await["code"], "control_not_granted");
    assert!(none_of(&mut visitor, "remote_action").await);

    let rest = server.rest("sk_demo");
    let (status, session) = rest.get(&format!("/api/v1/sessions/{session_id}")).await;
    assert_eq!(status, 200);
    let features: Vec<&str> = session["features_used"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(features.contains(&"remote_click"), "{features:?}");
    assert!(!features.contains(&"remote_typing"), "{features:?}");
}
