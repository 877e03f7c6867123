//! The trust model against the real server binary, tried as an attacker would: a
//! visitor is whoever holds its secret (not whoever names its id or its tab's id);
//! public keys are bound to page origins; users sign in with passwords, hold roles
//! (a table of every REST endpoint and agent message), cannot be phished into a
//! fixed session or a cross-site write; the audit log records who did what and cannot
//! be changed; personal links bring a visitor to the agent who sent them.

mod common;

use std::time::Duration;

use common::{create_keys, Console, Server, Ws, DEMO_ADMIN, PAGE_ORIGIN};
use serde_json::{json, Value};

/// The frames of `kinds` among those `ws` got before its heartbeat's answer.
async fn heard(ws: &mut Ws, kinds: &[&str]) -> Vec<Value> {
    ws.frames_until_ack()
        .await
        .into_iter()
        .filter(|f| kinds.contains(&f["type"].as_str().unwrap_or_default()))
        .collect()
}

/// The attack of the issue: a script knowing only the public key and a victim's
/// short_id (and even its tab's id) opens a visitor socket while the victim is in a
/// live session. It becomes a new visitor and touches nothing of the victim's.
#[tokio::test]
async fn naming_a_visitor_or_its_tab_does_not_take_it_over() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut victim = server.visitor(None, None, true, json!({})).await;
    let victim_id = victim.short_id();
    let victim_tab = victim.connection_id();
    let victim_code = victim.welcome["lookup_code"].clone();
    assert_eq!(victim.secret().len(), 64, "a 256-bit secret");
    let mut agent = server.agent("sk_demo", "Grace").await;
    let session_id = agent.request_session(&victim_id, "search").await;
    victim.expect("session_request").await;
    victim.send(json!({"type": "authorize"})).await;
    victim.expect("session_start").await;
    agent.expect_status(&session_id, "active").await;

    let attempts: [(Option<String>, Option<&str>); 3] = [
        (None, None),
        (Some("f".repeat(64)), None),
        (None, Some(victim_tab.as_str())),
    ];
    for (secret, tab) in attempts {
        let mut attacker = server
            .visitor_as(Some(&victim_id), secret.as_deref(), tab, true, json!({}))
            .await;
        assert_ne!(
            attacker.short_id(),
            victim_id,
            "a new visitor, not the victim"
        );
        assert_ne!(attacker.connection_id(), victim_tab, "a new tab id");
        assert_ne!(
            attacker.welcome["lookup_code"], victim_code,
            "not the victim's code"
        );
        assert!(
            attacker.welcome["visitor_secret"].is_string(),
            "its own secret"
        );
        // Its frames change nothing of the victim's session and reach no agent.
        attacker
            .send(json!({"type": "mirror", "data": [["S", 1, "https://fake.test/pay", 800, 600, 1], ["N", 1, 0, [1, "h1"], [1, 0, "Enter your card number"]], ["E"]]}))
            .await;
        for msg in [
            "end",
            "authorize",
            "deny",
            "control_grant",
            "control_revoke",
        ] {
            attacker.send(json!({"type": msg})).await;
        }
        let got = heard(
            &mut attacker,
            &[
                "session_continue",
                "session_request",
                "session_start",
                "control_request",
            ],
        )
        .await;
        assert_eq!(
            got,
            Vec::<Value>::new(),
            "the attacker heard nothing of the victim's session"
        );
        // The attacker's frames were all handled (its heartbeat was answered after
        // them): anything they made for the agent is queued before the agent's answer.
        let relayed = heard(&mut agent, &["mirror"]).await;
        assert!(
            relayed.is_empty(),
            "the forged page reached the agent: {relayed:?}"
        );
        let (_, s) = server
            .rest("sk_demo")
            .get(&format!("/api/v1/sessions/{session_id}"))
            .await;
        assert_eq!(s["status"], "active", "{s}");
        let (_, v) = server
            .rest("sk_demo")
            .get(&format!("/api/v1/visitors/{victim_id}"))
            .await;
        assert_eq!(v["is_in_session"], true);
        attacker.close().await;
    }
    // The victim's own tab still works: its end ends the session.
    victim.send(json!({"type": "end"})).await;
    assert_eq!(
        agent.expect_status(&session_id, "ended").await["status"],
        "ended"
    );
    // With its secret the visitor comes back as itself, and keeps its tab id.
    let ids = victim.ids();
    drop(victim);
    let back = server.returning(&ids, Some(&victim_tab), true).await;
    assert_eq!(back.short_id(), victim_id);
    assert_eq!(back.connection_id(), victim_tab);
    assert!(
        back.welcome["visitor_secret"].is_null(),
        "no new secret for a proven visitor"
    );
}

/// Visitors stored before secrets existed keep their id and get a secret at their next
/// connect; from then on the id needs it.
#[tokio::test]
async fn visitors_from_before_secrets_get_one_at_their_next_connect() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let old = server.visitor(None, None, true, json!({})).await;
    let id = old.short_id();
    drop(old);
    let mut server = server;
    server.kill();
    let db = rusqlite::Connection::open(&server.db).unwrap();
    db.execute(
        "UPDATE visitors SET secret_hash = NULL WHERE short_id = ?1",
        [&id],
    )
    .unwrap();
    drop(db);
    let server = server.restart();
    let first = server.visitor(Some(&id), None, true, json!({})).await;
    assert_eq!(first.short_id(), id, "the stored visitor keeps its id");
    let secret = first.secret();
    let second = server.visitor(Some(&id), None, true, json!({})).await;
    assert_ne!(second.short_id(), id, "now the id needs its secret");
    let third = server
        .visitor_as(Some(&id), Some(&secret), None, true, json!({}))
        .await;
    assert_eq!(third.short_id(), id);
}

/// Public keys are bound to origins: an allowed one works (exact or subdomain), a wrong
/// one, none and a look-alike are refused before anything is created.
#[tokio::test]
async fn public_keys_take_only_their_allowed_origins() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("covisit.db");
    let server = Server::start(dir.path());
    let out = std::process::Command::new(common::BIN)
        .args(["--database"])
        .arg(&db)
        .args([
            "keys",
            "create",
            "--name",
            "shop",
            "--origin",
            "https://shop.example",
            "--origin",
            "https://*.shop.example",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let pk = text
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .unwrap()
        .trim()
        .to_string();
    let sk = text
        .lines()
        .find_map(|l| l.strip_prefix("secret key: "))
        .unwrap()
        .trim()
        .to_string();
    let rest = server.rest(&sk);
    let hello = |pk: &str| json!({"type": "hello", "protocol_version": 1, "api_key": pk, "short_id": null, "connection": {"hasFocus": true}, "config": {}});
    let url = format!("ws://{}/ws/visitor", server.addr);
    for origin in [
        Some("https://evil.test"),
        Some("https://shop.example.evil.test"),
        Some("http://shop.example"),
        Some("https://shop.example:8443"),
        Some("null"),
        Some("http://127.0.0.1"),
        None,
    ] {
        let mut ws = Ws::connect_from(&url, origin).await;
        ws.send(hello(&pk)).await;
        let e = ws.expect("error").await;
        assert_eq!(e["code"], "origin_not_allowed", "{origin:?}: {e}");
        assert!(ws.closed_within(Duration::from_secs(3)).await);
    }
    assert_eq!(
        rest.get("/api/v1/visitors").await.1["visitors"],
        json!([]),
        "nothing was created"
    );
    for origin in ["https://shop.example", "https://www.shop.example"] {
        let mut ws = Ws::connect_from(&url, Some(origin)).await;
        ws.send(hello(&pk)).await;
        assert!(
            ws.expect("welcome").await["short_id"].is_string(),
            "{origin}"
        );
    }
    assert_eq!(
        rest.get("/api/v1/visitors").await.1["visitors"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // `keys create` without an origin is refused with a clear message.
    let out = std::process::Command::new(common::BIN)
        .args(["--database"])
        .arg(&db)
        .args(["keys", "create", "--name", "loose"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--origin"));
    let _ = create_keys;
}

/// Sign-in: wrong password, unknown email, disabled user, lockout after repeated
/// failures (audited), a new cookie at every sign-in (no fixation), the cookie's flags,
/// CSRF refused without the token, the password policy, expired and used links.
#[tokio::test]
async fn sign_in_is_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.sign_in(DEMO_ADMIN.0, DEMO_ADMIN.1).await;
    // Cookie flags and rotation: a cookie planted before sign-in is never the one used.
    let resp = reqwest::Client::new()
        .post(server.url("/api/v1/auth/sign_in"))
        .header("cookie", "covisit_session=planted-by-an-attacker")
        .header("content-type", "application/json")
        .body(json!({"email": DEMO_ADMIN.0, "password": DEMO_ADMIN.1}).to_string())
        .send()
        .await
        .unwrap();
    let (pair, header) = common::session_cookie(&resp).expect("a session cookie");
    assert!(
        header.contains("HttpOnly")
            && header.contains("SameSite=Strict")
            && header.contains("Path=/"),
        "{header}"
    );
    assert!(
        !header.contains("Secure"),
        "plain http on loopback: {header}"
    );
    assert_ne!(pair, "covisit_session=planted-by-an-attacker");
    assert_ne!(pair, admin.cookie, "every sign-in gets a new cookie");
    let planted = Console {
        cookie: "covisit_session=planted-by-an-attacker".into(),
        ..admin.clone()
    };
    assert_eq!(planted.call("GET", "/api/v1/me", None).await.0, 401);

    // CSRF: a cookie-authenticated write needs the token.
    let (status, body) = admin
        .call_with(
            "POST",
            "/api/v1/users",
            Some(json!({"email": "x@demo.test", "name": "X", "role": "agent"})),
            false,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("csrf_token_invalid")),
        "{body}"
    );
    let wrong = Console {
        csrf: "0".repeat(64),
        ..admin.clone()
    };
    assert_eq!(
        wrong
            .call(
                "POST",
                "/api/v1/users",
                Some(json!({"email": "x@demo.test", "name": "X", "role": "agent"}))
            )
            .await
            .0,
        403
    );

    // The password policy, on the invite link; a refused password keeps the link usable.
    let (_, invited) = admin
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"email": "patricia@demo.test", "name": "Patricia Lee", "role": "agent"})),
        )
        .await;
    let token = invited["invite_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    for weak in [
        "short",
        "password1234",
        "patricia-has-a-long-one",
        "zzzzzzzzzzzzzzzz",
    ] {
        let (status, body) = server.accept(&token, weak).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("weak_password")),
            "{weak}: {body}"
        );
    }
    assert_eq!(server.accept(&token, "a sturdy pass phrase").await.0, 200);
    assert_eq!(
        server.accept(&token, "another sturdy phrase").await.0,
        410,
        "an invite works once"
    );

    // Wrong password, unknown email: the same answer.
    for (email, pw) in [
        ("patricia@demo.test", "not the password"),
        ("nobody@demo.test", "whatever it is"),
    ] {
        let (status, body, _) = server.sign_in_raw(email, pw).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_credentials")),
            "{email}"
        );
    }
    // Lockout: after five failures even the right password is refused for a while.
    for _ in 0..5 {
        server
            .sign_in_raw("patricia@demo.test", "still not it")
            .await;
    }
    let (status, body, _) = server
        .sign_in_raw("patricia@demo.test", "a sturdy pass phrase")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("too_many_attempts")),
        "{body}"
    );
    let (_, audit) = admin
        .call(
            "GET",
            &format!(
                "/api/v1/audit?action=auth.sign_in&actor={}",
                invited["user"]["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let results: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["result"].as_str().unwrap())
        .collect();
    assert!(
        results
            .iter()
            .filter(|r| r.starts_with("wrong_password"))
            .count()
            >= 6,
        "{results:?}"
    );
    assert!(results.contains(&"locked"), "{results:?}");
    assert!(
        audit["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["ip"] == "127.0.0.1"),
        "{audit}"
    );

    // Disabled: refused, and its sockets close at once.
    let sam = server.user("agent", "Sam Park").await;
    let mut sam_ws = server.console_socket(&sam).await;
    let (status, _) = admin
        .call(
            "PATCH",
            &format!("/api/v1/users/{}", sam.id()),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        sam_ws.closed_within(Duration::from_secs(3)).await,
        "a disabled user's socket closes"
    );
    assert_eq!(
        sam.call("GET", "/api/v1/me", None).await.0,
        401,
        "its sign-in ended"
    );
    let (status, body, _) = server
        .sign_in_raw("sam.park@demo.test", "Sam Park has a long password")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("user_disabled"))
    );

    // Reset link: works once; an expired one is refused.
    let (status, reset) = admin
        .call(
            "POST",
            &format!(
                "/api/v1/users/{}/password_reset",
                invited["user"]["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(status, 201, "{reset}");
    let reset_token = reset["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let db = rusqlite::Connection::open(&server.db).unwrap();
    db.execute(
        "UPDATE one_time_tokens SET expires_at = '2020-01-01T00:00:00.000Z' WHERE kind = 'reset'",
        [],
    )
    .unwrap();
    assert_eq!(
        server.accept(&reset_token, "a fresh sturdy phrase").await.0,
        410,
        "an expired reset link"
    );
    let (_, invited2) = admin
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"email": "old@demo.test", "name": "Old Invite", "role": "agent"})),
        )
        .await;
    let t2 = invited2["invite_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    db.execute("UPDATE one_time_tokens SET expires_at = '2020-01-01T00:00:00.000Z' WHERE kind = 'invite' AND used_at IS NULL", []).unwrap();
    assert_eq!(
        server.accept(&t2, "a fresh sturdy phrase").await.0,
        410,
        "an expired invite"
    );
    // The last admin cannot be demoted or disabled.
    let (status, body) = admin
        .call(
            "PATCH",
            &format!("/api/v1/users/{}", admin.id()),
            Some(json!({"role": "agent"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("last_admin"))
    );
    // Sign-out ends the session and closes its sockets.
    let mut admin_ws = server.console_socket(&admin).await;
    assert_eq!(
        admin.call("POST", "/api/v1/auth/sign_out", None).await.0,
        204
    );
    assert!(admin_ws.closed_within(Duration::from_secs(3)).await);
    assert_eq!(admin.call("GET", "/api/v1/me", None).await.0, 401);
}

/// The role matrix: every REST endpoint and agent message, for each role, the secret
/// key and nobody. One row per endpoint; a cell is the status (or error code) expected.
#[tokio::test]
async fn each_role_gets_exactly_what_it_should() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.sign_in(DEMO_ADMIN.0, DEMO_ADMIN.1).await;
    let supervisor = server.user("supervisor", "Sue Visor").await;
    let agent = server.user("agent", "Abe Gent").await;
    let bystander = server.user("agent", "Bea Stander").await;
    let api = server.rest("sk_demo");
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let short_id = visitor.short_id();
    // A live session of `agent`'s, for the session rows.
    let mut agent_ws = server.console_socket(&agent).await;
    let session_id = agent_ws.request_session(&short_id, "search").await;
    visitor.expect("session_request").await;
    visitor.send(json!({"type": "authorize"})).await;
    agent_ws.expect_status(&session_id, "active").await;
    let victim2 = server.visitor(None, None, true, json!({})).await;

    let s = &session_id;
    let v = &short_id;
    // (method, path, body ({who}: which principal, for bodies that must differ), then
    // the status for [admin, supervisor, agent (in the session), bystander (an agent
    // not in it), the secret key, nobody]). Rows run in order: the first allowed
    // session request creates a session (the next ones conflict), the first allowed
    // end ends it (the next ones find it ended).
    type Row<'a> = (&'a str, String, Option<&'a str>, [u16; 6]);
    let rows: Vec<Row> = vec![
        (
            "GET",
            "/api/v1/visitors".into(),
            None,
            [200, 200, 200, 200, 200, 401],
        ),
        (
            "GET",
            format!("/api/v1/visitors/{v}"),
            None,
            [200, 200, 200, 200, 200, 401],
        ),
        (
            "GET",
            format!("/api/v1/sessions?visitor_id={v}"),
            None,
            [200, 200, 200, 200, 200, 401],
        ),
        (
            "GET",
            format!("/api/v1/sessions/{s}"),
            None,
            [200, 200, 200, 200, 200, 401],
        ),
        (
            "GET",
            format!("/api/v1/sessions/{s}/communications"),
            None,
            [200, 200, 200, 200, 200, 401],
        ),
        (
            "GET",
            format!("/api/v1/journey/sessions?visitor_id={v}"),
            None,
            [200, 200, 200, 200, 200, 401],
        ),
        (
            "POST",
            format!("/api/v1/sessions/{s}/notes"),
            Some(r#"{"text": "a note"}"#),
            [201, 201, 201, 403, 201, 401],
        ),
        (
            "GET",
            format!("/api/v1/analytics/conversations/{s}/details"),
            None,
            [200, 200, 403, 403, 200, 401],
        ),
        (
            "POST",
            "/api/v1/analytics/conversations/details/query".into(),
            Some(r#"{"interval": "2020-01-01T00:00:00Z/2099-01-01T00:00:00Z"}"#),
            [200, 200, 403, 403, 200, 401],
        ),
        (
            "GET",
            "/api/v1/audit".into(),
            None,
            [200, 200, 403, 403, 200, 401],
        ),
        (
            "GET",
            "/api/v1/users".into(),
            None,
            [200, 403, 403, 403, 403, 401],
        ),
        (
            "GET",
            "/api/v1/keys".into(),
            None,
            [200, 403, 403, 403, 403, 401],
        ),
        (
            "GET",
            "/api/v1/account".into(),
            None,
            [200, 403, 403, 403, 403, 401],
        ),
        (
            "PATCH",
            "/api/v1/account".into(),
            Some(r#"{"site_url": "http://127.0.0.1/"}"#),
            [200, 403, 403, 403, 403, 401],
        ),
        (
            "POST",
            "/api/v1/users".into(),
            Some(r#"{"email": "new{who}@demo.test", "name": "New", "role": "agent"}"#),
            [201, 403, 403, 403, 403, 401],
        ),
        (
            "POST",
            "/api/v1/keys".into(),
            Some(r#"{"name": "k", "origins": ["https://x.example"]}"#),
            [201, 403, 403, 403, 403, 401],
        ),
        (
            "PATCH",
            format!("/api/v1/users/{}", bystander.id()),
            Some(r#"{"role": "agent"}"#),
            [200, 403, 403, 403, 403, 401],
        ),
        (
            "POST",
            format!("/api/v1/users/{}/password_reset", bystander.id()),
            None,
            [201, 403, 403, 403, 403, 401],
        ),
        (
            "GET",
            "/api/v1/me".into(),
            None,
            [200, 200, 200, 200, 401, 401],
        ),
        (
            "POST",
            format!("/api/v1/visitors/{}/session_requests", victim2.short_id()),
            Some(r#"{"agent": {"name": "Api", "external_id": "crm-1"}}"#),
            [201, 409, 409, 409, 409, 401],
        ),
        (
            "POST",
            format!("/api/v1/sessions/{s}/end"),
            Some("{}"),
            [200, 409, 409, 403, 409, 401],
        ),
        (
            "DELETE",
            "/api/v1/visitors/nobody-here".into(),
            None,
            [404, 403, 403, 403, 404, 401],
        ),
        // This server records nothing: readers hear `recording_not_available`.
        (
            "GET",
            format!("/api/v1/sessions/{s}/recording"),
            None,
            [404, 404, 404, 404, 404, 401],
        ),
        (
            "DELETE",
            format!("/api/v1/sessions/{s}/recording"),
            None,
            [404, 403, 403, 403, 404, 401],
        ),
        // The signed link is its own credential: without a valid one, nobody gets in.
        (
            "GET",
            format!("/api/v1/recordings/{s}/download?expires=99999999999&sig=00"),
            None,
            [403, 403, 403, 403, 403, 403],
        ),
    ];
    let consoles = [&admin, &supervisor, &agent, &bystander];
    for (method, path, body, want) in &rows {
        let body_for = |who: usize| {
            body.map(|b| {
                serde_json::from_str::<Value>(&b.replace("{who}", &who.to_string())).unwrap()
            })
        };
        let mut got = [0u16; 6];
        for (k, c) in consoles.iter().enumerate() {
            got[k] = c.call(method, path, body_for(k)).await.0;
        }
        got[4] = api
            .call(method, path, body_for(4).map(|b| b.to_string()).as_deref())
            .await
            .0;
        got[5] = server
            .rest("")
            .call(method, path, body_for(5).map(|b| b.to_string()).as_deref())
            .await
            .0;
        assert_eq!(
            &got, want,
            "{method} {path}: admin, supervisor, agent, bystander, secret key, nobody"
        );
    }
    // Agent socket messages: joining another agent's session, and acting in it.
    let mut visitor3 = server.visitor(None, None, true, json!({})).await;
    let s3 = agent_ws
        .request_session(&visitor3.short_id(), "search")
        .await;
    visitor3.expect("session_request").await;
    visitor3.send(json!({"type": "authorize"})).await;
    agent_ws.expect_status(&s3, "active").await;
    let mut bystander_ws = server.console_socket(&bystander).await;
    bystander_ws
        .send(json!({"type": "join_session", "session_id": s3}))
        .await;
    assert_eq!(
        bystander_ws.expect("error").await["code"],
        "forbidden",
        "an agent does not join others' sessions"
    );
    for (name, msg) in [
        (
            "end_session",
            json!({"type": "end_session", "session_id": s3}),
        ),
        (
            "request_control",
            json!({"type": "request_control", "session_id": s3}),
        ),
        (
            "note",
            json!({"type": "note", "session_id": s3, "text": "x"}),
        ),
        (
            "remote_action",
            json!({"type": "remote_action", "session_id": s3, "action": {"kind": "click", "node": 1, "x": 1, "y": 1}}),
        ),
        (
            "mirror_resync",
            json!({"type": "mirror_resync", "session_id": s3}),
        ),
    ] {
        bystander_ws.send(msg).await;
        assert_eq!(
            bystander_ws.expect("error").await["code"],
            "not_in_session",
            "{name}"
        );
    }
    let mut supervisor_ws = server.console_socket(&supervisor).await;
    supervisor_ws
        .send(json!({"type": "join_session", "session_id": s3}))
        .await;
    let joined = supervisor_ws
        .expect_where("session_update", |u| u["session"]["id"] == s3.as_str())
        .await;
    assert!(joined["session"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["id"] == supervisor.id().as_str()));
    // Users' agents are the seed's u_… Agents, with email, without external_id.
    let me = &joined["session"]["agents"][0];
    assert!(me["id"].as_str().unwrap().starts_with("u_"), "{me}");
    assert!(
        me["email"].is_string() && me["external_id"].is_null(),
        "{me}"
    );
    common::assert_seed_fields("Agent", me);
    // An integration's agent without external_id is refused; with one, ea_… from it.
    let mut ws = Ws::connect(&format!("ws://{}/ws/agent", server.addr)).await;
    ws.send(
        json!({"type": "hello", "protocol_version": 1, "secret_key": "sk_demo", "name": "Api"}),
    )
    .await;
    assert_eq!(ws.expect("error").await["code"], "invalid_argument");
    let ea = server.agent("sk_demo", "crm-agent-7").await;
    assert!(ea.welcome["agent"]["id"]
        .as_str()
        .unwrap()
        .starts_with("ea_"));
    assert_eq!(ea.welcome["agent"]["external_id"], "crm-agent-7");
    // A console socket needs the cookie, from this server's page.
    let mut ws = Ws::connect_with(
        &format!("ws://{}/ws/agent", server.addr),
        &[
            ("origin", "https://evil.test"),
            ("cookie", agent.cookie.as_str()),
        ],
    )
    .await;
    ws.send(json!({"type": "hello", "protocol_version": 1}))
        .await;
    assert_eq!(
        ws.expect("error").await["code"],
        "unauthorized",
        "another site cannot use the cookie"
    );
    let mut ws = Ws::connect(&format!("ws://{}/ws/agent", server.addr)).await;
    ws.send(json!({"type": "hello", "protocol_version": 1}))
        .await;
    assert_eq!(ws.expect("error").await["code"], "unauthorized");
    let _ = PAGE_ORIGIN;
}

/// The audit log: who did what (sign-in, invite, session, control, note, redirect,
/// erasure), with the actor's IP and never a visitor's; append-only, even in SQL;
/// erasing a visitor keeps the trail.
#[tokio::test]
async fn the_audit_log_records_who_did_what_and_cannot_be_changed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.sign_in(DEMO_ADMIN.0, DEMO_ADMIN.1).await;
    let agent = server.user("agent", "Ann Audit").await;
    let mut visitor = server
        .visitor(
            None,
            None,
            true,
            json!({"email": "visitor@private.test", "allowAgentRedirect": true}),
        )
        .await;
    let short_id = visitor.short_id();
    let mut ws = server.console_socket(&agent).await;
    let s = ws.request_session(&short_id, "search").await;
    visitor.expect("session_request").await;
    visitor.send(json!({"type": "authorize"})).await;
    ws.expect_status(&s, "active").await;
    ws.send(json!({"type": "request_control", "session_id": s}))
        .await;
    visitor.expect("control_request").await;
    visitor.send(json!({"type": "control_grant"})).await;
    ws.expect_where("session_update", |u| u["control"]["state"] == "granted")
        .await;
    ws.send(json!({"type": "note", "session_id": s, "text": "TYPED-NOTE-TEXT"}))
        .await;
    ws.send(json!({"type": "remote_action", "session_id": s, "action": {"kind": "redirect", "url": "/checkout"}})).await;
    visitor.expect("remote_action").await;
    visitor.send(json!({"type": "control_revoke"})).await;
    ws.send(json!({"type": "end_session", "session_id": s}))
        .await;
    ws.expect_status(&s, "ended").await;
    assert_eq!(
        server
            .rest("sk_demo")
            .call("DELETE", &format!("/api/v1/visitors/{short_id}"), None)
            .await
            .0,
        200
    );

    let (status, log) = admin.call("GET", "/api/v1/audit?limit=200", None).await;
    assert_eq!(status, 200, "{log}");
    let entries = log["entries"].as_array().unwrap();
    let has = |actor: &str, action: &str| {
        entries
            .iter()
            .any(|e| e["actor"] == actor && e["action"] == action && e["result"] == "ok")
    };
    let a = agent.id();
    let visitor_actor = format!("visitor:{short_id}");
    for (actor, action) in [
        (admin.id().as_str(), "auth.sign_in"),
        (admin.id().as_str(), "user.invited"),
        (a.as_str(), "user.invite_accepted"),
        (a.as_str(), "session.requested"),
        (visitor_actor.as_str(), "session.authorized"),
        (a.as_str(), "control.requested"),
        (visitor_actor.as_str(), "control.granted"),
        (a.as_str(), "note.added"),
        (a.as_str(), "redirect"),
        (visitor_actor.as_str(), "control.revoked"),
        (a.as_str(), "session.ended"),
        ("api", "visitor.erased"),
    ] {
        assert!(has(actor, action), "no {action} by {actor} in {log}");
    }
    let text = log.to_string();
    assert!(!text.contains("TYPED-NOTE-TEXT"), "no typed text");
    assert!(!text.contains("visitor@private.test"), "no visitor email");
    for e in entries {
        if e["actor"].as_str().unwrap().starts_with("visitor:") {
            assert!(e["ip"].is_null(), "no visitor IP: {e}");
        }
        assert!(e["at"].is_string() && e["id"].is_number(), "{e}");
    }
    // Filters and paging.
    let (_, mine) = admin
        .call(
            "GET",
            &format!("/api/v1/audit?actor={a}&action=note.added"),
            None,
        )
        .await;
    assert_eq!(mine["entries"].as_array().unwrap().len(), 1, "{mine}");
    let (_, page1) = admin.call("GET", "/api/v1/audit?limit=3", None).await;
    let before = page1["next_before"].as_i64().expect("a next page");
    let (_, page2) = admin
        .call(
            "GET",
            &format!("/api/v1/audit?limit=3&before={before}"),
            None,
        )
        .await;
    assert!(page2["entries"][0]["id"].as_i64().unwrap() < before);
    // No API changes it, and the database itself refuses.
    for method in ["POST", "PATCH", "DELETE", "PUT"] {
        assert!(
            matches!(
                admin.call(method, "/api/v1/audit", Some(json!({}))).await.0,
                404 | 405
            ),
            "{method}"
        );
    }
    let db = rusqlite::Connection::open(&server.db).unwrap();
    assert!(db
        .execute("UPDATE audit_log SET result = 'changed'", [])
        .is_err());
    assert!(db.execute("DELETE FROM audit_log", []).is_err());
}

/// A personal link: the page names the agent, a confirmation sends the visitor to the
/// account's site with a one-time token, the SDK redeems it and that agent asks for a
/// session (source `personal link`, `call_name` the username). A token works once.
#[tokio::test]
async fn a_personal_link_brings_the_visitor_to_its_agent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let agent = server.user("agent", "Lin Kay").await;
    let username = agent.user["username"].as_str().unwrap().to_string();
    assert_eq!(
        agent.user["personal_link"],
        format!("{}/call/{username}", server.url(""))
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client
        .get(server.url(&format!("/call/{username}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert!(page.text().await.unwrap().contains("Lin Kay"));
    assert_eq!(
        client
            .get(server.url("/call/nobody-here"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
    let confirm = client
        .post(server.url(&format!("/call/{username}")))
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status().as_u16(), 303);
    let location = confirm.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&server.url("/")), "{location}");
    let token = location
        .split("covisit_call=")
        .nth(1)
        .expect("a token")
        .to_string();
    let mut ws = server.console_socket(&agent).await;
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    visitor
        .send(json!({"type": "call_link", "token": token}))
        .await;
    let request = visitor.expect("session_request").await;
    assert_eq!(request["agent"]["id"], agent.id().as_str());
    let update = ws.expect("session_update").await;
    assert_eq!(update["session"]["source"], "personal link");
    assert_eq!(update["session"]["call_name"], username.as_str());
    let (_, v) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/visitors/{}", visitor.short_id()))
        .await;
    assert_eq!(v["call_name"], username.as_str());
    // Once only; a made-up one neither.
    let mut other = server.visitor(None, None, true, json!({})).await;
    for t in [token.as_str(), "made-up-token-0123456789"] {
        other.send(json!({"type": "call_link", "token": t})).await;
        assert_eq!(other.expect("error").await["code"], "invalid_call_token");
    }
}

/// Revoking a key cuts off what was opened with it, not only what comes next: an
/// integration's agent socket opened with its secret key is closed (it was receiving a
/// live session's page content), so are the tabs of visitors whose page said hello with
/// its public key; sockets of the account's other keys stay. New hellos with it are refused.
#[tokio::test]
async fn revoking_a_key_closes_the_sockets_opened_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let admin = server.sign_in(DEMO_ADMIN.0, DEMO_ADMIN.1).await;
    let (status, made) = admin
        .call(
            "POST",
            "/api/v1/keys",
            Some(json!({"name": "to revoke", "origins": [PAGE_ORIGIN]})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let pk = made["public_key"].as_str().expect("public key").to_string();
    let sk = made["secret_key"].as_str().expect("secret key").to_string();

    let url = format!("ws://{}/ws/visitor", server.addr);
    let hello = |pk: &str| json!({"type": "hello", "protocol_version": 1, "api_key": pk, "short_id": null, "connection": {"hasFocus": true, "currentUrl": "http://127.0.0.1/shop"}, "config": {}});
    let mut visitor = Ws::connect_from(&url, Some(PAGE_ORIGIN)).await;
    visitor.send(hello(&pk)).await;
    let short_id = visitor.expect("welcome").await["short_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The same account's other key (the demo key) and its integration stay.
    let mut other_visitor = server.visitor(None, None, true, json!({})).await;
    let mut other_agent = server.agent("sk_demo", "Other").await;
    let mut agent = server.agent(&sk, "Integration").await;
    let session_id = agent.request_session(&short_id, "search").await;
    visitor.expect("session_request").await;
    visitor.send(json!({"type": "authorize"})).await;
    agent.expect_status(&session_id, "active").await;

    let (status, body) = admin
        .call("POST", &format!("/api/v1/keys/{pk}/revoke"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        agent.closed_within(Duration::from_secs(5)).await,
        "the integration's socket closes"
    );
    assert!(
        visitor.closed_within(Duration::from_secs(5)).await,
        "the visitor's tab closes"
    );
    // The others are still served: each gets the answer to a heartbeat.
    other_visitor.frames_until_ack().await;
    other_agent.frames_until_ack().await;
    // And the key opens nothing any more.
    let mut again = Ws::connect(&format!("ws://{}/ws/agent", server.addr)).await;
    again.send(json!({"type": "hello", "protocol_version": 1, "secret_key": sk, "name": "I", "external_id": "I"})).await;
    assert_eq!(again.expect("error").await["code"], "invalid_secret_key");
    let mut again = Ws::connect_from(&url, Some(PAGE_ORIGIN)).await;
    again.send(hello(&pk)).await;
    assert_eq!(again.expect("error").await["code"], "invalid_api_key");
}

/// Login CSRF: another site's page cannot sign the browser in (to the attacker's
/// account, whose console the victim would then use): a sign-in or link acceptance
/// with a foreign `Origin` is refused, and so is a body that is not JSON (an HTML form
/// can post `text/plain` that parses as JSON). Without a cookie there is no CSRF token
/// to check, so these are the checks.
#[tokio::test]
async fn sign_in_comes_only_from_this_sites_pages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = reqwest::Client::new();
    let body = json!({"email": DEMO_ADMIN.0, "password": DEMO_ADMIN.1}).to_string();
    let attempt = |origin: Option<&str>, content_type: &str, path: &str, body: String| {
        let mut req = client
            .post(server.url(path))
            .header("content-type", content_type)
            .body(body);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        async move {
            let resp = req.send().await.unwrap();
            let cookie = common::session_cookie(&resp).is_some();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body["error"]["code"].clone(), cookie)
        }
    };
    let sign_in = "/api/v1/auth/sign_in";
    let (status, code, cookie) = attempt(
        Some("http://evil.example"),
        "application/json",
        sign_in,
        body.clone(),
    )
    .await;
    assert_eq!(
        (status, code.as_str(), cookie),
        (403, Some("origin_not_allowed"), false)
    );
    // The form-shaped body: `{"email":…,"password":…,"x":"=` + `"}`.
    let form = format!("{}, \"x\":\"=\"}}", body.trim_end_matches('}'));
    for (origin, content_type) in [
        (Some("http://evil.example"), "text/plain"),
        (None, "text/plain"),
        (None, "application/x-www-form-urlencoded"),
    ] {
        let (status, code, cookie) = attempt(origin, content_type, sign_in, form.clone()).await;
        assert!(
            status == 403 || status == 415,
            "{origin:?} {content_type}: {status}"
        );
        assert!(
            code.is_string() && !cookie,
            "{origin:?} {content_type}: {code}"
        );
    }
    let (status, code, _) = attempt(
        Some("http://evil.example"),
        "application/json",
        "/api/v1/auth/accept",
        json!({"token": "t", "password": "p"}).to_string(),
    )
    .await;
    assert_eq!((status, code.as_str()), (403, Some("origin_not_allowed")));
    // The console's own page signs in (its Origin is the server's Host), as does a
    // client that sends no Origin at all (not a browser).
    let own = format!("http://{}", server.addr);
    let (status, _, cookie) = attempt(Some(&own), "application/json", sign_in, body.clone()).await;
    assert_eq!((status, cookie), (200, true));
    let (status, _, cookie) = attempt(None, "application/json; charset=utf-8", sign_in, body).await;
    assert_eq!((status, cookie), (200, true));
}

/// An agent rates a session it was part of over REST too, also once the server let the
/// session go from memory (it ended and its visitor left, so the console's socket gets
/// `unknown_session`): kept in the stored record, a second rating replacing the first;
/// only an agent of the session, only once it ended, never with the secret key.
#[tokio::test]
async fn an_agent_rates_a_session_the_server_no_longer_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let rita = server.user("agent", "Rita Rating").await;
    let other = server.user("agent", "Otto Other").await;
    let mut socket = server.console_socket(&rita).await;
    let mut v = server.visitor(None, None, true, json!({})).await;
    let session_id = socket.request_session(&v.short_id(), "search").await;
    v.expect("session_request").await;
    v.send(json!({"type": "authorize"})).await;
    socket.expect_status(&session_id, "active").await;
    let path = format!("/api/v1/sessions/{session_id}/ratings");
    // Live: not yet.
    let (status, body) = rita.call("POST", &path, Some(json!({"rating": 4}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("wrong_session_state"))
    );
    v.send(json!({"type": "end"})).await;
    socket.expect_status(&session_id, "ended").await;
    v.close().await;
    // Gone from memory once its visitor left: the socket cannot rate it any more.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        socket
            .send(json!({"type": "rate_session", "session_id": session_id, "rating": 1, "feedback": null}))
            .await;
        let frames = heard(&mut socket, &["error", "session_update"]).await;
        if frames.iter().any(|f| f["code"] == "unknown_session") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session stayed in memory"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = rita
        .call(
            "POST",
            &path,
            Some(json!({"rating": 2, "feedback": "first"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = rita
        .call(
            "POST",
            &path,
            Some(json!({"rating": 5, "feedback": "on reflection"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mine: Vec<&Value> = body["quality_feedback"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["by"] == rita.id().as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{body}");
    assert_eq!(
        (mine[0]["rating"].as_f64(), mine[0]["feedback"].as_str()),
        (Some(5.0), Some("on reflection"))
    );
    // Stored: what REST reads from the store says the same.
    let (_, s) = server
        .rest("sk_demo")
        .get(&format!("/api/v1/sessions/{session_id}"))
        .await;
    assert_eq!(s["quality_feedback"], body["quality_feedback"]);
    // Not Otto's session, not the secret key's, not a rating of 6.
    let (status, body) = other.call("POST", &path, Some(json!({"rating": 3}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_in_session"))
    );
    let (status, body) = server
        .rest("sk_demo")
        .post(&path, &json!({"rating": 3}).to_string())
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, body) = rita.call("POST", &path, Some(json!({"rating": 6}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_argument"))
    );
}

/// Behind a reverse proxy the browser's `Origin` is the public URL, and the `Host` the
/// server sees may be the proxy's upstream name: the console's own page still signs in
/// and opens its socket (its Origin is `--public-url`'s), another site still cannot.
#[tokio::test]
async fn behind_a_proxy_the_public_url_is_this_sites_origin() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_args(
        dir.path(),
        &[],
        &["--public-url", "https://cobrowse.example"],
    );
    let client = reqwest::Client::new();
    let sign_in = |origin: &'static str| {
        client
            .post(server.url("/api/v1/auth/sign_in"))
            .header("origin", origin)
            .header("host", "covisit-upstream")
            .header("content-type", "application/json")
            .body(json!({"email": DEMO_ADMIN.0, "password": DEMO_ADMIN.1}).to_string())
            .send()
    };
    let resp = sign_in("https://cobrowse.example").await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let (cookie, _) = common::session_cookie(&resp).expect("a session cookie");
    let resp = sign_in("https://evil.example").await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    // The console's socket from the public origin, with the cookie.
    let mut ws = Ws::connect_with(
        &format!("ws://{}/ws/agent", server.addr),
        &[
            ("origin", "https://cobrowse.example"),
            ("host", "covisit-upstream"),
            ("cookie", cookie.as_str()),
        ],
    )
    .await;
    ws.send(json!({"type": "hello", "protocol_version": 1}))
        .await;
    assert!(ws.expect("welcome").await["agent"]["id"].is_string());
    // Another site's page with the same cookie is not the console.
    let mut ws = Ws::connect_with(
        &format!("ws://{}/ws/agent", server.addr),
        &[
            ("origin", "https://evil.example"),
            ("cookie", cookie.as_str()),
        ],
    )
    .await;
    ws.send(json!({"type": "hello", "protocol_version": 1}))
        .await;
    assert_eq!(ws.expect("error").await["code"], "unauthorized");
}
