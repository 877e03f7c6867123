//! The store conformance suite: every [`Store`] and [`Directory`] method, run against
//! SQLite (`store_suite::sqlite::…`) and a throwaway PostgreSQL
//! (`store_suite::postgres::…`) by the same test bodies. What SQLite does is the
//! contract: its ordering, its `None`s, its errors, which writes of a batch fail.
//!
//! Tests only (`main.rs` declares it under `#[cfg(test)]`), so it may name any module.

use std::sync::Arc;

use async_trait::async_trait;
use covisit::core::config::Permissions;
use covisit::core::derive;
use covisit::core::model::{
    Address, Agent, AgentNote, Browser, CobrowseRole, Cobrowsesession, CommunicationState,
    Connection, ConnectionStatus, Device, DisconnectType, FullTabStatus, JourneyPage,
    JourneySession, QualityFeedback, SdkLibrary, Segment, SegmentType, Session, SessionLastEvent,
    SessionSource, Visitor,
};
use covisit::core::Millis;
use serde_json::{json, Map};

use crate::auth::Role;
use crate::directory::{
    AuditQuery, AuthSession, CreateUserError, Directory, TokenKind, UserRecord,
};
use crate::pg_test_server::PgServer;
use crate::store::{
    erase_journey, slot_of, AuditEntry, JourneyEventRow, PgStore, RecordingChunk, RecordingStart,
    SqliteStore, Store, Write,
};

/// A store under test, its directory (the same object), raw SQL on its database, and
/// what must live as long as it (the temporary folder, the PostgreSQL server).
pub(crate) struct Backend {
    pub store: Arc<dyn Store>,
    pub dir: Arc<dyn Directory>,
    raw: Box<dyn Raw>,
    _keep: Box<dyn std::any::Any + Send>,
}

/// SQL that both SQLite and PostgreSQL accept, straight on the database: to read what
/// is really stored, and to try what must be refused.
#[async_trait]
trait Raw: Send + Sync {
    /// The first column of the first row, as text.
    async fn text(&self, sql: &str) -> Option<String>;
    /// Runs the statement; the error's text when it fails.
    async fn exec(&self, sql: &str) -> Result<(), String>;
}

struct SqliteRaw(SqliteStore);

#[async_trait]
impl Raw for SqliteRaw {
    async fn text(&self, sql: &str) -> Option<String> {
        let sql = sql.to_string();
        self.0
            .run(move |c| {
                use rusqlite::OptionalExtension;
                Ok(c.query_row(&sql, [], |r| r.get::<_, String>(0))
                    .optional()?)
            })
            .await
            .expect("raw SQLite query")
    }

    async fn exec(&self, sql: &str) -> Result<(), String> {
        let sql = sql.to_string();
        self.0
            .run(move |c| Ok(c.execute_batch(&sql)?))
            .await
            .map_err(|e| e.to_string())
    }
}

struct PgRaw(PgStore);

#[async_trait]
impl Raw for PgRaw {
    async fn text(&self, sql: &str) -> Option<String> {
        let c = self.0.pool().get().await.expect("a pooled connection");
        c.query_opt(sql, &[])
            .await
            .expect("raw PostgreSQL query")
            .map(|r| r.get::<_, String>(0))
    }

    async fn exec(&self, sql: &str) -> Result<(), String> {
        let c = self.0.pool().get().await.expect("a pooled connection");
        c.batch_execute(sql).await.map_err(|e| {
            e.as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string())
        })
    }
}

pub(crate) fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("covisit.db")).expect("SQLite opens");
    Backend {
        store: Arc::new(store.clone()),
        dir: Arc::new(store.clone()),
        raw: Box::new(SqliteRaw(store)),
        _keep: Box::new(dir),
    }
}

pub(crate) async fn postgres() -> Backend {
    let server = PgServer::start();
    let store = PgStore::open(&server.url(), None)
        .await
        .expect("PostgreSQL opens");
    Backend {
        store: Arc::new(store.clone()),
        dir: Arc::new(store.clone()),
        raw: Box::new(PgRaw(store)),
        _keep: Box::new(server),
    }
}

/// Each suite as a test on each backend.
macro_rules! conformance {
    ($($suite:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $suite() {
                    super::$suite(&super::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $suite() {
                    super::$suite(&super::postgres().await).await;
                }
            )*
        }
    };
}

conformance!(
    visitors_are_upserted_within_their_account,
    visitor_secrets_tell_missing_from_legacy_visitors,
    seed_objects_round_trip_byte_for_byte,
    sessions_are_read_listed_and_found_by_interval,
    communications_list_the_sharer_then_viewers_in_join_order,
    a_failing_write_fails_alone_and_the_batch_commits,
    journey_sessions_newest_first_ties_by_insertion,
    erasing_a_visitor_keeps_counts_and_drops_personal_data,
    recovery_after_restart_ends_live_sessions,
    recovering_slots_touches_only_their_visitors,
    connections_name_their_first_visitor,
    accounts_and_keys,
    users_are_unique_by_email_and_username,
    sign_in_sessions,
    one_time_links_are_used_once_and_expire,
    the_audit_log_filters_pages_and_is_append_only,
    recordings_are_kept_in_order_finalised_expired_and_removed,
    recordings_of_erased_visitors_and_restarts,
    the_signing_key_is_made_once,
);

// ----- fixtures -----------------------------------------------------------------------

const T0: Millis = Millis(1_795_255_445_000);

fn at(seconds: u64) -> String {
    T0.plus_seconds(seconds).to_iso8601()
}

fn visitor(short_id: &str) -> Visitor {
    Visitor {
        added_at: at(0),
        api_key: "pk_demo".into(),
        browser_name: None,
        call_name: None,
        device_name: None,
        device_type: None,
        email: None,
        identities: vec![],
        integration: None,
        ip_address: "203.0.113.7".into(),
        is_in_session: false,
        is_online: false,
        is_supported: true,
        missing_capabilities: Vec::new(),
        is_waiting_for_call: false,
        js_configuration: false,
        last_seen_at: at(0),
        last_url: None,
        location_city: None,
        location_country_name: None,
        location_country: None,
        lookup_code: None,
        name: None,
        nickname: short_id.into(),
        short_id: short_id.into(),
        tags: vec![],
        unique_id: None,
        watch_link: format!("http://127.0.0.1:8080/agent/#/visitors/{short_id}"),
        sdk: "web".into(),
    }
}

fn online(short_id: &str) -> Visitor {
    Visitor {
        is_online: true,
        is_in_session: true,
        is_waiting_for_call: true,
        ..visitor(short_id)
    }
}

fn session(id: &str, visitor_id: &str, started_at: String) -> Session {
    Session {
        agents: vec![],
        agent_notes: vec![],
        call_length_seconds: 0,
        call_name: None,
        ended_at: None,
        features_used: vec![],
        formatted_call_length: "00:00".into(),
        formatted_length: "00:00".into(),
        metadata: Map::new(),
        quality_feedback: vec![],
        visitor_agent_feedback: None,
        visitor_agent_rating: None,
        visitor_email: None,
        visitor_ip_address: None,
        visitor_unique_id: None,
        id: id.into(),
        length_seconds: 0,
        on_premise: true,
        public_video_url: None,
        secret_video_url: None,
        session_authorized: false,
        source: None,
        start_url: None,
        started_at,
        video_status: None,
        visitor_id: visitor_id.into(),
        went_live: false,
    }
}

fn communication(id: &str, session_id: &str, role: CobrowseRole) -> Cobrowsesession {
    Cobrowsesession {
        state: CommunicationState::Connected,
        initial_state: CommunicationState::Alerting,
        id: id.into(),
        disconnect_type: None,
        self_address: Address::default(),
        cobrowse_session_id: session_id.into(),
        cobrowse_role: role,
        controlling: if role == CobrowseRole::Viewer {
            vec!["v_1".into()]
        } else {
            vec![]
        },
        viewer_url: None,
        provider_event_time: at(0),
        start_alerting_time: Some(at(0)),
        connected_time: Some(at(5)),
        disconnected_time: None,
        provider: "covisit".into(),
        peer_id: None,
        segments: vec![
            Segment {
                start_time: at(0),
                end_time: Some(at(5)),
                segment_type: SegmentType::Alert,
                how_ended: Some("answered".into()),
                disconnect_type: None,
            },
            Segment {
                start_time: at(5),
                end_time: None,
                segment_type: SegmentType::Interact,
                how_ended: None,
                disconnect_type: None,
            },
        ],
        wrapup: None,
        after_call_work: None,
        after_call_work_required: false,
    }
}

fn connection(id: &str) -> Connection {
    Connection {
        unique_connection_id: id.into(),
        current_url: Some("https://shop.example/cart?q=ü".into()),
        active_since: at(0),
        status: ConnectionStatus::Active,
        expected_disconnect: None,
        has_focus: true,
        last_focus_at: Some(at(1)),
        screen_width: 1280,
        screen_height: 800,
        audio_supported: false,
        full_tab_status: FullTabStatus::Off,
        permissions: Permissions::default(),
    }
}

fn journey(id: &str, visitor_id: &str, created: String) -> JourneySession {
    JourneySession {
        id: id.into(),
        external_contact: None,
        customer_id: Some(visitor_id.into()),
        customer_id_type: Some("cookie".into()),
        session_type: "web".into(),
        external_id: None,
        external_url: None,
        short_id: "4242".into(),
        outcome_achievements: vec![],
        segment_assignments: vec![],
        attributes: Map::new(),
        attribute_lists: Map::new(),
        browser: Browser::default(),
        device: Device::default(),
        geolocation: None,
        ip_address: Some("203.0.113.7".into()),
        ip_organization: None,
        last_page: Some(JourneyPage {
            url: "https://shop.example/".into(),
            title: Some("Shop".into()),
            ..JourneyPage::default()
        }),
        mkt_campaign: None,
        referrer: None,
        app: None,
        sdk_library: SdkLibrary {
            name: "covisit-web".into(),
            version: "0.1.0".into(),
        },
        network_connectivity: None,
        search_terms: vec!["shoes".into()],
        user_agent_string: Some("Mozilla/5.0".into()),
        duration_in_seconds: 0,
        event_count: 1,
        pageview_count: 1,
        screenview_count: 0,
        last_event: SessionLastEvent {
            id: format!("{id}-e"),
            event_name: "page_viewed".into(),
            created_date: created.clone(),
        },
        conversation: None,
        last_connected_queue: None,
        last_connected_user: None,
        last_user_disposition: None,
        conversation_channels: vec![],
        originating_direction: None,
        conversation_subject: None,
        last_user_disconnect_type: None,
        last_acd_outcome: None,
        authenticated: false,
        division_ids: vec![],
        last_screen: None,
        self_uri: format!("/api/v1/journey/sessions/{id}"),
        created_date: created.clone(),
        ended_date: None,
        away_date: created.clone(),
        idle_date: created,
    }
}

fn event(id: &str, j: &JourneySession, account_id: i64, data: &str) -> Write {
    Write::JourneyEvent(Box::new(JourneyEventRow {
        id: id.into(),
        journey_session_id: j.id.clone(),
        account_id,
        visitor_id: j.customer_id.clone().unwrap_or_default(),
        kind: "web",
        event_name: "page_viewed".into(),
        created_at: j.created_date.clone(),
        data: data.into(),
    }))
}

fn audit(account_id: i64, at: String, actor: &str, action: &str, result: &str) -> Write {
    Write::Audit(Box::new(AuditEntry {
        id: 0,
        account_id,
        at,
        actor: actor.into(),
        action: action.into(),
        target: Some("s_1".into()),
        ip: Some("198.51.100.4".into()),
        result: result.into(),
    }))
}

fn user(id: &str, account_id: i64, email: &str, username: &str, created_at: String) -> UserRecord {
    UserRecord {
        id: id.into(),
        account_id,
        email: email.into(),
        username: username.into(),
        name: "Ada Lovelace".into(),
        nickname: "Ada".into(),
        role: Role::Agent,
        password_hash: None,
        disabled: false,
        created_at,
    }
}

/// Writes `writes` in one batch and asserts every one of them succeeded.
async fn write_all(b: &Backend, writes: Vec<Write>) {
    let n = writes.len();
    let results = b
        .store
        .write_batch(writes)
        .await
        .expect("the batch commits");
    assert_eq!(results.len(), n, "one result per write");
    for (i, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "write {i} of the batch failed: {r:?}");
    }
}

fn vw(account_id: i64, v: &Visitor) -> Write {
    Write::Visitor(account_id, Box::new(v.clone()))
}

fn sw(account_id: i64, s: &Session, status: &str) -> Write {
    Write::Session(account_id, Box::new(s.clone()), status.into())
}

fn cw(session_id: &str, c: &Cobrowsesession) -> Write {
    Write::Communication(session_id.into(), Box::new(c.clone()))
}

fn jw(account_id: i64, j: &JourneySession) -> Write {
    Write::JourneySession(account_id, Box::new(j.clone()))
}

fn ids(sessions: &[crate::store::StoredSession]) -> Vec<&str> {
    sessions.iter().map(|s| s.session.id.as_str()).collect()
}

async fn accounts2(b: &Backend) -> (i64, i64) {
    let a = b.dir.create_account("a").await.expect("account a");
    let other = b.dir.create_account("b").await.expect("account b");
    (a, other)
}

async fn count(b: &Backend, sql_from_where: &str) -> String {
    b.raw
        .text(&format!(
            "SELECT CAST(COUNT(*) AS TEXT) FROM {sql_from_where}"
        ))
        .await
        .expect("a count")
}

// ----- Store ----------------------------------------------------------------------------

async fn visitors_are_upserted_within_their_account(b: &Backend) {
    let (a, other) = accounts2(b).await;
    let (v1, v2) = (visitor("v_1"), visitor("v_2"));
    write_all(b, vec![vw(a, &v1), vw(a, &v2)]).await;
    assert_eq!(
        b.store.get_visitor(a, "v_1").await.unwrap(),
        Some(v1.clone())
    );
    assert_eq!(b.store.get_visitor(other, "v_1").await.unwrap(), None);
    assert_eq!(b.store.get_visitor(a, "v_none").await.unwrap(), None);

    let renamed = Visitor {
        name: Some("Ada".into()),
        ..v1.clone()
    };
    write_all(b, vec![vw(a, &renamed)]).await;
    assert_eq!(
        b.store.get_visitor(a, "v_1").await.unwrap(),
        Some(renamed.clone())
    );

    // Another account naming the same short id changes nothing, and is no error.
    let hijack = Visitor {
        name: Some("Mallory".into()),
        ..v1.clone()
    };
    write_all(b, vec![vw(other, &hijack)]).await;
    assert_eq!(
        b.store.get_visitor(a, "v_1").await.unwrap(),
        Some(renamed.clone())
    );
    assert_eq!(b.store.get_visitor(other, "v_1").await.unwrap(), None);

    let mut listed = b.store.list_visitors(a).await.unwrap();
    listed.sort_by(|x, y| x.short_id.cmp(&y.short_id));
    assert_eq!(listed, vec![renamed, v2]);
    assert!(b.store.list_visitors(other).await.unwrap().is_empty());
}

async fn visitor_secrets_tell_missing_from_legacy_visitors(b: &Backend) {
    let (a, other) = accounts2(b).await;
    assert_eq!(b.store.visitor_secret_hash(a, "v_1").await.unwrap(), None);
    write_all(b, vec![vw(a, &visitor("v_1"))]).await;
    assert_eq!(
        b.store.visitor_secret_hash(a, "v_1").await.unwrap(),
        Some(None)
    );
    write_all(
        b,
        vec![
            Write::VisitorSecret("v_1".into(), "hash-1".into()),
            // No such visitor: nothing to update, and no error.
            Write::VisitorSecret("v_none".into(), "hash-2".into()),
        ],
    )
    .await;
    assert_eq!(
        b.store.visitor_secret_hash(a, "v_1").await.unwrap(),
        Some(Some("hash-1".into()))
    );
    assert_eq!(
        b.store.visitor_secret_hash(other, "v_1").await.unwrap(),
        None
    );
    // A later write of the visitor keeps its secret.
    write_all(b, vec![vw(a, &online("v_1"))]).await;
    assert_eq!(
        b.store.visitor_secret_hash(a, "v_1").await.unwrap(),
        Some(Some("hash-1".into()))
    );
}

async fn seed_objects_round_trip_byte_for_byte(b: &Backend) {
    let (a, _) = accounts2(b).await;
    // Text JSON escapes and text it does not: quotes, a line separator, an emoji,
    // a NUL (stored escaped), markup.
    let tricky = "Zoë \"Z\" \u{2028} 😀 \u{0} </script>";
    let v = Visitor {
        name: Some(tricky.into()),
        email: Some("zoe@example.com".into()),
        tags: vec!["vip".into(), tricky.into()],
        ..online("v_1")
    };
    let mut metadata = Map::new();
    metadata.insert("visitor_plan".into(), json!("pro"));
    metadata.insert("nested".into(), json!({"z": [1, 2.5, null], "a": tricky}));
    let s = Session {
        agents: vec![Agent::new("ea_1", tricky, Some("crm-1".into()))],
        agent_notes: vec![AgentNote {
            text: tricky.into(),
            by: "ea_1".into(),
        }],
        metadata,
        quality_feedback: vec![QualityFeedback {
            rating: 4.5,
            feedback: Some(tricky.into()),
            by: "v_1".into(),
        }],
        visitor_agent_rating: Some(5.0),
        source: Some(SessionSource::LookupCode),
        ..session("s_1", "v_1", at(0))
    };
    let c = communication("c_1", "s_1", CobrowseRole::Sharer);
    let conn = connection("conn_1");
    let mut j = journey("j_1", "v_1", at(0));
    j.attributes.insert(
        "plan".into(),
        json!({"dataType": "String", "value": tricky}),
    );
    let agent = Agent::new("ea_1", tricky, None);
    // An event is stored as the SDK sent it: spacing and key order included.
    let event_text = "{\"type\":\"track\",  \"b\":1,\"a\":\"é\"}";
    write_all(
        b,
        vec![
            vw(a, &v),
            sw(a, &s, "active"),
            cw("s_1", &c),
            Write::Connection("v_1".into(), Box::new(conn.clone())),
            Write::SessionAgent("s_1".into(), Box::new(agent.clone())),
            jw(a, &j),
            event("e_1", &j, a, event_text),
        ],
    )
    .await;
    let stored = [
        ("visitors WHERE short_id = 'v_1'", serde_json::to_string(&v)),
        ("sessions WHERE id = 's_1'", serde_json::to_string(&s)),
        ("communications WHERE id = 'c_1'", serde_json::to_string(&c)),
        (
            "connections WHERE unique_connection_id = 'conn_1'",
            serde_json::to_string(&conn),
        ),
        (
            "session_agents WHERE session_id = 's_1'",
            serde_json::to_string(&agent),
        ),
        (
            "journey_sessions WHERE id = 'j_1'",
            serde_json::to_string(&j),
        ),
        (
            "journey_events WHERE id = 'e_1'",
            Ok(event_text.to_string()),
        ),
    ];
    for (from, want) in stored {
        let got = b.raw.text(&format!("SELECT data FROM {from}")).await;
        assert_eq!(
            got,
            Some(want.expect("serializes")),
            "stored JSON of {from}"
        );
    }
    let read_v = b
        .store
        .get_visitor(a, "v_1")
        .await
        .unwrap()
        .expect("visitor");
    assert_eq!(
        serde_json::to_string(&read_v).unwrap(),
        serde_json::to_string(&v).unwrap()
    );
    let read_s = b
        .store
        .get_session(a, "s_1")
        .await
        .unwrap()
        .expect("session");
    assert_eq!(
        serde_json::to_string(&read_s.session).unwrap(),
        serde_json::to_string(&s).unwrap()
    );
    assert_eq!(b.store.list_communications("s_1").await.unwrap(), vec![c]);
    assert_eq!(
        b.store.get_journey_session(a, "j_1").await.unwrap(),
        Some(j)
    );
}

async fn sessions_are_read_listed_and_found_by_interval(b: &Backend) {
    let (a, other) = accounts2(b).await;
    let s1 = session("s_1", "v_1", at(10));
    let s2 = session("s_2", "v_1", at(20));
    let s3 = session("s_3", "v_2", at(30));
    let s4 = session("s_4", "v_1", at(40));
    write_all(
        b,
        vec![
            sw(a, &s1, "authorizing"),
            sw(a, &s2, "ended"),
            sw(a, &s3, "active"),
            sw(other, &s4, "active"),
        ],
    )
    .await;
    let got = b.store.get_session(a, "s_1").await.unwrap().expect("s_1");
    assert_eq!(
        (got.session, got.status.as_str()),
        (s1.clone(), "authorizing")
    );
    assert!(b.store.get_session(other, "s_1").await.unwrap().is_none());
    assert!(b.store.get_session(a, "s_none").await.unwrap().is_none());

    let live = Session {
        session_authorized: true,
        went_live: true,
        ..s1.clone()
    };
    b.store.upsert_session(a, &live, "active").await.unwrap();
    let got = b.store.get_session(a, "s_1").await.unwrap().expect("s_1");
    assert_eq!((got.session, got.status.as_str()), (live.clone(), "active"));
    // Another account's write of the same id changes nothing, and is no error.
    b.store.upsert_session(other, &s1, "ended").await.unwrap();
    let got = b.store.get_session(a, "s_1").await.unwrap().expect("s_1");
    assert_eq!((got.session, got.status.as_str()), (live, "active"));

    assert_eq!(
        ids(&b.store.list_sessions(a, None).await.unwrap()),
        ["s_3", "s_2", "s_1"]
    );
    assert_eq!(
        ids(&b.store.list_sessions(a, Some("v_1")).await.unwrap()),
        ["s_2", "s_1"]
    );
    assert_eq!(
        ids(&b.store.list_sessions(other, None).await.unwrap()),
        ["s_4"]
    );
    assert!(b
        .store
        .list_sessions(a, Some("v_none"))
        .await
        .unwrap()
        .is_empty());

    // [from, to), oldest first, at most `limit`; a tie keeps the order of insertion.
    let s5 = session("s_5", "v_3", at(10));
    write_all(b, vec![sw(a, &s5, "ended")]).await;
    let between = |from: u64, to: u64, limit: usize| {
        let store = b.store.clone();
        async move {
            store
                .sessions_started_between(a, &at(from), &at(to), limit)
                .await
                .unwrap()
        }
    };
    assert_eq!(ids(&between(10, 30, 10).await), ["s_1", "s_5", "s_2"]);
    assert_eq!(
        ids(&between(10, 31, 10).await),
        ["s_1", "s_5", "s_2", "s_3"]
    );
    assert_eq!(ids(&between(11, 30, 10).await), ["s_2"]);
    assert_eq!(ids(&between(0, 100, 2).await), ["s_1", "s_5"]);
    assert!(between(30, 30, 10).await.is_empty());

    // Notes are appended (to any session id: the table has no reference).
    b.store.add_note("s_1", "ea_1", "first").await.unwrap();
    b.store.add_note("s_1", "ea_1", "second").await.unwrap();
    assert_eq!(count(b, "notes WHERE session_id = 's_1'").await, "2");
    // Session agents are upserted per (session, agent) and need the session.
    let agent = Agent::new("ea_1", "Ada", None);
    write_all(
        b,
        vec![
            Write::SessionAgent("s_1".into(), Box::new(agent.clone())),
            Write::SessionAgent("s_1".into(), Box::new(Agent::new("ea_1", "Ada L.", None))),
        ],
    )
    .await;
    assert_eq!(
        count(b, "session_agents WHERE session_id = 's_1'").await,
        "1"
    );
    let results = b
        .store
        .write_batch(vec![Write::SessionAgent("s_none".into(), Box::new(agent))])
        .await
        .unwrap();
    assert!(results[0].is_err(), "an agent of no session is refused");
}

async fn communications_list_the_sharer_then_viewers_in_join_order(b: &Backend) {
    let (a, _) = accounts2(b).await;
    write_all(b, vec![sw(a, &session("s_1", "v_1", at(0)), "active")]).await;
    let viewer1 = communication("c_v1", "s_1", CobrowseRole::Viewer);
    let sharer = communication("c_s", "s_1", CobrowseRole::Sharer);
    let viewer2 = communication("c_v0", "s_1", CobrowseRole::Viewer);
    write_all(b, vec![cw("s_1", &viewer1), cw("s_1", &sharer)]).await;
    write_all(b, vec![cw("s_1", &viewer2)]).await;
    assert_eq!(
        b.store.list_communications("s_1").await.unwrap(),
        vec![sharer.clone(), viewer1.clone(), viewer2.clone()]
    );
    // An update keeps a communication's place.
    let left = Cobrowsesession {
        state: CommunicationState::Disconnected,
        disconnect_type: Some(DisconnectType::Peer),
        ..viewer1
    };
    write_all(b, vec![cw("s_1", &left)]).await;
    assert_eq!(
        b.store.list_communications("s_1").await.unwrap(),
        vec![sharer, left, viewer2]
    );
    assert!(b
        .store
        .list_communications("s_none")
        .await
        .unwrap()
        .is_empty());
}

async fn a_failing_write_fails_alone_and_the_batch_commits(b: &Backend) {
    let (a, _) = accounts2(b).await;
    assert!(b.store.write_batch(vec![]).await.unwrap().is_empty());
    let j = journey("j_1", "v_1", at(0));
    let missing = journey("j_none", "v_1", at(0));
    let results = b
        .store
        .write_batch(vec![
            vw(a, &visitor("v_1")),
            // No such account.
            sw(999_999, &session("s_1", "v_1", at(0)), "active"),
            audit(a, at(1), "system", "session.requested", "ok"),
            // No such journey session.
            event("e_0", &missing, a, "{}"),
            jw(a, &j),
            event("e_1", &j, a, "{}"),
            // The same event id twice.
            event("e_1", &j, a, "{\"again\":true}"),
            Write::Note("s_1".into(), "ea_1".into(), "after the failures".into()),
        ])
        .await
        .expect("the batch commits");
    let failed: Vec<bool> = results.iter().map(Result::is_err).collect();
    assert_eq!(
        failed,
        [false, true, false, true, false, false, true, false],
        "{results:?}"
    );
    assert!(b.store.get_visitor(a, "v_1").await.unwrap().is_some());
    assert!(b.store.get_session(a, "s_1").await.unwrap().is_none());
    assert!(b.store.get_session(999_999, "s_1").await.unwrap().is_none());
    assert_eq!(
        b.dir
            .audit(
                a,
                &AuditQuery {
                    limit: 10,
                    ..AuditQuery::default()
                }
            )
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(count(b, "journey_events").await, "1");
    assert_eq!(
        b.raw
            .text("SELECT data FROM journey_events WHERE id = 'e_1'")
            .await,
        Some("{}".into())
    );
    assert_eq!(
        count(b, "notes WHERE text = 'after the failures'").await,
        "1"
    );
    // And the next batch goes on as usual.
    write_all(b, vec![vw(a, &visitor("v_2"))]).await;
}

async fn journey_sessions_newest_first_ties_by_insertion(b: &Backend) {
    let (a, other) = accounts2(b).await;
    let j1 = journey("j_1", "v_1", at(10));
    let j2 = journey("j_2", "v_1", at(20));
    let j3 = journey("j_3", "v_2", at(10));
    let j4 = journey("j_4", "v_1", at(30));
    write_all(b, vec![jw(a, &j1), jw(a, &j2), jw(a, &j3), jw(other, &j4)]).await;
    let listed = |account: i64, visitor: Option<&'static str>| {
        let store = b.store.clone();
        async move {
            store
                .list_journey_sessions(account, visitor)
                .await
                .unwrap()
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(a, None).await, ["j_2", "j_3", "j_1"]);
    assert_eq!(listed(a, Some("v_1")).await, ["j_2", "j_1"]);
    assert_eq!(listed(other, None).await, ["j_4"]);
    assert!(listed(a, Some("v_none")).await.is_empty());
    assert_eq!(
        b.store.latest_journey_session(a, "v_1").await.unwrap(),
        Some(j2.clone())
    );
    assert_eq!(
        b.store.latest_journey_session(a, "v_none").await.unwrap(),
        None
    );
    assert_eq!(
        b.store.get_journey_session(a, "j_1").await.unwrap(),
        Some(j1.clone())
    );
    assert_eq!(
        b.store.get_journey_session(other, "j_1").await.unwrap(),
        None
    );

    // Two sessions opened at the same time: the one stored last is the latest.
    let j5 = journey("j_5", "v_3", at(50));
    let j6 = journey("j_6", "v_3", at(50));
    write_all(b, vec![jw(a, &j5), jw(a, &j6)]).await;
    assert_eq!(
        b.store.latest_journey_session(a, "v_3").await.unwrap(),
        Some(j6)
    );

    // An update replaces the record; another account's write of the id changes nothing.
    let ended = JourneySession {
        ended_date: Some(at(100)),
        event_count: 7,
        ..j1.clone()
    };
    write_all(b, vec![jw(a, &ended), jw(other, &j1)]).await;
    assert_eq!(
        b.store.get_journey_session(a, "j_1").await.unwrap(),
        Some(ended)
    );
    assert_eq!(
        b.store.get_journey_session(other, "j_1").await.unwrap(),
        None
    );
}

async fn erasing_a_visitor_keeps_counts_and_drops_personal_data(b: &Backend) {
    let (a, other) = accounts2(b).await;
    let mut metadata = Map::new();
    metadata.insert("visitor_plan".into(), json!("pro"));
    metadata.insert("topic".into(), json!("billing"));
    let s1 = Session {
        visitor_email: Some("ada@example.com".into()),
        visitor_ip_address: Some("203.0.113.7".into()),
        visitor_unique_id: Some("cust-1".into()),
        metadata,
        ..session("s_1", "v_1", at(0))
    };
    let s2 = Session {
        visitor_email: Some("bob@example.com".into()),
        ..session("s_2", "v_2", at(0))
    };
    let j1 = journey("j_1", "v_1", at(0));
    let j2 = journey("j_2", "v_2", at(0));
    write_all(
        b,
        vec![
            vw(a, &visitor("v_1")),
            Write::VisitorSecret("v_1".into(), "hash".into()),
            Write::Connection("v_1".into(), Box::new(connection("conn_1"))),
            vw(a, &visitor("v_2")),
            sw(a, &s1, "ended"),
            sw(a, &s2, "ended"),
            jw(a, &j1),
            event("e_1", &j1, a, "{\"url\":\"https://shop.example/ada\"}"),
            event("e_2", &j1, a, "{}"),
            jw(a, &j2),
            event("e_3", &j2, a, "{}"),
        ],
    )
    .await;
    let now = T0.plus_seconds(600);

    // Not this account's visitor, or nobody: nothing happens.
    assert!(!b
        .store
        .erase_visitor(now, other, "v_1", 1800)
        .await
        .unwrap());
    assert!(!b.store.erase_visitor(now, a, "v_none", 1800).await.unwrap());
    assert!(b.store.get_visitor(a, "v_1").await.unwrap().is_some());

    assert!(b.store.erase_visitor(now, a, "v_1", 1800).await.unwrap());
    assert_eq!(b.store.get_visitor(a, "v_1").await.unwrap(), None);
    assert_eq!(b.store.visitor_secret_hash(a, "v_1").await.unwrap(), None);
    assert_eq!(b.store.connection_visitor("conn_1").await.unwrap(), None);
    let erased = b
        .store
        .get_session(a, "s_1")
        .await
        .unwrap()
        .expect("s_1 stays");
    let mut want = s1.clone();
    want.visitor_email = None;
    want.visitor_ip_address = None;
    want.visitor_unique_id = None;
    want.metadata.remove("visitor_plan");
    assert_eq!(erased.session, want);
    assert_eq!(erased.status, "ended");
    let mut want_j = j1.clone();
    erase_journey(&mut want_j, now, 1800);
    assert_eq!(
        want_j.ended_date,
        Some(at(600)),
        "ends now: it had not timed out"
    );
    assert_eq!(want_j.ip_address, None);
    assert_eq!(
        b.store.get_journey_session(a, "j_1").await.unwrap(),
        Some(want_j)
    );
    assert_eq!(
        count(b, "journey_events WHERE visitor_id = 'v_1'").await,
        "0"
    );

    // The other visitor is untouched.
    assert!(b.store.get_visitor(a, "v_2").await.unwrap().is_some());
    assert_eq!(
        b.store
            .get_session(a, "s_2")
            .await
            .unwrap()
            .expect("s_2")
            .session,
        s2
    );
    assert_eq!(
        b.store.get_journey_session(a, "j_2").await.unwrap(),
        Some(j2)
    );
    assert_eq!(
        count(b, "journey_events WHERE visitor_id = 'v_2'").await,
        "1"
    );

    // Its sessions are still there, so a second erasure still reports them.
    assert!(b.store.erase_visitor(now, a, "v_1", 1800).await.unwrap());
}

/// Stores a live session of `short_id` with a sharer, a viewer and a viewer who left.
async fn live_session(b: &Backend, account_id: i64, short_id: &str, session_id: &str) {
    let s = Session {
        session_authorized: true,
        went_live: true,
        ..session(session_id, short_id, at(0))
    };
    let sharer = communication(
        &format!("{session_id}_c_s"),
        session_id,
        CobrowseRole::Sharer,
    );
    let viewer = communication(
        &format!("{session_id}_c_v"),
        session_id,
        CobrowseRole::Viewer,
    );
    let left = Cobrowsesession {
        state: CommunicationState::Disconnected,
        disconnect_type: Some(DisconnectType::Peer),
        disconnected_time: Some(at(20)),
        controlling: vec![],
        ..communication(
            &format!("{session_id}_c_left"),
            session_id,
            CobrowseRole::Viewer,
        )
    };
    write_all(
        b,
        vec![
            vw(account_id, &online(short_id)),
            sw(account_id, &s, "active"),
            cw(session_id, &sharer),
            cw(session_id, &viewer),
            cw(session_id, &left),
        ],
    )
    .await;
}

/// Asserts that recovery at `at(90)` ended the live session stored by `live_session`.
async fn assert_recovered(b: &Backend, account_id: i64, short_id: &str, session_id: &str) {
    assert_recovered_as(b, account_id, short_id, session_id, DisconnectType::System).await;
}

async fn assert_recovered_as(
    b: &Backend,
    account_id: i64,
    short_id: &str,
    session_id: &str,
    how: DisconnectType,
) {
    let v = b
        .store
        .get_visitor(account_id, short_id)
        .await
        .unwrap()
        .expect("visitor");
    assert!(
        !v.is_online && !v.is_in_session && !v.is_waiting_for_call,
        "{v:?}"
    );
    let s = b
        .store
        .get_session(account_id, session_id)
        .await
        .unwrap()
        .expect("session");
    assert_eq!(s.status, "ended");
    assert_eq!(s.session.ended_at, Some(at(90)));
    assert_eq!(s.session.length_seconds, 90);
    assert_eq!(s.session.formatted_length, derive::formatted_length(90));
    let comms = b.store.list_communications(session_id).await.unwrap();
    assert_eq!(comms.len(), 3);
    for c in &comms[..2] {
        assert_eq!(c.state, CommunicationState::Disconnected);
        assert_eq!(c.disconnect_type, Some(how));
        assert_eq!(c.disconnected_time, Some(at(90)));
        assert_eq!(c.provider_event_time, at(90));
        assert!(c.controlling.is_empty());
        let last = c.segments.last().expect("segments");
        assert_eq!(last.end_time, Some(at(90)));
        assert_eq!(last.how_ended.as_deref(), Some("disconnect"));
        assert_eq!(last.disconnect_type, Some(how));
        assert_eq!(c.segments[0].end_time, Some(at(5)), "closed segments stay");
    }
    // The viewer who had left keeps how and when.
    assert_eq!(comms[2].disconnect_type, Some(DisconnectType::Peer));
    assert_eq!(comms[2].disconnected_time, Some(at(20)));
}

/// Asserts the live session stored by `live_session` is untouched.
async fn assert_still_live(b: &Backend, account_id: i64, short_id: &str, session_id: &str) {
    let v = b
        .store
        .get_visitor(account_id, short_id)
        .await
        .unwrap()
        .expect("visitor");
    assert_eq!(v, online(short_id));
    let s = b
        .store
        .get_session(account_id, session_id)
        .await
        .unwrap()
        .expect("session");
    assert_eq!((s.status.as_str(), s.session.ended_at), ("active", None));
    let comms = b.store.list_communications(session_id).await.unwrap();
    assert_eq!(comms[0].state, CommunicationState::Connected);
    assert_eq!(comms[1].state, CommunicationState::Connected);
}

async fn recovery_after_restart_ends_live_sessions(b: &Backend) {
    let (a, other) = accounts2(b).await;
    live_session(b, a, "v_1", "s_1").await;
    live_session(b, other, "v_2", "s_2").await;
    let done = Session {
        ended_at: Some(at(30)),
        length_seconds: 30,
        formatted_length: "00:30".into(),
        ..session("s_done", "v_1", at(0))
    };
    write_all(b, vec![sw(a, &done, "ended"), vw(a, &visitor("v_off"))]).await;
    b.store.recover_after_restart(&at(90)).await.unwrap();
    assert_recovered(b, a, "v_1", "s_1").await;
    assert_recovered(b, other, "v_2", "s_2").await;
    let kept = b
        .store
        .get_session(a, "s_done")
        .await
        .unwrap()
        .expect("s_done");
    assert_eq!((kept.session, kept.status.as_str()), (done, "ended"));
    assert_eq!(
        b.store.get_visitor(a, "v_off").await.unwrap(),
        Some(visitor("v_off"))
    );
    // Nothing is left to recover.
    b.store.recover_after_restart(&at(120)).await.unwrap();
    assert_recovered(b, a, "v_1", "s_1").await;
}

/// Short ids in `n` different slots.
fn ids_in_distinct_slots(n: usize) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for i in 0.. {
        let id = format!("v_{i}");
        if found.iter().all(|f| slot_of(f) != slot_of(&id)) {
            found.push(id);
            if found.len() == n {
                break;
            }
        }
    }
    found
}

async fn recovering_slots_touches_only_their_visitors(b: &Backend) {
    let (a, other) = accounts2(b).await;
    let ids = ids_in_distinct_slots(3);
    let (x, y, z) = (&ids[0], &ids[1], &ids[2]);
    live_session(b, a, x, "s_x").await;
    live_session(b, a, y, "s_y").await;
    live_session(b, other, z, "s_z").await;
    let n = b
        .store
        .recover_slots(&at(90), &[slot_of(x)], DisconnectType::System)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_recovered(b, a, x, "s_x").await;
    assert_still_live(b, a, y, "s_y").await;
    assert_still_live(b, other, z, "s_z").await;

    assert_eq!(
        b.store
            .recover_slots(&at(90), &[], DisconnectType::System)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        b.store
            .recover_slots(&at(90), &[slot_of(x)], DisconnectType::System)
            .await
            .unwrap(),
        0
    );
    // Slots past 255 hold nobody; several slots at once, across accounts.
    let n = b
        .store
        .recover_slots(
            &at(90),
            &[slot_of(y), 4000, slot_of(z)],
            DisconnectType::TransportFailure,
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_recovered_as(b, a, y, "s_y", DisconnectType::TransportFailure).await;
    assert_recovered_as(b, other, z, "s_z", DisconnectType::TransportFailure).await;
}

async fn connections_name_their_first_visitor(b: &Backend) {
    let (a, _) = accounts2(b).await;
    write_all(
        b,
        vec![
            vw(a, &visitor("v_1")),
            Write::Connection("v_1".into(), Box::new(connection("conn_1"))),
        ],
    )
    .await;
    assert_eq!(
        b.store.connection_visitor("conn_1").await.unwrap(),
        Some("v_1".into())
    );
    assert_eq!(b.store.connection_visitor("conn_none").await.unwrap(), None);
    // An update keeps the visitor the connection was stored with.
    let moved = Connection {
        has_focus: false,
        ..connection("conn_1")
    };
    write_all(
        b,
        vec![Write::Connection("v_2".into(), Box::new(moved.clone()))],
    )
    .await;
    assert_eq!(
        b.store.connection_visitor("conn_1").await.unwrap(),
        Some("v_1".into())
    );
    assert_eq!(
        b.raw
            .text("SELECT data FROM connections WHERE unique_connection_id = 'conn_1'")
            .await,
        Some(serde_json::to_string(&moved).unwrap())
    );
}

// ----- Directory --------------------------------------------------------------------------

async fn accounts_and_keys(b: &Backend) {
    let d = &b.dir;
    assert!(d.accounts().await.unwrap().is_empty());
    let first = d.create_account("acme").await.unwrap();
    let second = d.create_account("acme").await.unwrap();
    let third = d.create_account("globex").await.unwrap();
    assert!(first < second && second < third, "{first} {second} {third}");
    assert_eq!(d.account_by_name("acme").await.unwrap(), Some(first));
    assert_eq!(d.account_by_name("initech").await.unwrap(), None);
    assert_eq!(
        d.accounts().await.unwrap(),
        vec![
            (first, "acme".to_string()),
            (second, "acme".to_string()),
            (third, "globex".to_string())
        ]
    );
    assert_eq!(d.account_name(third).await.unwrap(), Some("globex".into()));
    assert_eq!(d.account_name(999_999).await.unwrap(), None);

    assert_eq!(d.site_url(first).await.unwrap(), None);
    d.set_site_url(first, Some("https://shop.example"))
        .await
        .unwrap();
    assert_eq!(
        d.site_url(first).await.unwrap(),
        Some("https://shop.example".into())
    );
    d.set_site_url(first, None).await.unwrap();
    assert_eq!(d.site_url(first).await.unwrap(), None);
    assert_eq!(d.site_url(999_999).await.unwrap(), None);

    let origins = vec![
        "https://shop.example".to_string(),
        "https://*.shop.example".to_string(),
    ];
    d.create_key(
        first,
        Some("web"),
        "pk_1",
        "h_1",
        Some(&origins),
        false,
        &at(0),
    )
    .await
    .unwrap();
    d.create_key(first, None, "pk_2", "h_2", None, true, &at(1))
        .await
        .unwrap();
    assert!(
        d.create_key(second, None, "pk_1", "h_3", None, false, &at(2))
            .await
            .is_err(),
        "public keys are unique"
    );
    assert!(
        d.create_key(second, None, "pk_3", "h_1", None, false, &at(2))
            .await
            .is_err(),
        "secret keys are unique"
    );
    assert!(
        d.create_key(999_999, None, "pk_4", "h_4", None, false, &at(2))
            .await
            .is_err(),
        "a key needs its account"
    );
    let k1 = d.key("pk_1").await.unwrap().expect("pk_1");
    assert_eq!(
        (
            k1.account_id,
            k1.name.as_deref(),
            k1.origins.clone(),
            k1.allow_loopback
        ),
        (first, Some("web"), Some(origins.clone()), false)
    );
    assert_eq!(
        (k1.created_at.as_str(), k1.revoked_at.clone()),
        (at(0).as_str(), None)
    );
    let k2 = d.key("pk_2").await.unwrap().expect("pk_2");
    assert_eq!((k2.name, k2.origins, k2.allow_loopback), (None, None, true));
    assert!(d.key("pk_none").await.unwrap().is_none());
    let keys: Vec<String> = d
        .keys(first)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.public_key)
        .collect();
    assert_eq!(keys, ["pk_1", "pk_2"]);
    assert!(d.keys(second).await.unwrap().is_empty());

    assert_eq!(
        d.account_by_secret("h_1").await.unwrap(),
        Some((first, "pk_1".to_string()))
    );
    assert_eq!(d.account_by_secret("pk_1").await.unwrap(), None);

    assert!(
        !d.set_key_origins(second, "pk_1", &[]).await.unwrap(),
        "not its key"
    );
    assert!(!d.set_key_origins(first, "pk_none", &[]).await.unwrap());
    assert!(d.set_key_origins(first, "pk_2", &[]).await.unwrap());
    assert_eq!(
        d.key("pk_2").await.unwrap().expect("pk_2").origins,
        Some(vec![])
    );

    assert!(
        !d.revoke_key(second, "pk_1", &at(5)).await.unwrap(),
        "not its key"
    );
    assert!(d.revoke_key(first, "pk_1", &at(5)).await.unwrap());
    assert!(
        !d.revoke_key(first, "pk_1", &at(6)).await.unwrap(),
        "revoked once"
    );
    assert_eq!(
        d.key("pk_1").await.unwrap().expect("pk_1").revoked_at,
        Some(at(5))
    );
    assert_eq!(d.account_by_secret("h_1").await.unwrap(), None);
    assert_eq!(
        d.account_by_secret("h_2").await.unwrap(),
        Some((first, "pk_2".to_string()))
    );

    d.set_key_allow_loopback("pk_1", true).await.unwrap();
    assert!(d.key("pk_1").await.unwrap().expect("pk_1").allow_loopback);
    d.set_key_allow_loopback("pk_none", true).await.unwrap();
}

async fn users_are_unique_by_email_and_username(b: &Backend) {
    let d = &b.dir;
    let (a, other) = accounts2(b).await;
    let ada = user("u_ada", a, "ada@example.com", "ada", at(10));
    d.create_user(&ada).await.expect("ada");
    let same_email = user("u_2", other, "ada@example.com", "ada2", at(10));
    assert!(matches!(
        d.create_user(&same_email).await,
        Err(CreateUserError::EmailTaken)
    ));
    let same_username = user("u_3", other, "ada2@example.com", "ada", at(10));
    assert!(matches!(
        d.create_user(&same_username).await,
        Err(CreateUserError::UsernameTaken)
    ));
    assert!(matches!(
        d.create_user(&user("u_4", 999_999, "x@example.com", "x", at(10)))
            .await,
        Err(CreateUserError::Store(_))
    ));

    let show = |u: Option<UserRecord>| format!("{u:?}");
    assert_eq!(
        show(d.user("u_ada").await.unwrap()),
        show(Some(ada.clone()))
    );
    assert_eq!(
        show(d.user_by_email("ADA@Example.com").await.unwrap()),
        show(Some(ada.clone()))
    );
    assert_eq!(
        show(d.user_by_username("Ada").await.unwrap()),
        show(Some(ada.clone()))
    );
    assert!(d.user("u_none").await.unwrap().is_none());
    assert!(d.user_by_email("none@example.com").await.unwrap().is_none());
    assert!(d.user_by_username("none").await.unwrap().is_none());

    // Oldest first; a tie by id, compared byte by byte ("u_B" before "u_a").
    d.create_user(&user("u_a", a, "a@example.com", "a", at(5)))
        .await
        .expect("u_a");
    d.create_user(&user("u_B", a, "b@example.com", "b", at(5)))
        .await
        .expect("u_B");
    d.create_user(&user("u_o", other, "o@example.com", "o", at(1)))
        .await
        .expect("u_o");
    let order: Vec<String> = d
        .users(a)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(order, ["u_B", "u_a", "u_ada"]);

    d.set_user_role("u_ada", Role::Admin).await.unwrap();
    d.set_user_disabled("u_ada", true).await.unwrap();
    d.set_user_password("u_ada", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
        .await
        .unwrap();
    let changed = d.user("u_ada").await.unwrap().expect("u_ada");
    assert_eq!(changed.role, Role::Admin);
    assert!(changed.disabled);
    assert_eq!(
        changed.password_hash.as_deref(),
        Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
    );
    d.set_user_disabled("u_ada", false).await.unwrap();
    assert!(!d.user("u_ada").await.unwrap().expect("u_ada").disabled);
}

async fn sign_in_sessions(b: &Backend) {
    let d = &b.dir;
    let (a, _) = accounts2(b).await;
    for (id, email) in [("u_1", "one@example.com"), ("u_2", "two@example.com")] {
        d.create_user(&user(id, a, email, id, at(0)))
            .await
            .expect("user");
    }
    let signed_in = |token: &str, user: &str| AuthSession {
        token_hash: token.into(),
        user_id: user.into(),
        csrf_token: format!("csrf-{token}"),
        created_at: at(0),
        last_seen_at: at(0),
    };
    d.create_auth_session(&signed_in("t_1", "u_1"))
        .await
        .unwrap();
    d.create_auth_session(&signed_in("t_2", "u_1"))
        .await
        .unwrap();
    d.create_auth_session(&signed_in("t_3", "u_2"))
        .await
        .unwrap();
    assert!(
        d.create_auth_session(&signed_in("t_4", "u_none"))
            .await
            .is_err(),
        "a sign-in needs its user"
    );
    assert!(
        d.create_auth_session(&signed_in("t_1", "u_2"))
            .await
            .is_err(),
        "tokens are unique"
    );
    let s = d.auth_session("t_1").await.unwrap().expect("t_1");
    assert_eq!(
        (
            s.token_hash,
            s.user_id,
            s.csrf_token,
            s.created_at,
            s.last_seen_at
        ),
        ("t_1".into(), "u_1".into(), "csrf-t_1".into(), at(0), at(0))
    );
    d.touch_auth_session("t_1", &at(60)).await.unwrap();
    assert_eq!(
        d.auth_session("t_1")
            .await
            .unwrap()
            .expect("t_1")
            .last_seen_at,
        at(60)
    );
    d.delete_auth_session("t_1").await.unwrap();
    assert!(d.auth_session("t_1").await.unwrap().is_none());
    assert!(d.auth_session("t_2").await.unwrap().is_some());
    d.delete_user_sessions("u_1").await.unwrap();
    assert!(d.auth_session("t_2").await.unwrap().is_none());
    assert!(d.auth_session("t_3").await.unwrap().is_some());
}

async fn one_time_links_are_used_once_and_expire(b: &Backend) {
    let d = &b.dir;
    let (a, _) = accounts2(b).await;
    for (id, email) in [("u_1", "one@example.com"), ("u_2", "two@example.com")] {
        d.create_user(&user(id, a, email, id, at(0)))
            .await
            .expect("user");
    }
    d.create_token("h_invite", "u_1", TokenKind::Invite, &at(100))
        .await
        .unwrap();
    assert!(
        d.create_token("h_x", "u_none", TokenKind::Invite, &at(100))
            .await
            .is_err(),
        "a link needs its user"
    );
    let some = |u: &str| Some(u.to_string());
    assert_eq!(
        d.peek_token("h_invite", TokenKind::Invite, &at(0))
            .await
            .unwrap(),
        some("u_1")
    );
    assert_eq!(
        d.peek_token("h_invite", TokenKind::Reset, &at(0))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        d.peek_token("h_invite", TokenKind::Invite, &at(100))
            .await
            .unwrap(),
        None,
        "expired at its expiry"
    );
    assert_eq!(
        d.take_token("h_invite", TokenKind::Reset, &at(0))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        d.take_token("h_invite", TokenKind::Invite, &at(100))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        d.take_token("h_invite", TokenKind::Invite, &at(99))
            .await
            .unwrap(),
        some("u_1")
    );
    assert_eq!(
        d.take_token("h_invite", TokenKind::Invite, &at(99))
            .await
            .unwrap(),
        None,
        "used once"
    );
    assert_eq!(
        d.peek_token("h_invite", TokenKind::Invite, &at(0))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        d.take_token("h_none", TokenKind::Invite, &at(0))
            .await
            .unwrap(),
        None
    );

    d.create_token("h_i1", "u_1", TokenKind::Invite, &at(100))
        .await
        .unwrap();
    d.create_token("h_i2", "u_1", TokenKind::Invite, &at(100))
        .await
        .unwrap();
    d.create_token("h_r1", "u_1", TokenKind::Reset, &at(100))
        .await
        .unwrap();
    d.create_token("h_i3", "u_2", TokenKind::Invite, &at(100))
        .await
        .unwrap();
    d.create_token("h_c1", "u_1", TokenKind::Call, &at(100))
        .await
        .unwrap();
    d.void_tokens("u_1", TokenKind::Invite, &at(1))
        .await
        .unwrap();
    assert_eq!(
        d.peek_token("h_i1", TokenKind::Invite, &at(2))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        d.peek_token("h_i2", TokenKind::Invite, &at(2))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        d.peek_token("h_r1", TokenKind::Reset, &at(2))
            .await
            .unwrap(),
        some("u_1")
    );
    assert_eq!(
        d.peek_token("h_i3", TokenKind::Invite, &at(2))
            .await
            .unwrap(),
        some("u_2")
    );
    assert_eq!(
        d.take_token("h_c1", TokenKind::Call, &at(2)).await.unwrap(),
        some("u_1")
    );
}

async fn the_audit_log_filters_pages_and_is_append_only(b: &Backend) {
    let (a, other) = accounts2(b).await;
    write_all(
        b,
        vec![
            audit(a, at(10), "u_1", "auth.sign_in", "ok"),
            audit(a, at(20), "u_2", "session.authorized", "ok"),
            audit(other, at(25), "u_9", "auth.sign_in", "ok"),
            audit(a, at(30), "u_1", "auth.sign_in", "wrong_password"),
        ],
    )
    .await;
    let query = |q: AuditQuery| {
        let dir = b.dir.clone();
        async move { dir.audit(a, &q).await.unwrap() }
    };
    let all = query(AuditQuery {
        limit: 10,
        ..AuditQuery::default()
    })
    .await;
    let shape: Vec<(String, &str, &str, &str)> = all
        .iter()
        .map(|e| {
            (
                e.at.clone(),
                e.actor.as_str(),
                e.action.as_str(),
                e.result.as_str(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (at(30), "u_1", "auth.sign_in", "wrong_password"),
            (at(20), "u_2", "session.authorized", "ok"),
            (at(10), "u_1", "auth.sign_in", "ok"),
        ]
    );
    assert!(all[0].id > all[1].id && all[1].id > all[2].id);
    assert!(all.iter().all(|e| e.account_id == a
        && e.target.as_deref() == Some("s_1")
        && e.ip.as_deref() == Some("198.51.100.4")));
    let times = |entries: Vec<AuditEntry>| entries.into_iter().map(|e| e.at).collect::<Vec<_>>();
    let q = |limit: usize| AuditQuery {
        limit,
        ..AuditQuery::default()
    };
    assert_eq!(
        times(
            query(AuditQuery {
                since: Some(at(20)),
                ..q(10)
            })
            .await
        ),
        [at(30), at(20)]
    );
    assert_eq!(
        times(
            query(AuditQuery {
                until: Some(at(20)),
                ..q(10)
            })
            .await
        ),
        [at(10)]
    );
    assert_eq!(
        times(
            query(AuditQuery {
                actor: Some("u_1".into()),
                ..q(10)
            })
            .await
        ),
        [at(30), at(10)]
    );
    assert_eq!(
        times(
            query(AuditQuery {
                action: Some("session.authorized".into()),
                ..q(10)
            })
            .await
        ),
        [at(20)]
    );
    assert_eq!(
        times(
            query(AuditQuery {
                before_id: Some(all[0].id),
                ..q(10)
            })
            .await
        ),
        [at(20), at(10)]
    );
    assert_eq!(times(query(q(1)).await), [at(30)]);
    assert_eq!(
        times(
            query(AuditQuery {
                since: Some(at(10)),
                until: Some(at(30)),
                actor: Some("u_1".into()),
                ..q(10)
            })
            .await
        ),
        [at(10)]
    );
    let others = b.dir.audit(other, &q(10)).await.unwrap();
    assert_eq!(times(others), [at(25)]);

    for sql in [
        "UPDATE audit_log SET result = 'ok'",
        "DELETE FROM audit_log",
    ] {
        let refused = b.raw.exec(sql).await.expect_err(sql);
        assert!(refused.contains("append-only"), "{sql}: {refused}");
    }
    assert_eq!(count(b, "audit_log").await, "4");
}

// ----- recordings -------------------------------------------------------------------------

fn rec_start(account_id: i64, session_id: &str, visitor_id: &str) -> Write {
    Write::RecordingStart(Box::new(RecordingStart {
        account_id,
        session_id: session_id.into(),
        visitor_id: visitor_id.into(),
        started_at: at(0),
    }))
}

fn rec_chunk(session_id: &str, seq: i64, lines: &str) -> Write {
    Write::RecordingChunk(Box::new(RecordingChunk {
        session_id: session_id.into(),
        seq,
        lines: lines.into(),
    }))
}

async fn status_of(b: &Backend, session_id: &str) -> Option<String> {
    b.store
        .recording(session_id)
        .await
        .unwrap()
        .map(|r| r.status)
}

async fn recordings_are_kept_in_order_finalised_expired_and_removed(b: &Backend) {
    let (a, other) = accounts2(b).await;
    let first = "[1,\"m\",\"c_1\",[[\"S\",1,\"https://shop.example/\",800,600,1,0]]]\n";
    let second = "[2,\"e\",\"control.granted\",\"visitor:v_1\",\"ok\"]\n";
    let big: String = (0..2000)
        .map(|i| format!("[{i},\"m\",\"c_1\",[[\"T\",{i},\"text {i}\"]]]\n"))
        .collect();
    write_all(
        b,
        vec![
            rec_start(a, "s_1", "v_1"),
            // A second start changes nothing.
            rec_start(a, "s_1", "v_other"),
            rec_chunk("s_1", 0, first),
            rec_chunk("s_1", 1, second),
            rec_chunk("s_1", 2, &big),
            rec_start(a, "s_2", "v_1"),
        ],
    )
    .await;
    let info = b
        .store
        .recording("s_1")
        .await
        .unwrap()
        .expect("s_1's recording");
    assert_eq!(
        (
            info.account_id,
            info.visitor_id.as_str(),
            info.status.as_str(),
            info.chunks
        ),
        (a, "v_1", "recording", 3)
    );
    let raw = (first.len() + second.len() + big.len()) as i64;
    assert_eq!(info.raw_bytes, raw);
    assert!(
        info.stored_bytes > 0 && info.stored_bytes < raw / 4,
        "stored gzipped: {} of {raw}",
        info.stored_bytes
    );
    assert_eq!(
        b.store.recording_lines("s_1").await.unwrap(),
        format!("{first}{second}{big}")
    );
    assert_eq!(b.store.recording_lines("s_none").await.unwrap(), "");
    // Only the account's own.
    let listed = b
        .store
        .recordings(a, &["s_1".into(), "s_2".into(), "s_none".into()])
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|r| r.session_id.as_str())
            .collect::<Vec<_>>(),
        ["s_1", "s_2"]
    );
    assert!(b
        .store
        .recordings(other, &["s_1".into()])
        .await
        .unwrap()
        .is_empty());
    // The end: pending until finalised; finalising twice is harmless.
    write_all(b, vec![Write::RecordingEnd("s_1".into(), at(60))]).await;
    assert_eq!(status_of(b, "s_1").await.as_deref(), Some("pending"));
    assert!(
        !b.store.finish_recording("s_2").await.unwrap(),
        "s_2 is not pending"
    );
    assert!(b.store.finish_recording("s_1").await.unwrap());
    assert!(!b.store.finish_recording("s_1").await.unwrap());
    let info = b.store.recording("s_1").await.unwrap().unwrap();
    assert_eq!(
        (info.status.as_str(), info.ended_at.as_deref()),
        ("ready", Some(at(60).as_str()))
    );
    // Chunks after the end are not kept.
    write_all(
        b,
        vec![rec_chunk("s_1", 3, "[9,\"e\",\"x\",\"y\",\"z\"]\n")],
    )
    .await;
    assert_eq!(
        b.store.recording_lines("s_1").await.unwrap().len() as i64,
        raw
    );
    // The sweep: nothing ended before the cutoff yet; then s_1 expires, its data goes.
    assert_eq!(b.store.sweep_recordings(&at(59)).await.unwrap(), (0, 0));
    assert_eq!(status_of(b, "s_1").await.as_deref(), Some("ready"));
    assert_eq!(b.store.sweep_recordings(&at(60)).await.unwrap(), (0, 1));
    assert_eq!(status_of(b, "s_1").await.as_deref(), Some("expired"));
    assert_eq!(b.store.recording_lines("s_1").await.unwrap(), "");
    assert_eq!(
        count(b, "recording_chunks WHERE session_id = 's_1'").await,
        "0"
    );
    // A live one is not swept; an admin removes it (only in its account), and what
    // still comes for it is dropped.
    assert_eq!(b.store.sweep_recordings(&at(10_000)).await.unwrap(), (0, 0));
    write_all(b, vec![rec_chunk("s_2", 0, first)]).await;
    assert!(!b.store.remove_recording(other, "s_2").await.unwrap());
    assert!(b.store.remove_recording(a, "s_2").await.unwrap());
    assert_eq!(status_of(b, "s_2").await.as_deref(), Some("removed"));
    write_all(b, vec![rec_chunk("s_2", 1, first)]).await;
    assert_eq!(b.store.recording_lines("s_2").await.unwrap(), "");
    assert_eq!(count(b, "recording_chunks").await, "0");
}

async fn recordings_of_erased_visitors_and_restarts(b: &Backend) {
    let (a, _) = accounts2(b).await;
    live_session(b, a, "v_1", "s_1").await;
    live_session(b, a, "v_2", "s_2").await;
    let line = "[1,\"m\",\"c_1\",[[\"E\"]]]\n";
    write_all(
        b,
        vec![
            rec_start(a, "s_1", "v_1"),
            rec_chunk("s_1", 0, line),
            rec_start(a, "s_2", "v_2"),
            rec_chunk("s_2", 0, line),
        ],
    )
    .await;
    // Erasing the visitor removes its recordings, not the others'.
    assert!(b
        .store
        .erase_visitor(Millis(0), a, "v_1", 1800)
        .await
        .unwrap());
    assert_eq!(status_of(b, "s_1").await.as_deref(), Some("removed"));
    assert_eq!(b.store.recording_lines("s_1").await.unwrap(), "");
    assert_eq!(status_of(b, "s_2").await.as_deref(), Some("recording"));
    // A restart ends the live session: its recording is pending, the sweep finalises it.
    b.store.recover_after_restart(&at(90)).await.unwrap();
    assert_eq!(status_of(b, "s_2").await.as_deref(), Some("pending"));
    assert_eq!(b.store.sweep_recordings(&at(0)).await.unwrap(), (1, 0));
    let info = b.store.recording("s_2").await.unwrap().unwrap();
    assert_eq!(
        (info.status.as_str(), info.ended_at.as_deref()),
        ("ready", Some(at(90).as_str()))
    );
    assert_eq!(b.store.recording_lines("s_2").await.unwrap(), line);
}

async fn the_signing_key_is_made_once(b: &Backend) {
    let key = b.store.signing_key().await.unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(b.store.signing_key().await.unwrap(), key);
}
