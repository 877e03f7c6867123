//! Session lifecycles against the real server binary: visitor and agent over
//! WebSockets, REST for the records (SPEC.md sections 2 and 4).

mod common;

use std::time::Duration;

use common::{assert_seed_fields, Server};
use serde_json::{json, Value};

#[tokio::test]
async fn request_authorize_end_by_visitor_and_records_match_the_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server
        .visitor(
            None,
            None,
            true,
            json!({"identities": ["Ada Lovelace", "ada@example.com"]}),
        )
        .await;
    let short_id = visitor.short_id();
    assert_eq!(
        visitor.welcome["lookup_code"].as_str().map(str::len),
        Some(4)
    );
    let mut agent = server.agent("sk_demo", "Grace").await;
    let list = agent.expect("visitors").await;
    assert!(list["visitors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["short_id"] == short_id.as_str()));

    let session_id = agent.request_session(&short_id, "search").await;
    let prompt = visitor.expect("session_request").await;
    assert_eq!(prompt["session_id"], session_id.as_str());
    assert_eq!(prompt["agent"]["name"], "Grace");
    visitor.send(json!({"type": "authorize"})).await;
    visitor.expect("session_start").await;
    let live = agent.expect_status(&session_id, "active").await;
    let comms = live["communications"].as_array().unwrap();
    assert_eq!(comms.len(), 2);
    assert_eq!(comms[0]["cobrowseRole"], "sharer");
    assert_eq!(comms[0]["state"], "connected");
    assert_eq!(comms[1]["cobrowseRole"], "viewer");
    assert_eq!(comms[1]["peerId"], comms[0]["id"]);
    assert!(comms[1]["viewerUrl"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/agent/#/sessions/{session_id}")));

    visitor.send(json!({"type": "end"})).await;
    let end = visitor.expect("session_end").await;
    assert_eq!(end["disconnectType"], "client");
    agent.expect_status(&session_id, "ended").await;

    let rest = server.rest("sk_demo");
    let (status, session) = rest.get(&format!("/api/v1/sessions/{session_id}")).await;
    assert_eq!(status, 200, "{session}");
    assert_seed_fields("Session", &session);
    assert_eq!(session["went_live"], true);
    assert_eq!(session["session_authorized"], true);
    assert_eq!(session["source"], "search");
    assert_eq!(session["on_premise"], true);
    assert_eq!(session["start_url"], "http://127.0.0.1/shop");
    assert_eq!(session["visitor_email"], "ada@example.com");
    assert!(session["ended_at"].is_string());
    assert_eq!(session["agents"][0]["name"], "Grace");

    let (status, comms) = rest
        .get(&format!("/api/v1/sessions/{session_id}/communications"))
        .await;
    assert_eq!(status, 200);
    let comms = comms.as_array().unwrap();
    assert_eq!(comms.len(), 2);
    for c in comms {
        assert_seed_fields("Cobrowsesession", c);
        assert_eq!(c["state"], "disconnected");
    }
    assert_eq!(comms[0]["disconnectType"], "client");

    let (status, v) = rest.get(&format!("/api/v1/visitors/{short_id}")).await;
    assert_eq!(status, 200);
    assert_seed_fields("Visitor", &v);
    assert_eq!(v["name"], "Ada Lovelace");
    assert_eq!(v["email"], "ada@example.com");
    assert_eq!(v["nickname"], "Ada Lovelace");
    assert_eq!(v["browser_name"], "Chrome");
    assert_eq!(v["device_type"], "desktop");
    assert_eq!(v["ip_address"], "127.0.0.1");
    assert_eq!(v["is_online"], true);
    assert_eq!(v["location_city"], Value::Null);
    assert_eq!(v["js_configuration"], false);

    let (status, list) = rest
        .get(&format!("/api/v1/sessions?visitor_id={short_id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn agent_ends_and_lookup_code_is_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let code = visitor.welcome["lookup_code"].as_str().unwrap().to_string();
    let rest = server.rest("sk_demo");
    let (_, found) = rest
        .get(&format!("/api/v1/visitors?online=true&q={code}"))
        .await;
    assert_eq!(
        found["visitors"][0]["short_id"],
        visitor.short_id().as_str()
    );
    let mut agent = server.agent("sk_demo", "Grace").await;
    let session_id = agent
        .request_session(&visitor.short_id(), "lookup_code")
        .await;
    visitor.expect("session_request").await;
    visitor.send(json!({"type": "authorize"})).await;
    agent.expect_status(&session_id, "active").await;
    agent
        .send(json!({"type": "note", "session_id": session_id, "text": "checked the cart"}))
        .await;
    agent
        .send(json!({"type": "end_session", "session_id": session_id}))
        .await;
    let end = visitor.expect("session_end").await;
    assert_eq!(end["disconnectType"], "peer");
    let (_, session) = rest.get(&format!("/api/v1/sessions/{session_id}")).await;
    assert_eq!(session["source"], "lookup code");
    assert_eq!(session["agent_notes"][0]["text"], "checked the cart");
    assert_seed_fields("Session", &session);
}

#[tokio::test]
async fn deny_ends_with_client_and_never_went_live() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let mut agent = server.agent("sk_demo", "Grace").await;
    let session_id = agent.request_session(&visitor.short_id(), "search").await;
    visitor.expect("session_request").await;
    visitor.send(json!({"type": "deny"})).await;
    assert_eq!(
        visitor.expect("session_end").await["disconnectType"],
        "client"
    );
    agent.expect_status(&session_id, "ended").await;
    let (_, session) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/sessions/{session_id}"))
        .await;
    assert_eq!(session["went_live"], false);
    assert_eq!(session["session_authorized"], false);
}

#[tokio::test]
async fn unanswered_request_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server
        .visitor(None, None, true, json!({"authorizationTimeoutSeconds": 1}))
        .await;
    let mut agent = server.agent("sk_demo", "Grace").await;
    let session_id = agent.request_session(&visitor.short_id(), "search").await;
    visitor.expect("session_request").await;
    let end = visitor.expect("session_end").await;
    assert_eq!(end["disconnectType"], "timeout");
    let ended = agent.expect_status(&session_id, "ended").await;
    assert_eq!(ended["communications"][0]["disconnectType"], "timeout");
    // A config that differs from the defaults is flagged.
    let (_, v) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/visitors/{}", visitor.short_id()))
        .await;
    assert_eq!(v["js_configuration"], true);
}

#[tokio::test]
async fn navigation_resumes_the_session_on_the_next_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut page1 = server.visitor(None, None, true, json!({})).await;
    let short_id = page1.short_id();
    let mut agent = server.agent("sk_demo", "Grace").await;
    let session_id = agent.request_session(&short_id, "search").await;
    page1.expect("session_request").await;
    page1.send(json!({"type": "authorize"})).await;
    page1.expect("session_start").await;
    page1.send(json!({"type": "expect_disconnect", "returnTimeSeconds": null, "message": null, "title": null})).await;
    page1.expect("state").await;
    let page1_ids = page1.ids();
    page1.close().await;
    let held = agent
        .expect_where("session_update", |v| {
            v["session"]["id"] == session_id.as_str()
                && v["communications"][0]["segments"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|x| x["type"] == "Hold"))
        })
        .await;
    assert_eq!(held["status"], "active");
    let mut page2 = server.returning(&page1_ids, None, true).await;
    assert_eq!(page2.short_id(), short_id, "the visitor keeps its id");
    let cont = page2.expect("session_continue").await;
    assert_eq!(cont["session_id"], session_id.as_str());
    let state = page2.expect("state").await;
    assert_eq!(state["state"]["status"], "active");
    agent
        .send(json!({"type": "end_session", "session_id": session_id}))
        .await;
    assert_eq!(page2.expect("session_end").await["disconnectType"], "peer");
}

#[tokio::test]
async fn two_tabs_prompt_follows_focus() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut tab_a = server.visitor(None, None, true, json!({})).await;
    let short_id = tab_a.short_id();
    let mut tab_b = server.returning(&tab_a.ids(), None, false).await;
    assert_eq!(tab_b.short_id(), short_id);
    assert_ne!(tab_b.connection_id(), tab_a.connection_id());
    let mut agent = server.agent("sk_demo", "Grace").await;
    let session_id = agent.request_session(&short_id, "search").await;
    tab_a.expect("session_request").await;
    tab_b.send(json!({"type": "focus", "hasFocus": true})).await;
    let moved = tab_b.expect("session_request").await;
    assert_eq!(moved["session_id"], session_id.as_str());
    tab_b.send(json!({"type": "authorize"})).await;
    tab_a.expect("session_start").await;
    tab_b.expect("session_start").await;
    agent.expect_status(&session_id, "active").await;
    // A tab opened during the session learns it is in one.
    let mut tab_c = server.returning(&tab_a.ids(), None, false).await;
    assert_eq!(
        tab_c.expect("session_continue").await["session_id"],
        session_id.as_str()
    );
}

#[tokio::test]
async fn control_request_grant_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let mut agent = server.agent("sk_demo", "Grace").await;
    let agent_id = agent.welcome["agent"]["id"].as_str().unwrap().to_string();
    assert!(agent_id.starts_with("ea_"));
    let session_id = agent.request_session(&visitor.short_id(), "search").await;
    visitor.expect("session_request").await;
    visitor.send(json!({"type": "authorize"})).await;
    agent.expect_status(&session_id, "active").await;
    agent
        .send(json!({"type": "request_control", "session_id": session_id}))
        .await;
    let ask = visitor.expect("control_request").await;
    assert_eq!(ask["agent"]["id"], agent_id.as_str());
    // The agent sees its request pending.
    let pending = agent
        .expect_where("session_update", |v| v["control"]["state"] == "requested")
        .await;
    assert_eq!(
        pending["control"],
        json!({"state": "requested", "agent_id": agent_id, "reason": null})
    );
    assert!(pending["controlling_agent_id"].is_null());
    visitor.send(json!({"type": "control_grant"})).await;
    visitor.expect("control_start").await;
    let granted = agent
        .expect_where("session_update", |v| {
            v["controlling_agent_id"] == agent_id.as_str()
        })
        .await;
    assert_eq!(granted["control"]["state"], "granted");
    assert_eq!(granted["control"]["agent_id"], agent_id.as_str());
    let comms = granted["communications"].as_array().unwrap();
    assert_eq!(comms[1]["controlling"], json!([comms[0]["id"]]));
    visitor.send(json!({"type": "control_revoke"})).await;
    let end = visitor.expect("control_end").await;
    assert_eq!(end["reason"], "revoked_by_visitor");
    let revoked = agent
        .expect_where("session_update", |v| {
            v["controlling_agent_id"].is_null() && v["status"] == "active"
        })
        .await;
    assert_eq!(revoked["communications"][1]["controlling"], json!([]));
    assert_eq!(
        revoked["control"],
        json!({"state": "none", "agent_id": agent_id, "reason": "revoked_by_visitor"})
    );
    // A declined request: the agent learns it was declined.
    agent
        .send(json!({"type": "request_control", "session_id": session_id}))
        .await;
    visitor.expect("control_request").await;
    agent
        .expect_where("session_update", |v| v["control"]["state"] == "requested")
        .await;
    visitor.send(json!({"type": "control_deny"})).await;
    assert_eq!(visitor.expect("control_end").await["reason"], "denied");
    let declined = agent
        .expect_where("session_update", |v| v["control"]["reason"] == "denied")
        .await;
    assert_eq!(
        declined["control"],
        json!({"state": "none", "agent_id": agent_id, "reason": "denied"})
    );
    // Releasing control the agent does not hold is a wrong-state error; the socket lives on.
    agent
        .send(json!({"type": "release_control", "session_id": session_id}))
        .await;
    assert_eq!(agent.expect("error").await["code"], "wrong_control_state");
    visitor.send(json!({"type": "end"})).await;
    agent.expect_status(&session_id, "ended").await;
    let (_, session) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/sessions/{session_id}"))
        .await;
    assert_eq!(session["features_used"], json!(["remote_control"]));
}

#[tokio::test]
async fn rest_session_request_is_asked_like_the_console_and_ended_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server
        .visitor(
            None,
            None,
            true,
            json!({"requireAuthorizationForSession": true}),
        )
        .await;
    let rest = server.rest("sk_demo");
    let path = format!("/api/v1/visitors/{}/session_requests", visitor.short_id());
    let (status, created) = rest
        .post(
            &path,
            r#"{"agent": {"name": "Bot", "external_id": "crm-7"}}"#,
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let session_id = created["session_id"].as_str().unwrap().to_string();
    assert!(created["viewer_url"]
        .as_str()
        .unwrap()
        .contains(&session_id));
    let ask = visitor.expect("session_request").await;
    assert_eq!(ask["agent"]["external_id"], "crm-7");
    visitor.send(json!({"type": "authorize"})).await;
    visitor.expect("session_start").await;
    let (status, session) = rest
        .post(
            &format!("/api/v1/sessions/{session_id}/notes"),
            r#"{"text": "hello"}"#,
        )
        .await;
    assert_eq!(status, 201, "{session}");
    let (status, ended) = rest
        .post(&format!("/api/v1/sessions/{session_id}/end"), "")
        .await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(
        visitor.expect("session_end").await["disconnectType"],
        "system"
    );
    let (_, session) = rest.get(&format!("/api/v1/sessions/{session_id}")).await;
    assert_eq!(session["source"], "api");
    assert_eq!(session["agents"][0]["external_id"], "crm-7");
    assert_eq!(session["agent_notes"][0]["text"], "hello");
    let (status, again) = rest
        .post(&format!("/api/v1/sessions/{session_id}/end"), "")
        .await;
    assert_eq!(status, 409, "{again}");
    // Erasure: the visitor is gone and its sessions keep no personal data.
    let (status, _) = rest
        .call(
            "DELETE",
            &format!("/api/v1/visitors/{}", visitor.short_id()),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(visitor.closed_within(Duration::from_secs(3)).await);
    let (_, session) = rest.get(&format!("/api/v1/sessions/{session_id}")).await;
    assert_eq!(session["visitor_ip_address"], Value::Null);
    assert_eq!(session["visitor_email"], Value::Null);
    assert_seed_fields("Session", &session);
    let (status, _) = rest
        .get(&format!("/api/v1/visitors/{}", visitor.short_id()))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn request_agent_marks_the_visitor_waiting_and_sets_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let mut agent = server.agent("sk_demo", "Grace").await;
    visitor.send(json!({"type": "request_agent"})).await;
    let update = agent
        .expect_where("visitor_update", |v| {
            v["visitor"]["is_waiting_for_call"] == true
        })
        .await;
    assert_eq!(update["visitor"]["short_id"], visitor.short_id().as_str());
    let session_id = agent.request_session(&visitor.short_id(), "search").await;
    visitor.expect("session_request").await;
    visitor.send(json!({"type": "deny"})).await;
    agent.expect_status(&session_id, "ended").await;
    let (_, session) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/sessions/{session_id}"))
        .await;
    assert_eq!(session["source"], "agent request");
}

#[tokio::test]
async fn second_agent_joins_and_the_last_one_leaving_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server
        .visitor(
            None,
            None,
            true,
            json!({"requireAuthorizationForSession": false}),
        )
        .await;
    let mut grace = server.agent("sk_demo", "Grace").await;
    let mut alan = server.agent("sk_demo", "Alan").await;
    let session_id = grace.request_session(&visitor.short_id(), "search").await;
    // Without authorization the session is live at once.
    visitor.expect("session_start").await;
    alan.send(json!({"type": "join_session", "session_id": session_id}))
        .await;
    let joined = alan
        .expect_where("session_update", |v| {
            v["communications"].as_array().is_some_and(|c| c.len() == 3)
        })
        .await;
    assert_eq!(joined["session"]["agents"].as_array().unwrap().len(), 2);
    grace
        .send(json!({"type": "leave_session", "session_id": session_id}))
        .await;
    let after = alan
        .expect_where("session_update", |v| {
            v["communications"][1]["state"] == "disconnected" && v["status"] == "active"
        })
        .await;
    assert_eq!(after["communications"][2]["state"], "connected");
    alan.send(json!({"type": "leave_session", "session_id": session_id}))
        .await;
    assert_eq!(
        visitor.expect("session_end").await["disconnectType"],
        "peer"
    );
    alan.send(json!({"type": "note", "session_id": session_id, "text": "after"}))
        .await;
    let (_, session) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/sessions/{session_id}"))
        .await;
    assert_eq!(session["agents"].as_array().unwrap().len(), 2);
    assert_eq!(session["went_live"], true);
}

#[tokio::test]
async fn an_announced_return_that_never_happens_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let mut agent = server.agent("sk_demo", "Grace").await;
    let session_id = agent.request_session(&visitor.short_id(), "search").await;
    visitor.expect("session_request").await;
    visitor.send(json!({"type": "authorize"})).await;
    agent.expect_status(&session_id, "active").await;
    visitor.send(json!({"type": "expect_disconnect", "returnTimeSeconds": 1, "message": null, "title": null})).await;
    visitor.expect("state").await;
    visitor.close().await;
    let ended = agent.expect_status(&session_id, "ended").await;
    assert_eq!(ended["communications"][0]["disconnectType"], "timeout");
}

#[tokio::test]
async fn tabs_that_vanish_unannounced_end_with_transport_failure() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(dir.path(), &[("COVISIT_GRACE_PERIOD_SECONDS", "1")]);
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let mut agent = server.agent("sk_demo", "Grace").await;
    let session_id = agent.request_session(&visitor.short_id(), "search").await;
    visitor.expect("session_request").await;
    visitor.send(json!({"type": "authorize"})).await;
    agent.expect_status(&session_id, "active").await;
    visitor.close().await;
    // The visitor's update comes just before the session's, in the same batch.
    agent
        .expect_where("visitor_update", |v| {
            v["visitor"]["is_online"] == false && v["visitor"]["is_in_session"] == false
        })
        .await;
    let ended = agent.expect_status(&session_id, "ended").await;
    assert_eq!(
        ended["communications"][0]["disconnectType"],
        "transport.failure"
    );
}
