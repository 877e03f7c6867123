//! Journey tracking and the analytics export against the real server binary: a visitor
//! tracks over `/ws/visitor` and by beacon, a co-browse session happens, and the REST
//! objects (seed 003 journey Session, seed 004 AnalyticsSession in the conversation
//! details) hold the expected values and every seed field. Bad input gets typed errors.

mod common;

use common::{assert_seed_fields, journeys, now_ms, track, Server, Ws};
use serde_json::{json, Value};

const LANDING: &str = "http://127.0.0.1/shop/?utm_source=google&utm_medium=cpc&utm_campaign=spring_sale&utm_term=trail+shoes&gclid=Cj0KCQiA4NWrBhD";
const GOOGLE: &str = "https://www.google.com/search?q=trail+running+shoes&hl=en";

fn page(at: u64, url: &str, referrer: Option<&str>, title: &str) -> Value {
    json!({"kind": "page_view", "at": at, "url": url, "referrer": referrer, "title": title,
        "lang": "en-US", "pageLang": "en", "keywords": "shoes, trail", "viewWidth": 1280, "viewHeight": 720,
        "screenWidth": 1920, "screenHeight": 1080, "platform": "Linux", "mobile": false, "pdf": true, "webrtc": true})
}

fn custom(at: u64, name: &str, attributes: Value) -> Value {
    json!({"kind": "custom", "at": at, "eventName": name, "attributes": attributes})
}

/// The next error frame's code (skipping state frames).
async fn error_code(ws: &mut Ws) -> String {
    ws.expect("error").await["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn session_with(agent: &mut Ws, visitor: &mut Ws, short_id: &str) -> String {
    let session_id = agent.request_session(short_id, "search").await;
    visitor.expect("session_request").await;
    session_id
}

#[tokio::test]
async fn a_tracked_visit_and_its_cobrowse_session_in_journey_and_analytics() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let short_id = visitor.short_id();
    let t = now_ms();
    // The landing page from Google with utm and gclid, an SPA navigation to the site's
    // own search, an event; then another page and event in a second batch.
    track(
        &mut visitor,
        vec![
            page(t, LANDING, Some(GOOGLE), "Shop"),
            page(
                t + 10,
                "http://127.0.0.1/shop/search?q=red+trail+shoes",
                Some(LANDING),
                "Search",
            ),
            custom(
                t + 20,
                "add_to_cart",
                json!({"sku": "TR-9", "qty": 2, "price": 89.5, "sizes": [42, 43]}),
            ),
        ],
    )
    .await;
    visitor
        .send(json!({"type": "update_visitor", "identity": {"uniqueId": "cust-4432"}}))
        .await;
    track(
        &mut visitor,
        vec![
            page(
                t + 30,
                "http://127.0.0.1/shop/cart#summary",
                Some("http://127.0.0.1/shop/search?q=red+trail+shoes"),
                "Cart",
            ),
            custom(
                t + 40,
                "checkout_started",
                json!({"sku": "TR-10", "coupon": true}),
            ),
        ],
    )
    .await;

    // A co-browse session: requested, authorized, ended by the visitor.
    let mut agent = server.agent("sk_demo", "Grace").await;
    let session_id = session_with(&mut agent, &mut visitor, &short_id).await;
    visitor.send(json!({"type": "authorize"})).await;
    agent.expect_status(&session_id, "active").await;
    visitor.send(json!({"type": "end"})).await;
    agent.expect_status(&session_id, "ended").await;

    let list = journeys(&server, &short_id).await;
    assert_eq!(list.len(), 1, "one visit, one journey session: {list:?}");
    let j = &list[0];
    assert_seed_fields("JourneySession", j);
    assert_eq!(j["type"], "web");
    assert_eq!(j["customerId"], short_id.as_str());
    assert_eq!(j["customerIdType"], "cookie");
    let short = j["shortId"].as_str().unwrap();
    assert!(
        (4..=6).contains(&short.len()) && short.bytes().all(|b| b.is_ascii_digit()),
        "{short}"
    );
    assert_eq!(
        (
            j["pageviewCount"].as_u64(),
            j["eventCount"].as_u64(),
            j["screenviewCount"].as_u64()
        ),
        (Some(3), Some(5), Some(0))
    );
    assert_eq!(j["lastEvent"]["eventName"], "checkout_started");
    assert_eq!(j["authenticated"], true);
    assert_eq!(j["endedDate"], Value::Null);
    assert_eq!(j["referrer"]["medium"], "search");
    assert_eq!(j["referrer"]["name"], "Google");
    assert_eq!(j["referrer"]["hostname"], "www.google.com");
    assert_eq!(j["referrer"]["domain"], "google.com");
    assert_eq!(j["referrer"]["pathname"], "/search");
    assert_eq!(j["referrer"]["queryString"], "q=trail+running+shoes&hl=en");
    assert_eq!(j["referrer"]["keywords"], "trail running shoes");
    assert_eq!(
        j["searchTerms"],
        json!(["trail running shoes", "red trail shoes"])
    );
    let m = &j["mktCampaign"];
    assert_eq!(
        (
            m["source"].as_str(),
            m["medium"].as_str(),
            m["name"].as_str()
        ),
        (Some("google"), Some("cpc"), Some("spring_sale"))
    );
    assert_eq!(
        (
            m["term"].as_str(),
            m["clickId"].as_str(),
            m["network"].as_str()
        ),
        (Some("trail shoes"), Some("Cj0KCQiA4NWrBhD"), Some("google"))
    );
    let last = &j["lastPage"];
    assert_eq!(last["url"], "http://127.0.0.1/shop/cart#summary");
    assert_eq!(
        (
            last["title"].as_str(),
            last["pathname"].as_str(),
            last["fragment"].as_str()
        ),
        (Some("Cart"), Some("/shop/cart"), Some("summary"))
    );
    assert_eq!(
        (
            last["hostname"].as_str(),
            last["lang"].as_str(),
            last["keywords"].as_str()
        ),
        (Some("127.0.0.1"), Some("en"), Some("shoes, trail"))
    );
    assert_eq!(last["breadcrumb"], json!(["shop", "cart"]));
    assert_eq!(
        j["attributes"]["sku"],
        json!({"dataType": "string", "value": "TR-10"})
    );
    assert_eq!(
        j["attributes"]["qty"],
        json!({"dataType": "integer", "value": "2"})
    );
    assert_eq!(
        j["attributes"]["coupon"],
        json!({"dataType": "boolean", "value": "true"})
    );
    assert_eq!(
        j["attributeLists"]["sizes"],
        json!({"dataType": "integer", "values": ["42", "43"]})
    );
    assert_eq!(
        (
            j["browser"]["family"].as_str(),
            j["browser"]["lang"].as_str()
        ),
        (Some("Chrome"), Some("en-US"))
    );
    assert_eq!(
        (
            j["browser"]["viewWidth"].as_u64(),
            j["browser"]["featuresWebrtc"].as_bool()
        ),
        (Some(1280), Some(true))
    );
    assert_eq!(
        (
            j["device"]["category"].as_str(),
            j["device"]["osFamily"].as_str()
        ),
        (Some("desktop"), Some("Linux"))
    );
    assert_eq!(
        (
            j["device"]["screenWidth"].as_u64(),
            j["device"]["isMobile"].as_bool()
        ),
        (Some(1920), Some(false))
    );
    assert_eq!(j["ipAddress"], "127.0.0.1");
    assert_eq!(
        (j["geolocation"].clone(), j["ipOrganization"].clone()),
        (Value::Null, Value::Null),
        "no --geoip"
    );
    assert_eq!(j["userAgentString"], common::CHROME_UA);
    assert_eq!(j["sdkLibrary"]["name"], "covisit-web");
    assert!(j["idleDate"].as_str().unwrap() < j["awayDate"].as_str().unwrap());
    // Linked to the co-browse session.
    assert_eq!(j["conversation"]["id"], session_id.as_str());
    assert_eq!(
        j["conversationChannels"],
        json!([{"type": "cobrowse", "messageType": null, "platform": "covisit"}])
    );
    assert_eq!(j["originatingDirection"], "outbound");
    assert_eq!(j["lastConnectedUser"]["id"], agent.welcome["agent"]["id"]);
    assert_eq!(j["lastUserDisconnectType"], "client");
    let id = j["id"].as_str().unwrap();
    assert_eq!(j["selfUri"], format!("/api/v1/journey/sessions/{id}"));
    let rest = server.rest("sk_demo");
    let (status, one) = rest.get(&format!("/api/v1/journey/sessions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(&one, j);

    // The analytics export of that session.
    let (status, c) = rest
        .get(&format!(
            "/api/v1/analytics/conversations/{session_id}/details"
        ))
        .await;
    assert_eq!(status, 200, "{c}");
    assert_seed_fields("AnalyticsConversation", &c);
    assert_eq!(c["conversationId"], session_id.as_str());
    assert_eq!(
        (
            c["originatingDirection"].as_str(),
            c["conversationInitiator"].as_str()
        ),
        (Some("outbound"), Some("agent"))
    );
    assert!(c["conversationEnd"].is_string());
    let parts = c["participants"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    let customer = &parts[0]["sessions"][0];
    assert_eq!(parts[0]["purpose"], "customer");
    assert_eq!(customer["mediaType"], "cobrowse");
    assert_eq!(customer["cobrowseRole"], "sharer");
    assert_eq!(customer["cobrowseRoomId"], session_id.as_str());
    assert_eq!(customer["journeyCustomerId"], short_id.as_str());
    assert_eq!(customer["journeyCustomerIdType"], "cookie");
    assert_eq!(customer["journeyCustomerSessionId"], id);
    assert_eq!(customer["journeyCustomerSessionIdType"], "web");
    assert_eq!(customer["authenticated"], true);
    assert_eq!(customer["sharingScreen"], true);
    assert_eq!(customer["provider"], "covisit");
    let seg_types: Vec<&str> = customer["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["segmentType"].as_str())
        .collect();
    assert_eq!(seg_types, ["alert", "interact"]);
    assert_eq!(customer["segments"][1]["disconnectType"], "client");
    let agent_part = &parts[1];
    assert_eq!(
        (
            agent_part["purpose"].as_str(),
            agent_part["participantName"].as_str()
        ),
        (Some("agent"), Some("Grace"))
    );
    assert_eq!(agent_part["userId"], agent.welcome["agent"]["id"]);
    let a = &agent_part["sessions"][0];
    assert_eq!(a["cobrowseRole"], "viewer");
    assert_eq!(a["peerId"], customer["sessionId"]);
    assert_eq!(customer["peerId"], a["sessionId"]);
    assert_eq!(
        (a["requestedRoutings"].clone(), a["usedRouting"].as_str()),
        (json!(["Manual"]), Some("Manual"))
    );
    let metric = |name: &str| {
        a["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| m["value"].as_u64().unwrap())
    };
    assert_eq!(metric("nOffered"), Some(1));
    assert_eq!(metric("nConnected"), Some(1));
    assert!(metric("tAlert").is_some() && metric("tAnswered").is_some());
    // How long it was connected (the arithmetic is unit-tested in core::analytics).
    assert!(metric("tConnected").is_some(), "{:?}", a["metrics"]);
    assert!(metric("tHandle").unwrap() >= metric("tConnected").unwrap());
    assert_eq!(a["ani"], Value::Null, "voice fields are null");
}

#[tokio::test]
async fn beacon_events_are_kept_and_bad_beacons_get_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let (short_id, connection, secret) = (
        visitor.short_id(),
        visitor.connection_id(),
        visitor.secret(),
    );
    let t = now_ms();
    track(
        &mut visitor,
        vec![page(t, "http://127.0.0.1/shop/", None, "Shop")],
    )
    .await;
    // The page is leaving: its last events go by beacon, as text/plain, from the page.
    let client = reqwest::Client::new();
    let post_from = |body: String, origin: Option<&str>| {
        let mut r = client
            .post(server.url("/api/v1/journey/beacon"))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("user-agent", common::CHROME_UA);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.body(body).send()
    };
    let post = |body: String| post_from(body, Some(common::PAGE_ORIGIN));
    let body = json!({"api_key": "pk_demo", "short_id": short_id, "uniqueConnectionId": connection, "visitor_secret": secret,
        "sent_at": now_ms(), "events": [custom(now_ms(), "clicked_buy", json!({"sku": "TR-9"})),
        page(now_ms(), "http://127.0.0.1/payment.html", Some("http://127.0.0.1/shop/"), "Payment")]});
    let r = post(body.to_string()).await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    let list = journeys(&server, &short_id).await;
    assert_eq!(list.len(), 1);
    assert_eq!(
        (
            list[0]["eventCount"].as_u64(),
            list[0]["pageviewCount"].as_u64()
        ),
        (Some(3), Some(2))
    );
    assert_eq!(list[0]["lastPage"]["pathname"], "/payment.html");
    assert_eq!(list[0]["attributes"]["sku"]["value"], "TR-9");
    // After the socket is gone, a beacon without a connection still counts.
    visitor.close().await;
    let late = json!({"api_key": "pk_demo", "short_id": short_id, "uniqueConnectionId": null, "visitor_secret": secret,
        "sent_at": now_ms(), "events": [custom(now_ms(), "left", json!({}))]});
    assert_eq!(post(late.to_string()).await.unwrap().status().as_u16(), 204);
    assert_eq!(journeys(&server, &short_id).await[0]["eventCount"], 4);

    let cases = [
        ("not json".to_string(), 400, "bad_json"),
        (json!({"api_key": "pk_demo"}).to_string(), 400, "bad_json"),
        (json!({"api_key": "pk_nope", "short_id": short_id, "sent_at": 1, "events": []}).to_string(), 401, "invalid_api_key"),
        (json!({"api_key": "sk_demo", "short_id": short_id, "sent_at": 1, "events": []}).to_string(), 401, "invalid_api_key"),
        (json!({"api_key": "pk_demo", "short_id": "nobody", "sent_at": 1, "events": []}).to_string(), 404, "unknown_visitor"),
        // Naming the visitor is not being it: without its secret, or with another, nothing.
        (json!({"api_key": "pk_demo", "short_id": short_id, "sent_at": 1, "events": [custom(1, "forged", json!({}))]}).to_string(), 401, "invalid_visitor_secret"),
        (json!({"api_key": "pk_demo", "short_id": short_id, "visitor_secret": "0".repeat(64), "sent_at": 1, "events": [custom(1, "forged", json!({}))]}).to_string(), 401, "invalid_visitor_secret"),
        (json!({"api_key": "pk_demo", "short_id": short_id, "visitor_secret": secret, "uniqueConnectionId": "c_other", "sent_at": 1, "events": []}).to_string(), 404, "unknown_connection"),
        (json!({"api_key": "pk_demo", "short_id": short_id, "visitor_secret": secret, "sent_at": 1, "events": [custom(1, "bad/name", json!({}))]}).to_string(), 400, "invalid_event_name"),
        (json!({"api_key": "pk_demo", "short_id": short_id, "visitor_secret": secret, "sent_at": 1, "events": [custom(1, "e", json!({"a": {"b": 1}}))]}).to_string(), 400, "invalid_attributes"),
        (json!({"api_key": "pk_demo", "short_id": short_id, "visitor_secret": secret, "sent_at": 1, "events": [page(1, "javascript:alert(1)", None, "x")]}).to_string(), 400, "invalid_page_view"),
        (json!({"api_key": "pk_demo", "short_id": short_id, "visitor_secret": secret, "sent_at": 1, "events": vec![custom(1, "e", json!({})); 101]}).to_string(), 400, "too_many_events"),
        ("x".repeat(70_000), 413, "payload_too_large"),
    ];
    for (body, status, code) in cases {
        let r = post(body.clone()).await.unwrap();
        assert_eq!(
            r.status().as_u16(),
            status,
            "{}",
            &body[..body.len().min(120)]
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
    }
    // A page of another origin, a look-alike, or no Origin at all: refused.
    let valid = json!({"api_key": "pk_demo", "short_id": short_id, "visitor_secret": secret,
        "sent_at": now_ms(), "events": [custom(now_ms(), "from_elsewhere", json!({}))]});
    for origin in [
        Some("https://evil.test"),
        Some("http://127.0.0.1.evil.test"),
        Some("null"),
        None,
    ] {
        let r = post_from(valid.to_string(), origin).await.unwrap();
        assert_eq!(r.status().as_u16(), 403, "{origin:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "origin_not_allowed", "{v}");
    }
    // Nothing of the refused beacons was stored.
    assert_eq!(journeys(&server, &short_id).await[0]["eventCount"], 4);
}

#[tokio::test]
async fn bad_track_frames_are_refused_whole_and_the_socket_survives() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let short_id = visitor.short_id();
    let t = now_ms();
    let frames = [
        (
            json!({"type": "track", "sent_at": t, "events": vec![custom(t, "e", json!({})); 101]}),
            "too_many_events",
        ),
        (
            json!({"type": "track", "sent_at": t, "events": [page(t, "http://127.0.0.1/", None, "ok"), custom(t, "", json!({}))]}),
            "invalid_event_name",
        ),
        (
            json!({"type": "track", "sent_at": t, "events": [custom(t, "e", json!({"x": null}))]}),
            "invalid_attributes",
        ),
        (
            json!({"type": "track", "sent_at": t, "events": [page(t, "/relative", None, "x")]}),
            "invalid_page_view",
        ),
        (
            json!({"type": "track", "sent_at": "soon", "events": []}),
            "malformed_frame",
        ),
        (
            json!({"type": "track", "sent_at": t, "events": [{"kind": "teleport", "at": t}]}),
            "malformed_frame",
        ),
    ];
    for (frame, code) in frames {
        visitor.send(frame).await;
        assert_eq!(error_code(&mut visitor).await, code);
    }
    assert!(
        journeys(&server, &short_id).await.is_empty(),
        "refused batches store nothing"
    );
    track(&mut visitor, vec![custom(t, "still_alive", json!({}))]).await;
    assert_eq!(journeys(&server, &short_id).await.len(), 1);
}

#[tokio::test]
async fn inactivity_past_the_timeout_opens_a_new_journey_session() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        &[
            ("COVISIT_JOURNEY_TIMEOUT_SECONDS", "1"),
            ("COVISIT_JOURNEY_IDLE_SECONDS", "1"),
        ],
    );
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let short_id = visitor.short_id();
    // Events carry the page's clock: one from 5 s ago (the page queued it, e.g. while
    // offline) is placed 5 s in the past, so it timed out already (timeout 1 s).
    track(
        &mut visitor,
        vec![page(
            now_ms() - 5_000,
            "http://127.0.0.1/a?utm_campaign=first",
            Some("https://t.co/abc"),
            "A",
        )],
    )
    .await;
    let before = journeys(&server, &short_id).await;
    assert_eq!(before.len(), 1);
    assert!(
        before[0]["endedDate"].is_string(),
        "timed out: {}",
        before[0]
    );
    // The next one, 2 s old: past the timeout after the first (a new journey session),
    // and itself timed out by now.
    track(
        &mut visitor,
        vec![page(
            now_ms() - 2_000,
            "http://127.0.0.1/b",
            Some("http://127.0.0.1/a"),
            "B",
        )],
    )
    .await;
    let list = journeys(&server, &short_id).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let (new, old) = (&list[0], &list[1]);
    assert_eq!(new["referrer"]["medium"], "internal");
    assert_eq!(new["mktCampaign"], Value::Null);
    assert_eq!(old["referrer"]["medium"], "social");
    assert_eq!(old["referrer"]["name"], "Twitter");
    assert_eq!(old["mktCampaign"]["name"], "first");
    assert!(old["endedDate"].as_str().unwrap() <= new["createdDate"].as_str().unwrap());
    for j in &list {
        assert_seed_fields("JourneySession", j);
    }
    // Both timed out before the erasure: it keeps the moments they did (the configured
    // timeout, not the default 30 minutes, nor the erasure's time).
    let timed_out: Vec<Value> = journeys(&server, &short_id)
        .await
        .iter()
        .map(|j| j["endedDate"].clone())
        .collect();
    assert!(timed_out.iter().all(Value::is_string), "{timed_out:?}");
    // Erasing the visitor ends its journeys and drops what identifies the person.
    let (status, _) = server
        .rest("sk_demo")
        .call("DELETE", &format!("/api/v1/visitors/{short_id}"), None)
        .await;
    assert_eq!(status, 200);
    let erased = journeys(&server, &short_id).await;
    assert_eq!(erased.len(), 2);
    let ended: Vec<Value> = erased.iter().map(|j| j["endedDate"].clone()).collect();
    assert_eq!(ended, timed_out);
    for j in &erased {
        assert!(j["endedDate"].is_string());
        assert_eq!(
            (
                j["ipAddress"].clone(),
                j["lastPage"].clone(),
                j["userAgentString"].clone()
            ),
            (Value::Null, Value::Null, Value::Null)
        );
        assert_seed_fields("JourneySession", j);
    }
}

#[tokio::test]
async fn analytics_query_pages_and_filters_and_refuses_bad_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let from = covisit::core::Millis(now_ms() - 1000).to_iso8601();
    let mut ada = server.visitor(None, None, true, json!({})).await;
    let mut bob = server.visitor(None, None, true, json!({})).await;
    let (ada_id, bob_id) = (ada.short_id(), bob.short_id());
    let mut grace = server.agent("sk_demo", "Grace").await;
    let mut sam = server.agent("sk_demo", "Sam").await;
    // 1: Grace with Ada, Ada ends (client). 2: Sam with Bob, Sam ends (peer).
    // 3: Grace with Bob, Bob denies (client).
    let s1 = session_with(&mut grace, &mut ada, &ada_id).await;
    ada.send(json!({"type": "authorize"})).await;
    grace.expect_status(&s1, "active").await;
    ada.send(json!({"type": "end"})).await;
    grace.expect_status(&s1, "ended").await;
    let s2 = session_with(&mut sam, &mut bob, &bob_id).await;
    bob.send(json!({"type": "authorize"})).await;
    sam.expect_status(&s2, "active").await;
    sam.send(json!({"type": "end_session", "session_id": s2}))
        .await;
    sam.expect_status(&s2, "ended").await;
    let s3 = session_with(&mut grace, &mut bob, &bob_id).await;
    bob.send(json!({"type": "deny"})).await;
    grace.expect_status(&s3, "ended").await;
    let to = covisit::core::Millis(now_ms() + 1000).to_iso8601();
    let interval = format!("{from}/{to}");
    let rest = server.rest("sk_demo");
    let query = |body: Value| {
        let rest = &rest;
        async move {
            rest.post(
                "/api/v1/analytics/conversations/details/query",
                &body.to_string(),
            )
            .await
        }
    };
    let ids = |v: &Value| -> Vec<String> {
        v["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["conversationId"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, all) = query(json!({"interval": interval})).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["totalHits"], 3);
    assert_eq!(ids(&all), [s1.clone(), s2.clone(), s3.clone()]);
    for c in all["conversations"].as_array().unwrap() {
        assert_seed_fields("AnalyticsConversation", c);
    }
    let (_, p1) =
        query(json!({"interval": interval, "paging": {"pageSize": 2, "pageNumber": 1}})).await;
    let (_, p2) =
        query(json!({"interval": interval, "paging": {"pageSize": 2, "pageNumber": 2}})).await;
    assert_eq!(
        (ids(&p1), ids(&p2)),
        (vec![s1.clone(), s2.clone()], vec![s3.clone()])
    );
    assert_eq!(p2["totalHits"], 3);
    let (_, desc) =
        query(json!({"interval": interval, "order": "desc", "paging": {"pageSize": 1}})).await;
    assert_eq!(ids(&desc), vec![s3.clone()]);
    let (_, by_bob) = query(json!({"interval": interval, "filters": {"visitorId": bob_id}})).await;
    assert_eq!(ids(&by_bob), [s2.clone(), s3.clone()]);
    let grace_id = grace.welcome["agent"]["id"].as_str().unwrap();
    let (_, by_grace) =
        query(json!({"interval": interval, "filters": {"agentId": grace_id}})).await;
    assert_eq!(ids(&by_grace), [s1.clone(), s3.clone()]);
    // Paged after the filter that needs the conversations built, newest first.
    let (_, grace_p2) = query(
        json!({"interval": interval, "filters": {"agentId": grace_id},
        "order": "desc", "paging": {"pageSize": 1, "pageNumber": 2}}),
    )
    .await;
    assert_eq!(
        (ids(&grace_p2), &grace_p2["totalHits"]),
        (vec![s1.clone()], &json!(2))
    );
    let (_, bob_p2) = query(
        json!({"interval": interval, "filters": {"visitorId": bob_id},
        "paging": {"pageSize": 1, "pageNumber": 2}}),
    )
    .await;
    assert_eq!(
        (ids(&bob_p2), &bob_p2["totalHits"]),
        (vec![s3.clone()], &json!(2))
    );
    let (_, peer) =
        query(json!({"interval": interval, "filters": {"disconnectType": "peer"}})).await;
    assert_eq!(ids(&peer), vec![s2.clone()]);
    let (_, both) = query(json!({"interval": interval, "filters": {"agentId": grace_id, "disconnectType": "client", "visitorId": bob_id}})).await;
    assert_eq!(ids(&both), vec![s3.clone()]);
    // The denied request never went live: alerting only, no connection metric.
    let denied = &both["conversations"][0]["participants"][1]["sessions"][0];
    assert!(denied["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["name"] != "nConnected"));
    let (_, before) = query(json!({"interval": format!("2020-01-01T00:00:00.000Z/{from}")})).await;
    assert_eq!(before["totalHits"], 0);

    for (body, code) in [
        (json!({}), "invalid_argument"),
        (json!({"interval": "yesterday"}), "invalid_argument"),
        (
            json!({"interval": format!("{to}/{from}")}),
            "invalid_argument",
        ),
        (
            json!({"interval": interval, "filters": {"disconnectType": "transport.failure"}}),
            "invalid_argument",
        ),
        (
            json!({"interval": interval, "filters": {"queueId": "q"}}),
            "invalid_argument",
        ),
        (
            json!({"interval": interval, "paging": {"pageSize": 0}}),
            "invalid_argument",
        ),
        (
            json!({"interval": interval, "paging": {"pageSize": 101}}),
            "invalid_argument",
        ),
        (
            json!({"interval": interval, "order": "sideways"}),
            "invalid_argument",
        ),
        (
            json!({"interval": interval, "segmentFilters": []}),
            "invalid_argument",
        ),
        (json!([1, 2]), "invalid_argument"),
    ] {
        let (status, v) = query(body.clone()).await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}: {v}"
        );
    }
    let (status, v) = rest
        .post("/api/v1/analytics/conversations/details/query", "{nope")
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("bad_json"))
    );
    let (status, v) = rest
        .get("/api/v1/analytics/conversations/s_missing/details")
        .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, v) = rest.get("/api/v1/journey/sessions/nope").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, v) = rest.get("/api/v1/journey/sessions?visitorId=x").await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_argument"))
    );
    let (status, _) = server.rest("pk_demo").get("/api/v1/journey/sessions").await;
    assert_eq!(status, 403);
    let (status, _) = server
        .rest("sk_wrong")
        .get(&format!("/api/v1/analytics/conversations/{s1}/details"))
        .await;
    assert_eq!(status, 401);
}

/// Beacons racing `DELETE /visitors/{id}` must not write the person's data back: no
/// journey session with an IP or page, no event, neither stored nor shown by REST.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn beacons_racing_an_erasure_do_not_bring_the_data_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = reqwest::Client::new();
    for _ in 0..8 {
        let mut visitor = server.visitor(None, None, true, json!({})).await;
        let (short_id, secret) = (visitor.short_id(), visitor.secret());
        track(
            &mut visitor,
            vec![page(now_ms(), "http://127.0.0.1/private", None, "P")],
        )
        .await;
        visitor.close().await;
        let mut tasks = Vec::new();
        for i in 0..10 {
            let body = json!({"api_key": "pk_demo", "short_id": short_id, "visitor_secret": secret, "sent_at": now_ms(),
                "events": [page(now_ms(), &format!("http://127.0.0.1/b{i}"), None, "B")]});
            let request = client
                .post(server.url("/api/v1/journey/beacon"))
                .header("content-type", "text/plain")
                .header("origin", common::PAGE_ORIGIN)
                .body(body.to_string());
            tasks.push(tokio::spawn(async move {
                request
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }));
            if i == 5 {
                let rest = server.rest("sk_demo");
                let path = format!("/api/v1/visitors/{short_id}");
                tasks.push(tokio::spawn(async move {
                    rest.call("DELETE", &path, None).await.0
                }));
            }
        }
        for t in tasks {
            let status = t.await.unwrap();
            assert!([200, 204, 404].contains(&status), "{status}");
        }
        // Every request was answered: whatever was taken before the erasure is erased.
        assert_eq!(
            stored_personal_rows(&server, &short_id),
            (0, 0),
            "stored personal data of {short_id} after erasure"
        );
        for j in journeys(&server, &short_id).await {
            assert_eq!(
                (&j["ipAddress"], &j["lastPage"]),
                (&Value::Null, &Value::Null),
                "{j}"
            );
            assert!(j["endedDate"].is_string(), "{j}");
        }
    }
}

/// (journey sessions with an IP or a page, journey events) of a visitor, straight from
/// the database file.
fn stored_personal_rows(server: &Server, short_id: &str) -> (i64, i64) {
    let db = rusqlite::Connection::open(&server.db).expect("the database opens");
    db.query_row(
        "SELECT (SELECT count(*) FROM journey_sessions WHERE visitor_id = ?1
           AND (json_extract(data, '$.ipAddress') IS NOT NULL OR json_extract(data, '$.lastPage') IS NOT NULL)),
         (SELECT count(*) FROM journey_events WHERE visitor_id = ?1)",
        [short_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("the query runs")
}

/// A page URL or referrer carrying a user name and password (`https://user:pw@host/`):
/// neither the journey session nor the stored events keep them.
#[tokio::test]
async fn credentials_in_urls_are_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut visitor = server.visitor(None, None, true, json!({})).await;
    let short_id = visitor.short_id();
    track(
        &mut visitor,
        vec![page(
            now_ms(),
            "http://alice:pw-page@127.0.0.1/shop/?q=boots",
            Some("https://bob:pw-referrer@www.google.com/search?q=boots"),
            "Shop",
        )],
    )
    .await;
    let client = reqwest::Client::new();
    let beacon = json!({"api_key": "pk_demo", "short_id": short_id, "visitor_secret": visitor.secret(), "sent_at": now_ms(),
        "events": [page(now_ms(), "http://carol:pw-beacon@127.0.0.1/cart", Some("https://dave:pw-refused@/"), "Cart")]});
    let r = client
        .post(server.url("/api/v1/journey/beacon"))
        .header("content-type", "text/plain")
        .header("origin", common::PAGE_ORIGIN)
        .body(beacon.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let list = journeys(&server, &short_id).await;
    let j = &list[0];
    assert_eq!(
        j["referrer"]["url"],
        "https://www.google.com/search?q=boots"
    );
    assert_eq!(j["referrer"]["medium"], "search");
    assert_eq!(j["lastPage"]["url"], "http://127.0.0.1/cart");
    assert!(!j.to_string().contains("pw-"), "{j}");
    let db = rusqlite::Connection::open(&server.db).unwrap();
    let mut stmt = db
        .prepare("SELECT data FROM journey_events WHERE visitor_id = ?1")
        .unwrap();
    let events: Vec<String> = stmt
        .query_map([&short_id], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(events.len(), 2);
    for e in &events {
        assert!(!e.contains("pw-"), "{e}");
        assert!(!e.contains('@'), "{e}");
    }
}
