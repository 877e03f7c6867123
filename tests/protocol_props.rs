//! Property tests of the wire codec: every visitor and agent message survives
//! encode → decode unchanged (every variant: `the_strategies_cover_every_variant`; the
//! `track` frame, which the SDK writes by hand, has its own in the client's
//! `codec_props`), and no input a peer can send (random text, random bytes,
//! truncated frames, JSON with made-up types, oversized frames) makes decoding panic.
//! Unknown types are `unknown_message_type`, oversized frames `frame_too_large`.
// Native only: these use proptest or the file system, which wasm32 lacks.
#![cfg(not(target_arch = "wasm32"))]

use covisit::core::protocol::{
    decode, encode, AgentMessage, CallFromAgent, ConnectionHello, FoundBy, Ink, InkShape,
    MirrorData, ProtocolError, RemoteAction, RemoteRefusal, ServerToAgent, ServerToVisitor,
    VisitorMessage, WireMessage, INK_COLORS, MAX_FRAME_BYTES, MAX_INK_COORD, MAX_INK_POINTS,
    PROTOCOL_VERSION,
};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const VISITOR_TYPES: &[&str] = &[
    "hello",
    "heartbeat",
    "focus",
    "url",
    "expect_disconnect",
    "update_visitor",
    "authorize",
    "deny",
    "end",
    "control_grant",
    "control_deny",
    "control_revoke",
    "request_agent",
    "cancel_request_agent",
    "rate",
    "mirror",
    "remote_applied",
    "call_link",
    // Decoded only: the SDK writes it by hand (see src/core/client/codec_props.rs).
    "track",
    // Decoded only: the SDK wraps its call file's JSON by hand (`client.rs` `call_send`).
    "call",
    // Decoded only: the SDK writes it by hand (src/core/client/console.rs).
    "console",
];

const AGENT_TYPES: &[&str] = &[
    "hello",
    "heartbeat",
    "request_session",
    "join_session",
    "end_session",
    "leave_session",
    "note",
    "request_control",
    "release_control",
    "remote_action",
    "mirror_resync",
    "search",
    "watch",
    "draw",
    "set_active_connection",
    "call",
    "rate_session",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        // Strings that look like the JSON around them.
        "[\"{}:,\\\\ a-z0-9\u{e9}\u{1F600}]{0,40}",
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

/// Arbitrary JSON without floats (serde_json does not promise float round trips
/// without its `float_roundtrip` feature; integers and everything else round-trip).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn remote_action() -> impl Strategy<Value = RemoteAction> {
    prop_oneof![
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(node, x, y)| RemoteAction::Click {
            node,
            x,
            y
        }),
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(node, x, y)| RemoteAction::Scroll {
            node,
            x,
            y
        }),
        (any::<u32>(), text()).prop_map(|(node, value)| RemoteAction::Type { node, value }),
        text().prop_map(|url| RemoteAction::Redirect { url }),
        (any::<u32>(), any::<u32>()).prop_map(|(x, y)| RemoteAction::Pointer { x, y }),
    ]
}

/// Mirror records: an array of `[kind, …]` arrays, as JSON text.
fn mirror_data() -> impl Strategy<Value = MirrorData> {
    prop::collection::vec(
        ("[A-Za-z]", prop::collection::vec(json_value(), 0..3)),
        0..4,
    )
    .prop_map(|records| {
        let records: Vec<Value> = records
            .into_iter()
            .map(|(kind, rest)| {
                Value::Array(std::iter::once(Value::String(kind)).chain(rest).collect())
            })
            .collect();
        MirrorData::from_text(Value::Array(records).to_string()).expect("JSON")
    })
}

/// Every variant of the two messages a peer sends the server, by position: a new
/// variant fails to compile here until the strategies below generate it.
fn visitor_variant(m: &VisitorMessage) -> usize {
    use VisitorMessage as V;
    match m {
        V::Hello { .. } => 0,
        V::Heartbeat => 1,
        V::Focus { .. } => 2,
        V::Url { .. } => 3,
        V::ExpectDisconnect { .. } => 4,
        V::UpdateVisitor { .. } => 5,
        V::Authorize => 6,
        V::Deny => 7,
        V::End => 8,
        V::ControlGrant => 9,
        V::ControlDeny => 10,
        V::ControlRevoke => 11,
        V::RequestAgent => 12,
        V::CancelRequestAgent => 13,
        V::Rate { .. } => 14,
        // Written by hand by the SDK, never by `encode`: its own property test.
        V::Track { .. } => 15,
        V::Mirror { .. } => 16,
        // (`mirror_frames_written_by_hand_decode` covers `Mirror`.)
        V::RemoteApplied { .. } => 17,
        V::CallLink { .. } => 18,
        // Written by hand by the SDK (its call file's JSON): never by `encode`.
        V::Call { .. } => 19,
        // What an unknown type decodes to: never written.
        V::Unknown => 20,
        // Written by hand by the SDK (`client/console.rs`, whose tests decode it).
        V::Console { .. } => 21,
    }
}

fn agent_variant(m: &AgentMessage) -> usize {
    use AgentMessage as A;
    match m {
        A::Hello { .. } => 0,
        A::Heartbeat => 1,
        A::RequestSession { .. } => 2,
        A::JoinSession { .. } => 3,
        A::EndSession { .. } => 4,
        A::LeaveSession { .. } => 5,
        A::Note { .. } => 6,
        A::RequestControl { .. } => 7,
        A::ReleaseControl { .. } => 8,
        A::RemoteAction { .. } => 9,
        A::MirrorResync { .. } => 10,
        A::Search { .. } => 11,
        A::Watch { .. } => 12,
        A::Draw { .. } => 13,
        A::SetActiveConnection { .. } => 14,
        A::Call { .. } => 15,
        A::Unknown => 16,
        A::RateSession { .. } => 17,
    }
}

fn connection_hello() -> impl Strategy<Value = ConnectionHello> {
    (
        opt_text(),
        opt_text(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        any::<bool>(),
        opt_text(),
        opt_text(),
        prop::collection::vec(text(), 0..3),
    )
        .prop_map(
            |(
                unique_connection_id,
                current_url,
                screen_width,
                screen_height,
                audio_supported,
                has_focus,
                user_agent,
                integration,
                missing,
            )| {
                ConnectionHello {
                    unique_connection_id,
                    current_url,
                    screen_width,
                    screen_height,
                    audio_supported,
                    has_focus,
                    user_agent,
                    integration,
                    missing,
                }
            },
        )
}

/// One strategy per variant, `Unknown` excepted (it never round-trips by design).
fn visitor_message() -> impl Strategy<Value = VisitorMessage> {
    prop_oneof![
        (
            text(),
            opt_text(),
            opt_text(),
            connection_hello(),
            json_value()
        )
            .prop_map(|(api_key, short_id, visitor_secret, connection, config)| {
                VisitorMessage::Hello {
                    protocol_version: PROTOCOL_VERSION,
                    api_key,
                    short_id,
                    visitor_secret,
                    connection,
                    config: config.into(),
                }
            }),
        Just(VisitorMessage::Heartbeat),
        any::<bool>().prop_map(|has_focus| VisitorMessage::Focus { has_focus }),
        text().prop_map(|current_url| VisitorMessage::Url { current_url }),
        (proptest::option::of(any::<u64>()), opt_text(), opt_text()).prop_map(
            |(return_time_seconds, message, title)| VisitorMessage::ExpectDisconnect {
                return_time_seconds,
                message,
                title
            }
        ),
        json_value().prop_map(|identity| VisitorMessage::UpdateVisitor {
            identity: identity.into()
        }),
        Just(VisitorMessage::Authorize),
        Just(VisitorMessage::Deny),
        Just(VisitorMessage::End),
        Just(VisitorMessage::ControlGrant),
        Just(VisitorMessage::ControlDeny),
        Just(VisitorMessage::ControlRevoke),
        Just(VisitorMessage::RequestAgent),
        Just(VisitorMessage::CancelRequestAgent),
        (text(), any::<u8>(), opt_text()).prop_map(|(session_id, rating, feedback)| {
            VisitorMessage::Rate {
                session_id,
                rating,
                feedback,
            }
        }),
        (
            any::<u32>(),
            any::<bool>(),
            prop::option::of(prop::sample::select(RemoteRefusal::ALL.to_vec()))
        )
            .prop_map(|(id, ok, reason)| VisitorMessage::RemoteApplied { id, ok, reason }),
        text().prop_map(|token| VisitorMessage::CallLink { token }),
    ]
}

fn agent_message() -> impl Strategy<Value = AgentMessage> {
    prop_oneof![
        (opt_text(), opt_text(), opt_text()).prop_map(|(secret_key, name, external_id)| {
            AgentMessage::Hello {
                protocol_version: PROTOCOL_VERSION,
                secret_key,
                name,
                external_id,
            }
        }),
        Just(AgentMessage::Heartbeat),
        (
            text(),
            prop_oneof![Just(FoundBy::LookupCode), Just(FoundBy::Search)]
        )
            .prop_map(|(short_id, found_by)| AgentMessage::RequestSession { short_id, found_by }),
        text().prop_map(|session_id| AgentMessage::JoinSession { session_id }),
        text().prop_map(|session_id| AgentMessage::EndSession { session_id }),
        text().prop_map(|session_id| AgentMessage::LeaveSession { session_id }),
        (text(), text()).prop_map(|(session_id, text)| AgentMessage::Note { session_id, text }),
        text().prop_map(|session_id| AgentMessage::RequestControl { session_id }),
        text().prop_map(|session_id| AgentMessage::ReleaseControl { session_id }),
        (text(), text(), ink()).prop_map(|(session_id, tab, ink)| AgentMessage::Draw {
            session_id,
            tab,
            ink
        }),
        (text(), opt_text()).prop_map(|(session_id, unique_connection_id)| {
            AgentMessage::SetActiveConnection {
                session_id,
                unique_connection_id,
            }
        }),
        (text(), opt_text(), remote_action()).prop_map(|(session_id, tab, action)| {
            AgentMessage::RemoteAction {
                session_id,
                tab,
                action,
            }
        }),
        text().prop_map(|session_id| AgentMessage::MirrorResync { session_id }),
        text().prop_map(|q| AgentMessage::Search { q }),
        text().prop_map(|short_id| AgentMessage::Watch { short_id }),
        (text(), any::<bool>(), any::<bool>()).prop_map(|(session_id, a, b)| {
            let even = session_id.len() % 2 == 0;
            AgentMessage::Call {
                session_id,
                call: if a {
                    CallFromAgent::Media { audio: a, video: b }
                } else if b {
                    CallFromAgent::Start { video: b }
                } else {
                    CallFromAgent::End {
                        reason: even
                            .then_some(covisit::core::protocol::VisitorCallEnd::MediaDenied),
                    }
                },
            }
        }),
        (text(), any::<u8>(), opt_text()).prop_map(|(session_id, rating, feedback)| {
            AgentMessage::RateSession {
                session_id,
                rating,
                feedback,
            }
        }),
    ]
}

fn coord() -> impl Strategy<Value = i32> {
    -MAX_INK_COORD..=MAX_INK_COORD
}

/// Inks within the protocol's limits (`Ink::check`).
fn ink() -> impl Strategy<Value = Ink> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u32>(),
            coord(),
            coord(),
            coord(),
            coord()
        )
            .prop_map(|(node, epoch, ox, oy, x, y)| Ink::Laser {
                node,
                epoch,
                ox,
                oy,
                x,
                y
            }),
        (
            any::<u32>(),
            (any::<u32>(), any::<u32>()),
            coord(),
            coord(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec([coord(), coord()], 1..=MAX_INK_POINTS),
        )
            .prop_map(|(id, (node, epoch), ox, oy, arrow, pinned, done, points)| {
                Ink::Stroke {
                    id,
                    node,
                    epoch,
                    ox,
                    oy,
                    shape: if arrow {
                        InkShape::Arrow
                    } else {
                        InkShape::Free
                    },
                    pinned,
                    done,
                    points,
                }
            }),
        Just(Ink::Clear),
    ]
}

#[test]
fn the_strategies_cover_every_variant() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut visitor = [false; 22];
    let mut agent = [false; 18];
    for _ in 0..1000 {
        let v = visitor_message()
            .new_tree(&mut runner)
            .expect("a value")
            .current();
        visitor[visitor_variant(&v)] = true;
        let a = agent_message()
            .new_tree(&mut runner)
            .expect("a value")
            .current();
        agent[agent_variant(&a)] = true;
    }
    // Not written by `encode` (see `visitor_variant`).
    visitor[15] = true;
    visitor[16] = true;
    visitor[19] = true;
    visitor[20] = true;
    visitor[21] = true;
    agent[16] = true;
    assert!(
        visitor.iter().all(|s| *s),
        "visitor variants generated: {visitor:?}"
    );
    assert!(
        agent.iter().all(|s| *s),
        "agent variants generated: {agent:?}"
    );
}

fn type_of(frame: &str) -> String {
    let v: Value = serde_json::from_str(frame).expect("encode writes JSON");
    v["type"]
        .as_str()
        .expect("every frame has a string type")
        .to_string()
}

/// Decodes `frame` as every message type a peer can reach; only the outcome counts,
/// a panic fails the test.
fn decode_all(frame: &str) {
    let _ = decode::<VisitorMessage>(frame);
    let _ = decode::<AgentMessage>(frame);
    let _ = decode::<ServerToVisitor>(frame);
    let _ = decode::<ServerToAgent>(frame);
}

/// The largest char boundary of `s` at or below `i`.
fn floor_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn round_trips<M: WireMessage + PartialEq + std::fmt::Debug + Clone>(
    message: &M,
    known: &[&str],
) -> Result<(), TestCaseError> {
    let frame = encode(message);
    prop_assert!(
        known.contains(&type_of(&frame).as_str()),
        "type of {}",
        frame
    );
    if frame.len() > MAX_FRAME_BYTES {
        prop_assert_eq!(decode::<M>(&frame).unwrap_err().code(), "frame_too_large");
    } else {
        prop_assert_eq!(decode::<M>(&frame), Ok(message.clone()));
    }
    Ok(())
}

/// A message's frame cut short anywhere is a malformed frame, never a panic or a
/// different message.
fn truncations_fail<M: WireMessage + std::fmt::Debug>(
    frame: &str,
    cut: usize,
) -> Result<(), TestCaseError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Ok(()); // refused by size before parsing; covered below
    }
    let cut = floor_boundary(frame, cut % frame.len());
    let e = decode::<M>(&frame[..cut]).unwrap_err();
    prop_assert_eq!(
        e.code(),
        "malformed_frame",
        "{:?} for {:?}",
        e,
        &frame[..cut]
    );
    decode_all(&frame[..cut]);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The SDK's hand-written decoder reads back every `draw` frame the server writes
    /// (inks within the limits fit its size bound), and refuses a colour outside the palette.
    #[test]
    fn draw_frames_round_trip_through_the_sdk_decoder(
        agent_id in text(),
        name in text(),
        color in 0..INK_COLORS,
        ink in ink(),
    ) {
        let frame = ServerToVisitor::Draw { agent_id, name, color, ink: (&ink).into() };
        let text = encode(&frame);
        prop_assert!(text.len() <= MAX_FRAME_BYTES, "{} bytes", text.len());
        prop_assert_eq!(decode::<ServerToVisitor>(&text), Ok(frame.clone()));
        let off = text.replacen(&format!("\"color\":{color}"), &format!("\"color\":{}", color + INK_COLORS), 1);
        prop_assert_eq!(decode::<ServerToVisitor>(&off).unwrap_err().code(), "malformed_frame");
    }

    #[test]
    fn visitor_messages_round_trip(message in visitor_message()) {
        round_trips(&message, VISITOR_TYPES)?;
    }

    /// The SDK writes `mirror` frames by hand around the capture's JSON
    /// (`client/mirror.rs`); the server reads them with the derived decoder.
    #[test]
    fn mirror_frames_written_by_hand_decode(data in mirror_data()) {
        let frame = format!(r#"{{"type":"mirror","data":{}}}"#, data.text());
        prop_assert_eq!(decode::<VisitorMessage>(&frame), Ok(VisitorMessage::Mirror { data }));
    }

    #[test]
    fn agent_messages_round_trip(message in agent_message()) {
        round_trips(&message, AGENT_TYPES)?;
    }

    #[test]
    fn truncated_frames_are_malformed(
        visitor in visitor_message(),
        agent in agent_message(),
        cut in any::<usize>(),
    ) {
        truncations_fail::<VisitorMessage>(&encode(&visitor), cut)?;
        truncations_fail::<AgentMessage>(&encode(&agent), cut)?;
    }

    #[test]
    fn random_text_never_panics(frame in prop_oneof![any::<String>(), "[\\[\\]{}\":,0-9a-z_ \\\\.-]{0,200}"]) {
        decode_all(&frame);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_json_never_panics(value in json_value()) {
        decode_all(&value.to_string());
    }

    /// JSON objects with a made-up `type`: unknown to a side means `unknown_message_type`
    /// naming it (cut to 64 characters); a known one decodes or is malformed, but is
    /// never reported as unknown.
    #[test]
    fn made_up_types_are_unknown_message_types(
        type_name in prop_oneof![
            3 => "[a-z_]{1,24}",
            1 => any::<String>(),
            1 => "[a-z]{70,90}",
            2 => prop::sample::select(VISITOR_TYPES.iter().chain(AGENT_TYPES).copied().collect::<Vec<_>>())
                .prop_map(str::to_string),
        ],
        fields in prop::collection::btree_map("[a-zA-Z_]{1,20}", json_value(), 0..5),
    ) {
        let mut object: Map<String, Value> = fields.into_iter().collect();
        object.insert("type".into(), Value::String(type_name.clone()));
        let frame = Value::Object(object).to_string();
        prop_assume!(frame.len() <= MAX_FRAME_BYTES);
        let shown: String = type_name.chars().take(64).collect();
        for (result, known) in [
            (decode::<VisitorMessage>(&frame).map(|_| ()), VISITOR_TYPES),
            (decode::<AgentMessage>(&frame).map(|_| ()), AGENT_TYPES),
        ] {
            if known.contains(&type_name.as_str()) {
                prop_assert!(
                    !matches!(result, Err(ProtocolError::UnknownType { .. })),
                    "{} is known, got {:?}", type_name, result
                );
            } else {
                prop_assert_eq!(result, Err(ProtocolError::UnknownType { type_name: shown.clone() }));
            }
        }
        decode_all(&frame);
    }

    /// Frames over the limit are refused before parsing, whatever they contain.
    #[test]
    fn oversized_frames_are_refused(
        extra in 1usize..4096,
        filler in prop_oneof![Just(' '), Just('a'), Just('\u{e9}'), Just('\u{1F600}')],
    ) {
        let head = r#"{"type":"heartbeat","pad":""#;
        let mut frame = String::from(head);
        while frame.len() <= MAX_FRAME_BYTES + extra {
            frame.push(filler);
        }
        frame.push_str("\"}");
        let size = frame.len();
        let e = decode::<VisitorMessage>(&frame).unwrap_err();
        prop_assert_eq!(&e, &ProtocolError::FrameTooLarge { size, limit: MAX_FRAME_BYTES });
        prop_assert_eq!(e.code(), "frame_too_large");
        prop_assert_eq!(decode::<AgentMessage>(&frame).unwrap_err().code(), "frame_too_large");
        decode_all(&frame);
    }

    /// A hello of any other protocol version is refused with both versions named.
    #[test]
    fn other_protocol_versions_are_refused(version in any::<u32>().prop_filter("not ours", |v| *v != PROTOCOL_VERSION)) {
        let visitor = json!({"type": "hello", "protocol_version": version, "api_key": "pk_demo", "short_id": null, "connection": {}});
        prop_assert_eq!(
            decode::<VisitorMessage>(&visitor.to_string()),
            Err(ProtocolError::UnsupportedVersion { got: version, expected: PROTOCOL_VERSION })
        );
        let agent = json!({"type": "hello", "protocol_version": version, "secret_key": "sk", "name": "Ada", "external_id": null});
        prop_assert_eq!(
            decode::<AgentMessage>(&agent.to_string()).unwrap_err().code(),
            "unsupported_protocol_version"
        );
    }
}

#[test]
fn a_frame_of_exactly_the_limit_is_accepted() {
    let mut frame = String::from(r#"{"type":"heartbeat"}"#);
    while frame.len() < MAX_FRAME_BYTES {
        frame.push(' ');
    }
    assert_eq!(frame.len(), MAX_FRAME_BYTES);
    assert_eq!(
        decode::<VisitorMessage>(&frame),
        Ok(VisitorMessage::Heartbeat)
    );
    frame.push(' ');
    assert_eq!(
        decode::<VisitorMessage>(&frame).unwrap_err().code(),
        "frame_too_large"
    );
}

#[test]
fn the_unknown_type_named_unknown_is_unknown() {
    for frame in [
        r#"{"type":"unknown"}"#,
        r#"{"type":"teleport","to":"mars"}"#,
    ] {
        assert_eq!(
            decode::<VisitorMessage>(frame).unwrap_err().code(),
            "unknown_message_type"
        );
        assert_eq!(
            decode::<AgentMessage>(frame).unwrap_err().code(),
            "unknown_message_type"
        );
    }
    // A side's message is unknown to the other side.
    assert_eq!(
        decode::<AgentMessage>(&encode(&VisitorMessage::Authorize)).unwrap_err(),
        ProtocolError::UnknownType {
            type_name: "authorize".into()
        }
    );
}

#[test]
fn frames_without_a_string_type_are_malformed() {
    for frame in [
        "",
        "null",
        "[]",
        "{}",
        r#"{"type":null}"#,
        r#"{"type":{}}"#,
        r#"{"type":[1]}"#,
        r#"{"type":1}"#,
        r#"{"type":true}"#,
        "\u{0}",
        "{\"type\":\"hel",
    ] {
        let e = decode::<VisitorMessage>(frame).unwrap_err();
        assert_eq!(e.code(), "malformed_frame", "{frame:?}: {e:?}");
        assert_eq!(
            decode::<AgentMessage>(frame).unwrap_err().code(),
            "malformed_frame",
            "{frame:?}"
        );
        decode_all(frame);
    }
}
