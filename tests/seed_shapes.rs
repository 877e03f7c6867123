//! The seed objects as they leave the core: every object serializes with exactly the
//! seed's field names (`tests/fixtures/seed_fields.json`), each value of a JSON type the
//! fixture allows, nested parts included. The fixture itself is checked against the seed
//! tables in `../shared/seeds`, so a renamed or forgotten field fails here first.
//!
//! Fixture format: `{"Object": {"source", "casing", "fields": {name: [json types]},
//! "values"?: {name: [allowed strings]}, "parts"?: {name: "Object"}}}`. A part names the
//! fixture entry describing a nested object (for an array: each element).
// Native only: these use proptest or the file system, which wasm32 lacks.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use covisit::core::config::Permissions;
use covisit::core::machine::{ConnectionInfo, MachineOptions, SessionRequest, VisitorMachine};
use covisit::core::model::{
    Address, AfterCallWork, Agent, AgentNote, Cobrowsesession, Connection, DeviceType,
    QualityFeedback, Session, SessionSource, Visitor, Wrapup,
};
use covisit::core::Millis;
use serde_json::{json, Map, Value};

const T0: Millis = Millis(1_795_255_445_000);

fn fixture() -> Value {
    serde_json::from_str(include_str!("fixtures/seed_fields.json"))
        .expect("tests/fixtures/seed_fields.json is valid JSON")
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

/// The JSON types seen per (object, field), to prove every type the fixture allows is
/// one the model really produces (a `null` the model can never write is a lie too).
#[derive(Default)]
struct Seen(BTreeMap<(String, String), BTreeSet<&'static str>>);

impl Seen {
    /// Asserts `value` is a fixture `object`: same key set, allowed types and values,
    /// and recursively the same for its parts.
    fn check(&mut self, fixture: &Value, object: &str, value: &Value, path: &str) {
        let spec = fixture
            .get(object)
            .unwrap_or_else(|| panic!("fixture has no object {object}"));
        let fields = spec["fields"]
            .as_object()
            .unwrap_or_else(|| panic!("fixture {object}.fields is an object"));
        let obj = value.as_object().unwrap_or_else(|| {
            panic!("{path}: a {object} serializes to a JSON object, got {value}")
        });
        let got: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        let want: BTreeSet<&str> = fields.keys().map(String::as_str).collect();
        assert_eq!(
            got,
            want,
            "{path}: the keys of {object} differ from the seed's (extra: {:?}, missing: {:?})",
            got.difference(&want).collect::<Vec<_>>(),
            want.difference(&got).collect::<Vec<_>>()
        );
        for (key, v) in obj {
            let allowed: Vec<&str> = fields[key]
                .as_array()
                .unwrap_or_else(|| panic!("fixture {object}.fields.{key} is an array"))
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let t = json_type(v);
            assert!(
                allowed.contains(&t),
                "{path}.{key}: {object}.{key} is {t} ({v}), the fixture allows {allowed:?}"
            );
            self.0
                .entry((object.to_string(), key.clone()))
                .or_default()
                .insert(t);
            if let (Some(values), Value::String(s)) =
                (spec.get("values").and_then(|m| m.get(key)), v)
            {
                assert!(
                    values.as_array().is_some_and(|a| a.iter().any(|x| x == s)),
                    "{path}.{key}: `{s}` is not one of the seed's values {values}"
                );
            }
            if let Some(part) = spec
                .get("parts")
                .and_then(|m| m.get(key))
                .and_then(Value::as_str)
            {
                match v {
                    Value::Object(_) => self.check(fixture, part, v, &format!("{path}.{key}")),
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            self.check(fixture, part, item, &format!("{path}.{key}[{i}]"));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Asserts every type the fixture allows for each field of `objects` was seen.
    fn assert_all_types_seen(&self, fixture: &Value, objects: &[&str]) {
        for object in objects {
            for (key, allowed) in fixture[*object]["fields"].as_object().into_iter().flatten() {
                let seen = self
                    .0
                    .get(&(object.to_string(), key.clone()))
                    .cloned()
                    .unwrap_or_default();
                for t in allowed
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    assert!(
                        seen.contains(t),
                        "{object}.{key}: the fixture allows {t} but no built object produced it (seen {seen:?})"
                    );
                }
            }
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("model types serialize")
}

// ----- Visitor, Session, Agent: built directly -------------------------------------

fn bare_visitor() -> Visitor {
    Visitor {
        added_at: T0.to_iso8601(),
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
        last_seen_at: T0.to_iso8601(),
        last_url: None,
        location_city: None,
        location_country_name: None,
        location_country: None,
        lookup_code: None,
        name: None,
        nickname: "v_7Kq2".into(),
        short_id: "v_7Kq2".into(),
        tags: vec![],
        unique_id: None,
        watch_link: "http://127.0.0.1:8080/agent/#/visitors/v_7Kq2".into(),
        sdk: "web".into(),
    }
}

fn full_visitor() -> Visitor {
    Visitor {
        browser_name: Some("Firefox".into()),
        call_name: Some("ada-call".into()),
        device_name: Some("ThinkPad".into()),
        device_type: Some(DeviceType::Desktop),
        email: Some("ada@example.com".into()),
        identities: vec!["Ada Lovelace".into(), "ada@example.com".into()],
        integration: Some("intercom".into()),
        is_in_session: true,
        is_online: true,
        is_waiting_for_call: true,
        js_configuration: true,
        last_url: Some("https://shop.example.com/cart".into()),
        location_city: Some("London".into()),
        location_country_name: Some("United Kingdom".into()),
        location_country: Some("GB".into()),
        lookup_code: Some("0427".into()),
        name: Some("Ada Lovelace".into()),
        nickname: "Ada Lovelace".into(),
        tags: vec!["vip".into()],
        unique_id: Some("cust-4432".into()),
        ..bare_visitor()
    }
}

fn agent(id: &str, name: &str, external_id: Option<&str>) -> Agent {
    Agent::new(id, name, external_id.map(str::to_string))
}

fn bare_session() -> Session {
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
        id: "s_01".into(),
        length_seconds: 0,
        on_premise: true,
        public_video_url: None,
        secret_video_url: None,
        session_authorized: false,
        source: None,
        start_url: None,
        started_at: T0.to_iso8601(),
        video_status: None,
        visitor_id: "v_7Kq2".into(),
        went_live: false,
    }
}

fn full_session() -> Session {
    let mut email_agent = agent("u_grace", "Grace", None);
    email_agent.email = Some("grace@example.com".into());
    let mut metadata = Map::new();
    metadata.insert("visitor_plan".into(), json!("pro"));
    Session {
        agents: vec![agent("ea_ada", "Ada Agent", Some("crm-17")), email_agent],
        agent_notes: vec![AgentNote {
            text: "asked about the invoice".into(),
            by: "ea_ada".into(),
        }],
        call_length_seconds: 11,
        call_name: Some("ada-call".into()),
        ended_at: Some(T0.plus_seconds(70).to_iso8601()),
        features_used: vec!["remote_typing".into()],
        formatted_call_length: "00:11".into(),
        formatted_length: "01:10".into(),
        metadata,
        quality_feedback: vec![
            QualityFeedback {
                rating: 5.0,
                feedback: Some("great".into()),
                by: "v_7Kq2".into(),
            },
            QualityFeedback {
                rating: 4.0,
                feedback: None,
                by: "ea_ada".into(),
            },
        ],
        visitor_agent_feedback: Some("great".into()),
        visitor_agent_rating: Some(5.0),
        visitor_email: Some("ada@example.com".into()),
        visitor_ip_address: Some("203.0.113.7".into()),
        visitor_unique_id: Some("cust-4432".into()),
        length_seconds: 70,
        public_video_url: Some("https://video.example.com/p/1".into()),
        secret_video_url: Some("https://video.example.com/s/1".into()),
        session_authorized: true,
        source: Some(SessionSource::LookupCode),
        start_url: Some("https://shop.example.com/".into()),
        video_status: Some("not_available".into()),
        went_live: true,
        ..bare_session()
    }
}

#[test]
fn visitor_has_exactly_the_seed_fields() {
    let fx = fixture();
    let mut seen = Seen::default();
    seen.check(&fx, "Visitor", &to_json(&bare_visitor()), "bare visitor");
    seen.check(&fx, "Visitor", &to_json(&full_visitor()), "full visitor");
    seen.assert_all_types_seen(&fx, &["Visitor"]);
}

#[test]
fn session_and_agent_have_exactly_the_seed_fields() {
    let fx = fixture();
    let mut seen = Seen::default();
    seen.check(&fx, "Session", &to_json(&bare_session()), "bare session");
    seen.check(&fx, "Session", &to_json(&full_session()), "full session");
    seen.check(
        &fx,
        "Agent",
        &to_json(&agent("ea_ada", "Ada Agent", None)),
        "agent",
    );
    seen.assert_all_types_seen(&fx, &["Session", "Agent", "AgentNote", "QualityFeedback"]);
}

// ----- Connection and Cobrowsesession: produced by the real machine ----------------

fn connection_info(
    id: &str,
    url: Option<&str>,
    focus: bool,
    permissions: Permissions,
) -> ConnectionInfo {
    ConnectionInfo {
        unique_connection_id: id.into(),
        current_url: url.map(str::to_string),
        screen_width: 1920,
        screen_height: 1080,
        audio_supported: true,
        has_focus: focus,
        permissions,
    }
}

fn session_request(n: u32, viewer_url: bool, peer: bool) -> SessionRequest {
    SessionRequest {
        session_id: format!("s_{n:02}"),
        communication_id: format!("c_{n:02}"),
        peer_communication_id: peer.then(|| format!("c_agent_{n:02}")),
        viewer_url: viewer_url.then(|| format!("http://127.0.0.1:8080/agent/#/sessions/s_{n:02}")),
        agent: agent("ea_ada", "Ada Agent", None),
    }
}

/// Snapshots of the machine's Connection objects and Cobrowsesession at every phase a
/// visitor goes through: alerting, connected, hold, ended, and a session without
/// authorization.
fn machine_snapshots() -> (Vec<Connection>, Vec<Cobrowsesession>) {
    let (mut conns, mut comms) = (Vec::new(), Vec::new());
    let mut m = VisitorMachine::new("v_7Kq2", MachineOptions::default());
    let mut t = T0;
    let snap =
        |m: &VisitorMachine, conns: &mut Vec<Connection>, comms: &mut Vec<Cobrowsesession>| {
            conns.extend(m.connections().iter().cloned());
            comms.extend(m.communication().cloned());
        };
    m.handle_connect(
        t,
        connection_info("tab-1", None, false, Permissions::default()),
    )
    .unwrap();
    snap(&m, &mut conns, &mut comms);
    t = t.plus_seconds(1);
    m.handle_url(t, "tab-1", "https://shop.example.com/cart".into())
        .unwrap();
    m.handle_focus(t, "tab-1", true).unwrap();
    m.handle_session_request(t, session_request(1, true, true))
        .unwrap();
    snap(&m, &mut conns, &mut comms); // alerting
    t = t.plus_seconds(5);
    m.handle_authorize(t).unwrap();
    snap(&m, &mut conns, &mut comms); // connected
    t = t.plus_seconds(20);
    m.handle_expect_disconnect(t, "tab-1", None, None, None)
        .unwrap();
    snap(&m, &mut conns, &mut comms); // expectedDisconnect with nulls
    m.handle_expect_disconnect(
        t,
        "tab-1",
        Some(30),
        Some("Back soon".into()),
        Some("Checkout".into()),
    )
    .unwrap();
    snap(&m, &mut conns, &mut comms); // expectedDisconnect with values
    m.handle_disconnect(t, "tab-1").unwrap();
    snap(&m, &mut conns, &mut comms); // hold, connection disconnected
    t = t.plus_seconds(3);
    let permissions = Permissions {
        agent_prompt: Some("VIP customer".into()),
        ..Permissions::default()
    };
    m.handle_connect(
        t,
        connection_info(
            "tab-2",
            Some("https://shop.example.com/pay"),
            true,
            permissions,
        ),
    )
    .unwrap();
    snap(&m, &mut conns, &mut comms); // resumed
    t = t.plus_seconds(40);
    m.handle_visitor_end(t).unwrap();
    snap(&m, &mut conns, &mut comms); // ended
    let no_auth = Permissions {
        require_authorization_for_session: false,
        ..Permissions::default()
    };
    let mut m = VisitorMachine::new("v_9Zz1", MachineOptions::default());
    m.handle_connect(t, connection_info("tab-9", None, true, no_auth))
        .unwrap();
    m.handle_session_request(t, session_request(2, false, false))
        .unwrap();
    snap(&m, &mut conns, &mut comms); // connected at once, no viewer URL, no peer
    m.handle_server_end(t.plus_seconds(9)).unwrap();
    snap(&m, &mut conns, &mut comms);
    (conns, comms)
}

#[test]
fn connection_from_the_machine_has_exactly_the_seed_fields() {
    let fx = fixture();
    let mut seen = Seen::default();
    let (conns, _) = machine_snapshots();
    assert!(conns.iter().any(|c| c.expected_disconnect.is_some()));
    for (i, c) in conns.iter().enumerate() {
        seen.check(&fx, "Connection", &to_json(c), &format!("connection #{i}"));
    }
    seen.assert_all_types_seen(&fx, &["Connection", "ExpectedDisconnect"]);
}

#[test]
fn cobrowsesession_from_the_machine_has_exactly_the_seed_fields() {
    let fx = fixture();
    let mut seen = Seen::default();
    let (_, comms) = machine_snapshots();
    assert!(comms.len() >= 6);
    for (i, c) in comms.iter().enumerate() {
        seen.check(
            &fx,
            "Cobrowsesession",
            &to_json(c),
            &format!("communication #{i}"),
        );
    }
    // The machine records no wrap-up or after-call work yet; the parts must still have
    // the seed's shape when a later version (or the server) fills them in.
    let mut filled = comms.last().cloned().expect("at least one communication");
    filled.wrapup = Some(Wrapup::default());
    filled.after_call_work = Some(AfterCallWork::default());
    filled.self_address = Address::default();
    seen.check(&fx, "Cobrowsesession", &to_json(&filled), "empty parts");
    filled.wrapup = Some(Wrapup {
        code: Some("resolved".into()),
        name: Some("Resolved".into()),
        notes: Some("walked through checkout".into()),
        tags: vec!["billing".into()],
        duration_seconds: Some(42),
        end_time: Some(T0.to_iso8601()),
        provisional: Some(false),
    });
    filled.after_call_work = Some(AfterCallWork {
        start_time: Some(T0.to_iso8601()),
        end_time: Some(T0.plus_seconds(30).to_iso8601()),
        state: Some("completed".into()),
    });
    filled.self_address = Address {
        name: Some("Ada".into()),
        name_raw: Some("Ada".into()),
        address_normalized: Some("covisit:visitor/v_7Kq2".into()),
        address_raw: Some("covisit:visitor/v_7Kq2".into()),
        address_displayable: Some("Ada".into()),
    };
    seen.check(&fx, "Cobrowsesession", &to_json(&filled), "filled parts");
    seen.assert_all_types_seen(
        &fx,
        &[
            "Cobrowsesession",
            "Address",
            "Segment",
            "Wrapup",
            "AfterCallWork",
        ],
    );
}

#[test]
fn every_fixture_entry_is_well_formed() {
    let fx = fixture();
    const TYPES: [&str; 6] = ["string", "number", "boolean", "array", "object", "null"];
    let objects = fx.as_object().expect("the fixture is an object of objects");
    for (name, spec) in objects {
        assert!(spec["source"].is_string(), "{name}.source");
        let casing = spec["casing"].as_str().unwrap_or_default();
        let fields = spec["fields"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}.fields"));
        assert!(!fields.is_empty(), "{name} has fields");
        for (field, types) in fields {
            let types = types.as_array().unwrap_or_else(|| panic!("{name}.{field}"));
            assert!(!types.is_empty(), "{name}.{field} has a type");
            for t in types {
                assert!(
                    TYPES.contains(&t.as_str().unwrap_or_default()),
                    "{name}.{field}: {t}"
                );
            }
            match casing {
                "snake_case" => assert!(
                    !field.chars().any(|c| c.is_ascii_uppercase()),
                    "{name}.{field}"
                ),
                "camelCase" => assert!(!field.contains('_'), "{name}.{field}"),
                other => panic!("{name}.casing `{other}`"),
            }
        }
        for (field, part) in spec
            .get("parts")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let types = &fields[field];
            assert!(
                types
                    .as_array()
                    .is_some_and(|t| t.iter().any(|x| x == "object" || x == "array")),
                "{name}.{field} is a part, so an object or an array"
            );
            assert!(
                objects.contains_key(part.as_str().unwrap_or_default()),
                "{name}.{field} → {part}"
            );
        }
    }
}

// ----- the fixture against the seed text -------------------------------------------

fn seeds_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/seeds");
    dir.is_dir().then_some(dir)
}

fn read_seed(dir: &std::path::Path, prefix: &str) -> String {
    let entry = std::fs::read_dir(dir)
        .expect("seeds dir is readable")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no seed {prefix}_*.txt in {}", dir.display()));
    std::fs::read_to_string(entry.path()).expect("seed is readable")
}

/// The JSON type of one seed type token (`string`, `Datetime (ISO 8601)`, `"active"`,
/// `Agent[]`, `Array<{…}>`, `{…}`, `Record`, `null …`); `None` when the cell is prose.
fn seed_type(token: &str) -> Option<&'static str> {
    let t = token.trim();
    // Seed 000 links object types: [`Address`](address-definition.md), [`Segment[]`](…).
    if let Some(linked) = t.strip_prefix('[').and_then(|rest| rest.split("](").next()) {
        let name = linked.trim_matches('`');
        return Some(if name.ends_with("[]") {
            "array"
        } else {
            "object"
        });
    }
    let t = t.trim_matches('`');
    if t.starts_with('"') {
        Some("string")
    } else if t.ends_with("[]") || t.starts_with("Array<") {
        Some("array")
    } else if t.starts_with('{') || t == "Record" || t == "object" {
        Some("object")
    } else if t.starts_with("string") || t.starts_with("Datetime") || t == "Date" {
        Some("string")
    } else if t == "boolean" {
        Some("boolean")
    } else if t == "number" || t == "integer" {
        Some("number")
    } else if t.starts_with("null") {
        Some("null")
    } else {
        None
    }
}

type SeedObjects = BTreeMap<String, BTreeMap<String, BTreeSet<&'static str>>>;

/// The inline object types of a seed type (`{ a: number | null; b: string }`).
fn inline_fields(braced: &str) -> BTreeMap<String, BTreeSet<&'static str>> {
    let inner = braced.trim().trim_start_matches('{').trim_end_matches('}');
    inner
        .split([';', ','])
        .filter_map(|entry| {
            let (name, types) = entry.split_once(':')?;
            let types = types.split('|').filter_map(seed_type).collect();
            Some((name.trim().to_string(), types))
        })
        .collect()
}

/// Seed 002's tables: a line with one capitalized word opens an object; rows after its
/// `| Attribute name |` header are `name | type [| type…] | description |`. Inline
/// object types become objects of their own (`Connection.expectedDisconnect`, …).
fn parse_seed_002(text: &str) -> SeedObjects {
    let mut out = SeedObjects::new();
    let mut current: Option<String> = None;
    let mut in_table = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if !trimmed.contains('|') {
            in_table = false;
            if !trimmed.is_empty()
                && trimmed != "Attributes"
                && trimmed.chars().all(|c| c.is_ascii_alphabetic())
                && trimmed.starts_with(|c: char| c.is_ascii_uppercase())
            {
                current = Some(trimmed.to_string());
            }
            continue;
        }
        if trimmed.starts_with("| Attribute name") {
            in_table = true;
            continue;
        }
        if !in_table || trimmed.starts_with("|-") {
            continue;
        }
        let Some(object) = current.clone() else {
            continue;
        };
        // Braced inline types contain `|` and `,`: lift them out before splitting cells.
        let mut braced = None;
        let mut flat = trimmed.to_string();
        let type_cell = trimmed
            .split_once('|')
            .map(|(_, rest)| rest.trim_start())
            .unwrap_or_default();
        let braced_type = type_cell.starts_with('{') || type_cell.starts_with("Array<{");
        if let (true, Some(open), Some(close)) = (braced_type, trimmed.find('{'), trimmed.find('}'))
        {
            braced = Some(trimmed[open..=close].to_string());
            flat = format!("{}{{}}{}", &trimmed[..open], &trimmed[close + 1..]);
        }
        let mut cells = flat.split('|').map(str::trim);
        let name = cells.next().unwrap_or_default().to_string();
        let types: BTreeSet<&'static str> = cells.map_while(seed_type).collect();
        if let Some(braced) = braced {
            let part = match name.as_str() {
                "expectedDisconnect" => "ExpectedDisconnect",
                "agent_notes" => "AgentNote",
                "quality_feedback" => "QualityFeedback",
                other => panic!("seed 002: unexpected inline object type in {object}.{other}"),
            };
            out.insert(part.to_string(), inline_fields(&braced));
        }
        out.entry(object).or_default().insert(name, types);
    }
    out
}

/// Seed 000's table: `| name | type | Required | description |`.
fn parse_seed_000(text: &str) -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if !line.starts_with('|') || line.starts_with("|--") || line.starts_with("| Property") {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            continue;
        }
        let types = seed_type(cells[2]).into_iter().collect();
        out.insert(cells[1].to_string(), types);
    }
    out
}

/// Seed 001's table: `**name** | **type** | description | notes`.
fn parse_seed_001(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("**") && l.contains('|'))
        .filter_map(|l| l.split('|').next())
        .map(|cell| cell.trim().trim_matches('*').to_string())
        .collect()
}

fn fixture_fields(fx: &Value, object: &str) -> BTreeMap<String, BTreeSet<String>> {
    fx[object]["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("fixture has {object}"))
        .iter()
        .map(|(k, v)| {
            let types = v
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            (k.clone(), types)
        })
        .collect()
}

/// Same names as the seed; every seed type listed; the only extra type allowed is
/// `null` (a value covisit does not know yet).
fn assert_matches_seed(fx: &Value, object: &str, seed: &BTreeMap<String, BTreeSet<&'static str>>) {
    let ours = fixture_fields(fx, object);
    let seed_names: BTreeSet<&String> = seed.keys().collect();
    let our_names: BTreeSet<&String> = ours.keys().collect();
    assert_eq!(
        our_names, seed_names,
        "{object}: fixture field names differ from the seed's"
    );
    for (name, seed_types) in seed {
        assert!(
            !seed_types.is_empty(),
            "{object}.{name}: could not read the seed's type"
        );
        let our_types = &ours[name];
        for t in seed_types {
            assert!(
                our_types.contains(*t),
                "{object}.{name}: the seed says {t}, the fixture {our_types:?}"
            );
        }
        for t in our_types {
            assert!(
                seed_types.contains(t.as_str()) || t == "null",
                "{object}.{name}: the fixture allows {t}, the seed only {seed_types:?}"
            );
        }
    }
}

#[test]
fn fixture_covers_every_field_of_the_seed_tables() {
    let Some(dir) = seeds_dir() else {
        println!("skipped: ../shared/seeds is not beside the repository (CI has it there)");
        return;
    };
    let fx = fixture();
    let seed_002 = parse_seed_002(&read_seed(&dir, "002_"));
    let objects: Vec<&str> = seed_002.keys().map(String::as_str).collect();
    assert_eq!(
        objects,
        [
            "Agent",
            "AgentNote",
            "Connection",
            "ExpectedDisconnect",
            "QualityFeedback",
            "Session",
            "Visitor"
        ],
        "seed 002 objects as parsed"
    );
    for (object, fields) in &seed_002 {
        assert_matches_seed(&fx, object, fields);
    }
    let seed_000 = parse_seed_000(&read_seed(&dir, "000_"));
    assert_eq!(
        seed_000.len(),
        19,
        "seed 000 rows as parsed: {:?}",
        seed_000.keys()
    );
    assert_matches_seed(&fx, "Cobrowsesession", &seed_000);
    // Seed 001 is an older rendering of the same object: a subset of seed 000.
    let seed_001 = parse_seed_001(&read_seed(&dir, "001_"));
    let ours = fixture_fields(&fx, "Cobrowsesession");
    assert!(
        seed_001.len() >= 15,
        "seed 001 rows as parsed: {seed_001:?}"
    );
    for name in &seed_001 {
        assert!(
            ours.contains_key(name),
            "seed 001 field {name} is missing from the fixture"
        );
    }
}

// ----- seeds 003 and 004: the journey Session and the analytics export ---------------

/// A JSON object of fixture `object` with every field holding a value of its first
/// non-null type (the first allowed string for a field with `values`; one element of
/// the part for a list), recursively; with `nulls`, null wherever the fixture allows
/// it instead (`Nulls::InParts`: except for the parts themselves, so their own fields
/// are null). Reading these forms into the model and writing them back proves the
/// model carries every type the fixture allows, not only those a scenario produced.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Nulls {
    None,
    Everywhere,
    InParts,
}

fn from_fixture(fx: &Value, object: &str, nulls: Nulls) -> Value {
    let spec = &fx[object];
    let mut out = Map::new();
    for (key, types) in spec["fields"].as_object().into_iter().flatten() {
        let types: Vec<&str> = types
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let part = spec["parts"][key].as_str();
        let keep_part = nulls == Nulls::InParts && part.is_some();
        let t = if nulls != Nulls::None && !keep_part && types.contains(&"null") {
            "null"
        } else {
            types
                .iter()
                .find(|t| **t != "null")
                .copied()
                .unwrap_or("null")
        };
        let v = match (t, part) {
            ("object", Some(p)) => from_fixture(fx, p, nulls),
            ("array", Some(p)) => json!([from_fixture(fx, p, nulls)]),
            ("string", _) => match spec["values"][key].as_array() {
                Some(values) => values[0].clone(),
                None => json!(T0.to_iso8601()),
            },
            ("number", _) => json!(7),
            ("boolean", _) => json!(true),
            ("array", None) => json!([]),
            ("object", None) => json!({}),
            _ => Value::Null,
        };
        out.insert(key.clone(), v);
    }
    Value::Object(out)
}

/// Round-trips the fixture form of `object` through the model type `T`.
fn through_model<T: serde::de::DeserializeOwned + serde::Serialize>(
    fx: &Value,
    object: &str,
    nulls: Nulls,
) -> Value {
    let v: T = serde_json::from_value(from_fixture(fx, object, nulls))
        .unwrap_or_else(|e| panic!("the model of {object} reads its fixture form: {e}"));
    to_json(&v)
}

#[test]
fn journey_session_has_exactly_the_seed_fields() {
    use covisit::core::model::JourneySession;
    let fx = fixture();
    let mut seen = Seen::default();
    for nulls in [Nulls::None, Nulls::Everywhere, Nulls::InParts] {
        let v = through_model::<JourneySession>(&fx, "JourneySession", nulls);
        seen.check(
            &fx,
            "JourneySession",
            &v,
            &format!("journey session ({nulls:?} null)"),
        );
    }
    seen.assert_all_types_seen(
        &fx,
        &[
            "JourneySession",
            "AddressableEntityRef",
            "OutcomeAchievement",
            "SessionSegmentAssignment",
            "Browser",
            "Device",
            "JourneyGeolocation",
            "JourneyPage",
            "JourneyCampaign",
            "Referrer",
            "SdkLibrary",
            "SessionLastEvent",
            "ConversationChannel",
        ],
    );
}

#[test]
fn analytics_conversation_has_exactly_the_seed_fields() {
    use covisit::core::model::{AnalyticsConversation, AnalyticsSession};
    let fx = fixture();
    let mut seen = Seen::default();
    for nulls in [Nulls::None, Nulls::Everywhere, Nulls::InParts] {
        let v = through_model::<AnalyticsConversation>(&fx, "AnalyticsConversation", nulls);
        seen.check(
            &fx,
            "AnalyticsConversation",
            &v,
            &format!("conversation ({nulls:?} null)"),
        );
    }
    // What `Default` gives (the builder's starting point) has the shape too.
    let bare = AnalyticsSession::default();
    seen.check(
        &fx,
        "AnalyticsSession",
        &to_json(&bare),
        "default analytics session",
    );
    seen.assert_all_types_seen(
        &fx,
        &[
            "AnalyticsConversation",
            "AnalyticsParticipant",
            "AnalyticsSession",
            "AnalyticsSessionMetric",
            "AnalyticsConversationSegment",
        ],
    );
}

#[test]
fn fixture_covers_every_field_of_seeds_003_and_004() {
    let Some(dir) = seeds_dir() else {
        println!("skipped: ../shared/seeds is not beside the repository (CI has it there)");
        return;
    };
    let fx = fixture();
    // Seeds 003 and 004 use seed 000's table layout.
    let seed_003 = parse_seed_000(&read_seed(&dir, "003_"));
    assert_eq!(seed_003.len(), 47, "seed 003 rows: {:?}", seed_003.keys());
    assert_matches_seed(&fx, "JourneySession", &seed_003);
    let seed_004 = parse_seed_000(&read_seed(&dir, "004_"));
    assert_eq!(seed_004.len(), 85, "seed 004 rows: {:?}", seed_004.keys());
    assert_matches_seed(&fx, "AnalyticsSession", &seed_004);
}
