//! Property tests that the SDK's hand-written decoder of server frames
//! ([`server_to_visitor_from_value`], behind [`decode_server_to_visitor`] and
//! `ServerToVisitor`'s `Deserialize`) says exactly what the serde definition of
//! [`ServerToVisitor`] says, and that [`MirrorData::check`] and
//! [`MirrorData::starts_snapshot`], which read records as a stream and as text, agree
//! with a reading of the same records as a JSON tree.
//!
//! The serde definition is the `Serialize` derive on `ServerToVisitor` (the wire format
//! the server writes). Its `Deserialize` is hand-written to keep serde's derived
//! decoder out of the wasm bundle, so these tests derive one here, [`Derived`], with the
//! same attributes, and prove it against the `Serialize` derive first (every message
//! the server can write decodes to itself): it is then the reference for arbitrary
//! input, and the hand-written decoder must agree with it on every JSON value, accept
//! or reject, and decode to the same message when both accept.
//!
//! The hand-written decoder takes only the forms the server writes, where serde's
//! derived decoders also take others; these differences are intended (see
//! [`reference`]):
//! - a struct (the frame itself, `agent`, `state`, `action`) only as a JSON object;
//!   serde also takes an array of its fields in order (`["session_start","s1"]`);
//! - an enum value (`disconnectType`, `reason`, `prompt`, `state.status`) only as its
//!   string; serde also takes a one-member object (`{"client":null}`);
//! - `state.connection` and `state.communication` only as an object or null (a seed
//!   Connection and a seed Cobrowsesession); to serde they are `Option<Json>`, so any
//!   JSON value would do.

use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::*;
use crate::core::json::Json;
use crate::core::strategies::{json_value, number, opt_text, text};

// ----- the reference: serde's own derived decoder ----------------------------------

/// `ServerToVisitor` with serde's derived `Deserialize`: the same variants, fields and
/// attributes (keep them in step; [`derived_decodes_what_the_server_writes`] fails
/// when they drift from the `Serialize` derive).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Derived {
    Welcome {
        protocol_version: u32,
        short_id: String,
        #[serde(rename = "uniqueConnectionId")]
        unique_connection_id: String,
        lookup_code: Option<String>,
        visitor_secret: Option<String>,
    },
    SessionRequest {
        session_id: String,
        agent: Agent,
        #[serde(default)]
        recorded: bool,
    },
    SessionStart {
        session_id: String,
    },
    SessionContinue {
        session_id: String,
    },
    SessionEnd {
        session_id: String,
        #[serde(rename = "disconnectType")]
        disconnect_type: DisconnectType,
    },
    ControlRequest {
        agent: Agent,
    },
    ControlStart {
        agent_id: String,
    },
    ControlEnd {
        agent_id: String,
        reason: ControlEndReason,
    },
    PromptWithdrawn {
        prompt: PromptKind,
    },
    State {
        state: Box<VisitorState>,
    },
    HeartbeatAck,
    Error(ErrorFrame),
    RemoteAction {
        id: u32,
        agent_id: String,
        action: RemoteAction,
    },
    MirrorResync,
    AssetRequest {
        id: u32,
        url: String,
    },
    Draw {
        agent_id: String,
        name: String,
        color: u32,
        ink: Value,
    },
    Call {
        call: Value,
    },
    #[serde(other)]
    Unknown,
}

impl From<Derived> for ServerToVisitor {
    fn from(d: Derived) -> ServerToVisitor {
        use ServerToVisitor as S;
        match d {
            Derived::Welcome {
                protocol_version,
                short_id,
                unique_connection_id,
                lookup_code,
                visitor_secret,
            } => S::Welcome {
                protocol_version,
                short_id,
                unique_connection_id,
                lookup_code,
                visitor_secret,
            },
            Derived::SessionRequest {
                session_id,
                agent,
                recorded,
            } => S::SessionRequest {
                session_id,
                agent,
                recorded,
            },
            Derived::SessionStart { session_id } => S::SessionStart { session_id },
            Derived::SessionContinue { session_id } => S::SessionContinue { session_id },
            Derived::SessionEnd {
                session_id,
                disconnect_type,
            } => S::SessionEnd {
                session_id,
                disconnect_type,
            },
            Derived::ControlRequest { agent } => S::ControlRequest { agent },
            Derived::ControlStart { agent_id } => S::ControlStart { agent_id },
            Derived::ControlEnd { agent_id, reason } => S::ControlEnd { agent_id, reason },
            Derived::PromptWithdrawn { prompt } => S::PromptWithdrawn { prompt },
            Derived::State { state } => S::State { state },
            Derived::HeartbeatAck => S::HeartbeatAck,
            Derived::Error(e) => S::Error(e),
            Derived::RemoteAction {
                id,
                agent_id,
                action,
            } => S::RemoteAction {
                id,
                agent_id,
                action,
            },
            Derived::MirrorResync => S::MirrorResync,
            Derived::AssetRequest { id, url } => S::AssetRequest { id, url },
            Derived::Draw {
                agent_id,
                name,
                color,
                ink,
            } => S::Draw {
                agent_id,
                name,
                color,
                ink: Json::from(ink),
            },
            Derived::Call { call } => S::Call {
                call: Json::from(call),
            },
            Derived::Unknown => S::Unknown,
        }
    }
}

/// What the serde definition makes of a frame's text, less the forms the server
/// never writes (the intended differences in the module docs).
fn reference(text: &str) -> Option<ServerToVisitor> {
    let message = ServerToVisitor::from(serde_json::from_str::<Derived>(text).ok()?);
    let v: Value = serde_json::from_str(text).ok()?;
    let is = |v: &Value, key: &str, ok: fn(&Value) -> bool| v.get(key).is_some_and(ok);
    let object_or_null = |v: &Value| v.is_object() || v.is_null();
    let written = v.is_object()
        && match &message {
            ServerToVisitor::SessionRequest { .. } | ServerToVisitor::ControlRequest { .. } => {
                is(&v, "agent", Value::is_object)
            }
            ServerToVisitor::SessionEnd { .. } => is(&v, "disconnectType", Value::is_string),
            ServerToVisitor::ControlEnd { .. } => is(&v, "reason", Value::is_string),
            ServerToVisitor::PromptWithdrawn { .. } => is(&v, "prompt", Value::is_string),
            ServerToVisitor::State { .. } => {
                let state = &v["state"];
                state.is_object()
                    && is(state, "status", Value::is_string)
                    && state.get("connection").is_none_or(object_or_null)
                    && state.get("communication").is_none_or(object_or_null)
            }
            ServerToVisitor::RemoteAction { .. } => is(&v, "action", Value::is_object),
            // The server writes only checked inks, in the palette.
            ServerToVisitor::Draw { color, ink, .. } => {
                *color < INK_COLORS
                    && is(&v, "ink", Value::is_object)
                    && ink.to_text().len() <= MAX_INK_JSON
            }
            ServerToVisitor::Call { .. } => is(&v, "call", Value::is_object),
            _ => true,
        };
    written.then_some(message)
}

/// The variant's position in `ServerToVisitor`: a new variant fails to compile here
/// until it has a strategy below and a place in [`Derived`].
fn variant(m: &ServerToVisitor) -> usize {
    match m {
        ServerToVisitor::Welcome { .. } => 0,
        ServerToVisitor::SessionRequest { .. } => 1,
        ServerToVisitor::SessionStart { .. } => 2,
        ServerToVisitor::SessionContinue { .. } => 3,
        ServerToVisitor::SessionEnd { .. } => 4,
        ServerToVisitor::ControlRequest { .. } => 5,
        ServerToVisitor::ControlStart { .. } => 6,
        ServerToVisitor::ControlEnd { .. } => 7,
        ServerToVisitor::PromptWithdrawn { .. } => 8,
        ServerToVisitor::State { .. } => 9,
        ServerToVisitor::HeartbeatAck => 10,
        ServerToVisitor::Error(_) => 11,
        ServerToVisitor::RemoteAction { .. } => 12,
        ServerToVisitor::MirrorResync => 13,
        ServerToVisitor::Draw { .. } => 14,
        ServerToVisitor::Unknown => 15,
        ServerToVisitor::AssetRequest { .. } => 16,
        ServerToVisitor::Call { .. } => 17,
    }
}

const VARIANTS: usize = 18;

// ----- strategies --------------------------------------------------------------------

/// A JSON object in any key order (the SDK's [`Json`] keeps document order).
fn json_object() -> impl Strategy<Value = Json> {
    prop::collection::vec((text(), json_value()), 0..5).prop_map(|members| {
        Json::Object(
            members
                .into_iter()
                .map(|(k, v)| (k, Json::from(v)))
                .collect(),
        )
    })
}

fn agent() -> impl Strategy<Value = Agent> {
    (
        text(),
        opt_text(),
        opt_text(),
        text(),
        text(),
        any::<bool>(),
    )
        .prop_map(
            |(agent_nickname, email, external_id, id, name, on_premise)| Agent {
                agent_nickname,
                email,
                external_id,
                id,
                name,
                on_premise,
            },
        )
}

fn disconnect_type() -> impl Strategy<Value = DisconnectType> {
    use DisconnectType as D;
    prop::sample::select(vec![
        D::Client,
        D::Peer,
        D::System,
        D::TransportFailure,
        D::Timeout,
    ])
}

fn control_end_reason() -> impl Strategy<Value = ControlEndReason> {
    use ControlEndReason as R;
    prop::sample::select(vec![
        R::Denied,
        R::RevokedByVisitor,
        R::RevokedByAgent,
        R::FocusLost,
        R::SessionEnded,
    ])
}

fn remote_action() -> impl Strategy<Value = RemoteAction> {
    prop_oneof![
        (number(), number(), number()).prop_map(|(node, x, y)| RemoteAction::Click { node, x, y }),
        (number(), number(), number()).prop_map(|(node, x, y)| RemoteAction::Scroll { node, x, y }),
        (number(), text()).prop_map(|(node, value)| RemoteAction::Type { node, value }),
        text().prop_map(|url| RemoteAction::Redirect { url }),
        (number(), number()).prop_map(|(x, y)| RemoteAction::Pointer { x, y }),
    ]
}

fn visitor_state() -> impl Strategy<Value = VisitorState> {
    (
        prop::sample::select(vec![
            SessionStatus::None,
            SessionStatus::Authorizing,
            SessionStatus::Active,
            SessionStatus::Ended,
        ]),
        proptest::option::of(json_object()),
        proptest::option::of(json_object()),
    )
        .prop_map(|(status, connection, communication)| VisitorState {
            status,
            connection,
            communication,
        })
}

/// Every message the server can send the SDK, with arbitrary contents (`Unknown` is
/// never written: it is what an unknown `type` decodes to).
fn server_to_visitor() -> impl Strategy<Value = ServerToVisitor> {
    use ServerToVisitor as S;
    prop_oneof![
        (number(), text(), text(), opt_text(), opt_text()).prop_map(
            |(protocol_version, short_id, unique_connection_id, lookup_code, visitor_secret)| {
                S::Welcome {
                    protocol_version,
                    short_id,
                    unique_connection_id,
                    lookup_code,
                    visitor_secret,
                }
            }
        ),
        (text(), agent(), any::<bool>()).prop_map(|(session_id, agent, recorded)| {
            S::SessionRequest {
                session_id,
                agent,
                recorded,
            }
        }),
        text().prop_map(|session_id| S::SessionStart { session_id }),
        text().prop_map(|session_id| S::SessionContinue { session_id }),
        (text(), disconnect_type()).prop_map(|(session_id, disconnect_type)| S::SessionEnd {
            session_id,
            disconnect_type
        }),
        agent().prop_map(|agent| S::ControlRequest { agent }),
        text().prop_map(|agent_id| S::ControlStart { agent_id }),
        (text(), control_end_reason())
            .prop_map(|(agent_id, reason)| S::ControlEnd { agent_id, reason }),
        prop_oneof![Just(PromptKind::Session), Just(PromptKind::Control)]
            .prop_map(|prompt| S::PromptWithdrawn { prompt }),
        visitor_state().prop_map(|state| S::State {
            state: Box::new(state)
        }),
        Just(S::HeartbeatAck),
        (text(), text()).prop_map(|(code, message)| S::Error(ErrorFrame { code, message })),
        (number(), text(), remote_action()).prop_map(|(id, agent_id, action)| S::RemoteAction {
            id,
            agent_id,
            action
        }),
        Just(S::MirrorResync),
        (number(), text()).prop_map(|(id, url)| S::AssetRequest { id, url }),
        // The ink's keys in serde_json's order (the reference reads the ink as a
        // `serde_json::Value`, which sorts them; the SDK keeps the document's order).
        (text(), text(), 0..INK_COLORS, json_object()).prop_map(|(agent_id, name, color, ink)| {
            S::Draw {
                agent_id,
                name,
                color,
                ink: Json::from(serde_json::Value::from(ink)),
            }
        }),
        // A call's JSON is the call file's to read; the wasm checks it is an object.
        json_object().prop_map(|call| S::Call {
            call: Json::from(serde_json::Value::from(call)),
        }),
    ]
}

/// Every field name the server's frames use, for mutations that add or retype one.
const FIELD_NAMES: &[&str] = &[
    "type",
    "protocol_version",
    "short_id",
    "uniqueConnectionId",
    "lookup_code",
    "visitor_secret",
    "session_id",
    "agent",
    "agent_nickname",
    "email",
    "external_id",
    "id",
    "name",
    "on_premise",
    "disconnectType",
    "agent_id",
    "reason",
    "prompt",
    "state",
    "status",
    "connection",
    "communication",
    "code",
    "message",
    "action",
    "kind",
    "node",
    "x",
    "y",
    "value",
    "url",
    "call",
];

/// Every string value the server's frames tag or enumerate with.
const TAG_VALUES: &[&str] = &[
    "welcome",
    "session_request",
    "session_start",
    "session_continue",
    "session_end",
    "control_request",
    "control_start",
    "control_end",
    "prompt_withdrawn",
    "state",
    "heartbeat_ack",
    "error",
    "remote_action",
    "call",
    "mirror_resync",
    "asset_request",
    "unknown",
    "teleport",
    "client",
    "peer",
    "system",
    "transport.failure",
    "timeout",
    "denied",
    "revoked_by_visitor",
    "revoked_by_agent",
    "focus_lost",
    "session_ended",
    "session",
    "control",
    "none",
    "authorizing",
    "active",
    "ended",
    "click",
    "scroll",
    "type",
    "redirect",
    "pointer",
    "Welcome",
];

/// One change to a frame: where (the n-th object in it, the n-th member of that), what.
#[derive(Debug, Clone)]
enum Mutation {
    Remove {
        object: usize,
        member: usize,
    },
    Replace {
        object: usize,
        member: usize,
        with: Value,
    },
    Add {
        object: usize,
        name: String,
        with: Value,
    },
    Retag {
        object: usize,
        member: usize,
        with: String,
    },
    Wrap,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let name = prop_oneof![
        3 => prop::sample::select(FIELD_NAMES).prop_map(str::to_string),
        1 => text(),
    ];
    let small = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(json!(-1)),
            Just(json!(0)),
            Just(json!(u64::from(u32::MAX))),
            Just(json!(u64::from(u32::MAX) + 1)),
            Just(json!(1.5)),
            Just(json!(2.0)),
            any::<u64>().prop_map(|n| json!(n)),
        ],
        prop::sample::select(TAG_VALUES).prop_map(|s| json!(s)),
        json_value(),
    ];
    prop_oneof![
        2 => (any::<usize>(), any::<usize>()).prop_map(|(object, member)| Mutation::Remove { object, member }),
        4 => (any::<usize>(), any::<usize>(), small.clone())
            .prop_map(|(object, member, with)| Mutation::Replace { object, member, with }),
        1 => (any::<usize>(), name, small).prop_map(|(object, name, with)| Mutation::Add { object, name, with }),
        2 => (any::<usize>(), any::<usize>(), prop::sample::select(TAG_VALUES).prop_map(str::to_string))
            .prop_map(|(object, member, with)| Mutation::Retag { object, member, with }),
        1 => Just(Mutation::Wrap),
    ]
}

fn count_objects(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(count_objects).sum::<usize>(),
        Value::Array(items) => items.iter().map(count_objects).sum(),
        _ => 0,
    }
}

/// The `n`-th object in `v`, in document order (`v` itself first).
fn nth_object<'v>(v: &'v mut Value, n: &mut usize) -> Option<&'v mut Map<String, Value>> {
    match v {
        Value::Object(m) => {
            if *n == 0 {
                return Some(m);
            }
            *n -= 1;
            m.values_mut().find_map(|child| nth_object(child, n))
        }
        Value::Array(items) => items.iter_mut().find_map(|child| nth_object(child, n)),
        _ => None,
    }
}

/// One of the objects in `v`, chosen by `i`.
fn pick(v: &mut Value, i: usize) -> Option<&mut Map<String, Value>> {
    let count = count_objects(v);
    if count == 0 {
        return None;
    }
    nth_object(v, &mut (i % count))
}

fn apply(mut v: Value, mutation: &Mutation) -> Value {
    let nth_key = |m: &Map<String, Value>, i: usize| m.keys().nth(i % m.len().max(1)).cloned();
    match mutation {
        Mutation::Wrap => return Value::Array(vec![v]),
        Mutation::Remove { object, member } => {
            if let Some(m) = pick(&mut v, *object) {
                if let Some(k) = nth_key(m, *member) {
                    m.remove(&k);
                }
            }
        }
        Mutation::Replace {
            object,
            member,
            with,
        } => {
            if let Some(m) = pick(&mut v, *object) {
                if let Some(k) = nth_key(m, *member) {
                    m.insert(k, with.clone());
                }
            }
        }
        Mutation::Add { object, name, with } => {
            if let Some(m) = pick(&mut v, *object) {
                m.insert(name.clone(), with.clone());
            }
        }
        Mutation::Retag {
            object,
            member,
            with,
        } => {
            if let Some(m) = pick(&mut v, *object) {
                if let Some(k) = nth_key(m, *member) {
                    m.insert(k, Value::String(with.clone()));
                }
            }
        }
    }
    v
}

fn frame_value(m: &ServerToVisitor) -> Value {
    serde_json::from_str(&encode(m)).expect("encode writes JSON")
}

/// `m` as it comes out of a `serde_json::Value`, whose objects keep their keys sorted
/// (the SDK's [`Json`] keeps document order).
fn through_value(m: &ServerToVisitor) -> ServerToVisitor {
    let sorted = |j: &Option<Json>| j.clone().map(|j| Json::from(serde_json::Value::from(j)));
    match m {
        ServerToVisitor::State { state } => ServerToVisitor::State {
            state: Box::new(VisitorState {
                status: state.status,
                connection: sorted(&state.connection),
                communication: sorted(&state.communication),
            }),
        },
        other => other.clone(),
    }
}

#[test]
fn the_strategies_cover_every_variant() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = server_to_visitor();
    let mut seen = [false; VARIANTS];
    for _ in 0..1000 {
        let m = strategy.new_tree(&mut runner).expect("a value").current();
        seen[variant(&m)] = true;
    }
    // Never written by a server: it is what a type this SDK does not know decodes to.
    seen[variant(&ServerToVisitor::Unknown)] = true;
    assert!(seen.iter().all(|s| *s), "variants generated: {seen:?}");
}

/// The intended differences exist: serde's derived decoder takes these forms, the
/// hand-written one does not, and [`reference`] leaves them out.
#[test]
fn the_intended_differences_are_real() {
    let state = |connection: &str| {
        format!(
            r#"{{"type":"state","state":{{"status":"none","connection":{connection},"communication":null}}}}"#
        )
    };
    let odd = [
        state("1"),
        state(r#""x""#),
        state("[]"),
        r#"["session_start","s1"]"#.to_string(),
        r#"{"type":"session_end","session_id":"s1","disconnectType":{"client":null}}"#.to_string(),
        r#"{"type":"control_request","agent":["n",null,null,"ea_1","Sam",true]}"#.to_string(),
        r#"{"type":"remote_action","id":1,"agent_id":"a","action":["pointer",1,2]}"#.to_string(),
        r#"{"type":"state","state":["none",null,null]}"#.to_string(),
    ];
    for text in odd {
        assert!(serde_json::from_str::<Derived>(&text).is_ok(), "{text}");
        assert_eq!(reference(&text), None, "{text}");
        assert!(
            serde_json::from_str::<ServerToVisitor>(&text).is_err(),
            "{text}"
        );
    }
    for text in [state("{}"), state("null")] {
        assert!(reference(&text).is_some());
        assert!(serde_json::from_str::<ServerToVisitor>(&text).is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The reference is the serde definition: it decodes every frame the server writes
    /// to the message written.
    #[test]
    fn derived_decodes_what_the_server_writes(m in server_to_visitor()) {
        prop_assert_eq!(reference(&encode(&m)), Some(m));
    }

    /// Every frame the server writes comes back as itself through the SDK's paths: the
    /// browser's (the page parses the JSON, then `decode_server_to_visitor`), the
    /// native one (`decode` of the text), and from a `serde_json::Value`.
    #[test]
    fn the_hand_written_decoder_reads_every_frame_the_server_writes(m in server_to_visitor()) {
        let text = encode(&m);
        prop_assert!(text.len() <= MAX_FRAME_BYTES);
        prop_assert_eq!(decode::<ServerToVisitor>(&text), Ok(m.clone()));
        let parsed = Json::parse(&text).expect("encode writes JSON");
        prop_assert_eq!(decode_server_to_visitor(parsed), Ok(m.clone()));
        prop_assert_eq!(
            serde_json::from_value::<ServerToVisitor>(frame_value(&m)).ok(),
            Some(through_value(&m))
        );
    }

    /// On any JSON (frames with fields removed, retyped, retagged or added, and random
    /// values), the hand-written decoder accepts exactly what serde's derived decoder
    /// accepts (less the intended difference) and decodes it to the same message; the
    /// SDK's entry point turns unknown types into `unknown_message_type` and every other
    /// refusal into `malformed_frame`.
    #[test]
    fn the_hand_written_decoder_agrees_with_serde_on_any_json(
        m in server_to_visitor(),
        mutations in prop::collection::vec(mutation(), 0..4),
        random in json_value(),
        use_random in prop::bool::weighted(0.1),
    ) {
        let v = if use_random {
            random
        } else {
            mutations.iter().fold(frame_value(&m), apply)
        };
        let text = v.to_string();
        let hand = serde_json::from_str::<ServerToVisitor>(&text).ok();
        prop_assert_eq!(&hand, &reference(&text), "{}", text);
        let sdk = decode_server_to_visitor(Json::parse(&text).expect("JSON"));
        match hand {
            Some(ServerToVisitor::Unknown) => prop_assert_eq!(
                sdk.map_err(|e| e.code()),
                Err(ErrorCode::UNKNOWN_MESSAGE_TYPE)
            ),
            Some(message) => prop_assert_eq!(sdk, Ok(message)),
            None => prop_assert_eq!(sdk.map_err(|e| e.code()), Err(ErrorCode::MALFORMED_FRAME)),
        }
    }
}

// ----- mirror records -----------------------------------------------------------------

/// A record: mostly well formed (`[kind, …]`), sometimes not.
fn record() -> impl Strategy<Value = Value> {
    let kind = prop::sample::select(vec!["S", "N", "T", "A", "R", "p", "z"]);
    let bad_kind = prop_oneof![
        Just(json!("")),
        Just(json!("SS")),
        Just(json!("1")),
        Just(json!("_")),
        Just(json!("\u{e9}")),
        Just(json!(83)),
        Just(Value::Null),
        Just(json!(["S"])),
    ];
    let rest = prop::collection::vec(json_value(), 0..4);
    prop_oneof![
        8 => (kind, rest.clone()).prop_map(|(k, rest)| {
            Value::Array(std::iter::once(json!(k)).chain(rest).collect())
        }),
        1 => (bad_kind, rest).prop_map(|(k, rest)| {
            Value::Array(std::iter::once(k).chain(rest).collect())
        }),
        1 => Just(json!([])),
        1 => json_value(),
    ]
}

/// A batch as a tree: an array of records, each an array whose first element is a
/// one-letter kind, at most [`MAX_MIRROR_RECORDS`] of them.
fn reference_check(v: &Value) -> Result<(), &'static str> {
    let Value::Array(records) = v else {
        return Err("must be an array of records");
    };
    for (i, r) in records.iter().enumerate() {
        let kind = r.as_array().and_then(|r| r.first()).and_then(Value::as_str);
        if !kind.is_some_and(|k| k.len() == 1 && k.as_bytes()[0].is_ascii_alphabetic()) {
            return Err("records must be arrays starting with a one-letter kind");
        }
        if i + 1 > MAX_MIRROR_RECORDS {
            return Err("has too many records");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `check` (a stream over the text) and `starts_snapshot` (a look at its start)
    /// say what a reading of the records as a tree says, however the text is spaced
    /// and its strings spelled.
    #[test]
    fn mirror_checks_agree_with_a_reading_as_a_tree(
        batch in prop_oneof![
            6 => prop::collection::vec(record(), 0..8).prop_map(Value::Array),
            1 => json_value(),
        ],
        pretty in any::<bool>(),
        escaped in any::<bool>(),
    ) {
        let mut text = if pretty {
            serde_json::to_string_pretty(&batch).expect("JSON")
        } else {
            batch.to_string()
        };
        if escaped {
            // The same strings, spelled with escapes (`"S"` can only be a whole string).
            text = text.replace(r#""S""#, r#""\u0053""#).replace(r#""p""#, r#""\u0070""#);
        }
        let data = MirrorData::from_text(text.clone()).expect("valid JSON");
        prop_assert_eq!(data.check(), reference_check(&batch), "{}", text);
        let snapshot = batch.get(0).and_then(|r| r.get(0)) == Some(&json!("S"));
        prop_assert_eq!(data.starts_snapshot(), snapshot, "{}", text);
        prop_assert_eq!(data.text(), text.as_str());
    }
}

#[test]
fn mirror_batches_over_the_record_limit_are_refused() {
    let records = |n: usize| format!("[{}]", vec![r#"["p",1]"#; n].join(","));
    let at_limit = MirrorData::from_text(records(MAX_MIRROR_RECORDS)).unwrap();
    assert_eq!(at_limit.check(), Ok(()));
    let over = MirrorData::from_text(records(MAX_MIRROR_RECORDS + 1)).unwrap();
    assert_eq!(over.check(), Err("has too many records"));
    assert_eq!(
        over.check(),
        reference_check(&serde_json::from_str(over.text()).unwrap())
    );
}

/// `encode`'s own fallback (written by hand, for a message serde cannot write, such
/// as the decode-only `track`) is an error frame the SDK reads as one.
#[test]
fn the_encode_fallback_is_an_error_frame() {
    let frame = encode(&VisitorMessage::Track {
        sent_at: 1,
        events: Vec::new(),
    });
    match decode::<ServerToVisitor>(&frame) {
        Ok(ServerToVisitor::Error(e)) => {
            assert_eq!(e.code, "encode_failed");
            assert!(e.message.contains("Track"), "{}", e.message);
        }
        other => panic!("{frame} decodes as {other:?}"),
    }
}
