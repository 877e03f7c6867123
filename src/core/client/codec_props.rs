//! Property tests of the frames the client writes by hand rather than through serde:
//! the `track` frame ([`VisitorClient::flush_tracking`]), the pagehide beacon body
//! ([`VisitorClient::take_beacon`]) and the `mirror` frame ([`VisitorClient::mirror`]).
//! Each must read back, with the server's own decoders, as exactly what went in:
//! `decode::<VisitorMessage>` for frames, `serde_json::from_slice::<TrackBeacon>` for
//! the beacon (as `server/src/rest_journey.rs` reads it), and within
//! [`TRACK_FRAME_BYTES`] and [`journey::MAX_EVENTS_PER_BATCH`], so the server takes
//! every batch whole.

use proptest::prelude::*;
use serde_json::Value;

use super::test_support::*;
use super::*;
use crate::core::journey::{PageFacts, TrackEvent};
use crate::core::protocol::{decode, encode, MirrorData, TrackBeacon};
use crate::core::strategies::{float, json_value, text};

/// A custom event's name: what `validate_custom` allows, 1 to 64 bytes.
fn event_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.: -]{0,63}[a-zA-Z0-9_.:-]"
}

/// A scalar attribute value of one of the three kinds, by `kind`.
fn scalar(kind: u8) -> BoxedStrategy<Json> {
    match kind % 3 {
        0 => prop_oneof![
            any::<i64>().prop_map(|n| Json::Number(n.into())),
            any::<u64>().prop_map(|n| Json::Number(n.into())),
            float().prop_map(|f| Json::Number(serde_json::Number::from_f64(f).expect("finite"))),
        ]
        .boxed(),
        1 => any::<bool>().prop_map(Json::Bool).boxed(),
        _ => prop_oneof![
            8 => text().prop_map(Json::String),
            1 => "[a-z]{200,1000}".prop_map(Json::String),
        ]
        .boxed(),
    }
}

fn attribute_value() -> impl Strategy<Value = Json> {
    any::<u8>().prop_flat_map(|kind| {
        prop_oneof![
            3 => scalar(kind),
            1 => prop::collection::vec(scalar(kind), 0..4).prop_map(Json::Array),
        ]
    })
}

/// Attributes `validate_custom` allows: up to 50, names 1 to 64 bytes, at most 4 KiB.
fn attributes() -> impl Strategy<Value = Object> {
    let name = prop_oneof![
        "[a-zA-Z_]{1,12}",
        text().prop_filter("1 to 64 bytes", |t| !t.is_empty() && t.len() <= 64),
    ];
    prop::collection::vec((name, attribute_value()), 0..8)
        .prop_map(|members| members.into_iter().collect::<Object>())
        .prop_filter("valid attributes", |a| {
            journey::validate_custom("e", a).is_ok()
        })
}

/// Attributes near the 4 KiB limit: a few such events fill a frame.
fn big_attributes() -> impl Strategy<Value = Object> {
    prop::collection::vec("[a-z]{1000,1300}", 1..4).prop_map(|values| {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("a{i}"), Json::String(v)))
            .collect()
    })
}

/// A page's facts as `glue.js` collects them (every text within its limit).
fn page_facts() -> impl Strategy<Value = PageFacts> {
    let fact = || proptest::option::of(text());
    let url = (prop_oneof![Just("https://"), Just("http://")], text())
        .prop_map(|(scheme, rest)| format!("{scheme}shop.test/{rest}"));
    let big = prop_oneof![
        4 => Just(None),
        1 => "[a-z]{1000,3000}".prop_map(Some),
    ];
    (
        (
            url,
            fact(),
            prop_oneof![fact(), big],
            fact(),
            fact(),
            fact(),
        ),
        (
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
        ),
        (
            fact(),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(any::<bool>()),
        ),
    )
        .prop_map(
            |(
                (url, title, referrer, lang, page_lang, keywords),
                (view_width, view_height, screen_width, screen_height),
                (platform, mobile, pdf, webrtc),
            )| PageFacts {
                at: 0,
                url,
                title,
                referrer,
                lang,
                page_lang,
                keywords,
                view_width,
                view_height,
                screen_width,
                screen_height,
                platform,
                mobile,
                pdf,
                webrtc,
            },
        )
        .prop_filter("valid page view", |p| journey::validate_page(p).is_ok())
}

/// What the page does, in order.
#[derive(Debug, Clone)]
enum Op {
    PageView(PageFacts),
    Custom(String, Object),
    /// Time passes; due timers fire (the batch timer sends what is queued).
    Wait(u64),
    /// The socket drops: events queue until the next welcome.
    Drop,
    /// The client reconnects and is welcomed again.
    Reconnect,
    /// `pagehide`: the queue leaves as beacon bodies.
    Beacon,
}

/// What the page does: `heavy` pages track big events in quick succession, so that
/// batches are cut by size, close to the limit.
fn op(heavy: bool) -> impl Strategy<Value = Op> {
    let (big, wait): (u32, _) = if heavy {
        (24, 0u64..200)
    } else {
        (4, 0u64..2500)
    };
    prop_oneof![
        6 => page_facts().prop_map(Op::PageView),
        12 => (event_name(), attributes()).prop_map(|(n, a)| Op::Custom(n, a)),
        big => (event_name(), big_attributes()).prop_map(|(n, a)| Op::Custom(n, a)),
        3 => wait.prop_map(Op::Wait),
        1 => Just(Op::Drop),
        1 => Just(Op::Reconnect),
        1 => Just(Op::Beacon),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    any::<bool>().prop_flat_map(|heavy| prop::collection::vec(op(heavy), 1..160))
}

/// Who the server says the visitor is: any text (the client writes it into the
/// beacon by hand, so its escaping is under test too).
#[derive(Debug, Clone)]
struct Ids {
    api_key: String,
    short_id: String,
    connection: String,
    secret: Option<String>,
}

fn ids() -> impl Strategy<Value = Ids> {
    let api_key = text().prop_filter("a key", |k| !k.trim().is_empty() && k.len() <= 2048);
    (api_key, text(), text(), proptest::option::of(text())).prop_map(
        |(api_key, short_id, connection, secret)| Ids {
            api_key,
            short_id,
            connection,
            secret,
        },
    )
}

fn welcome_frame(ids: &Ids) -> String {
    encode(&ServerToVisitor::Welcome {
        protocol_version: 1,
        short_id: ids.short_id.clone(),
        unique_connection_id: ids.connection.clone(),
        lookup_code: None,
        visitor_secret: ids.secret.clone(),
    })
}

/// A batch as the server receives it, frame or beacon.
#[derive(Debug)]
struct Batch {
    text: String,
    sent_at: u64,
    events: Vec<TrackEvent>,
}

/// The `track` frames among the outputs, decoded as the server decodes them.
fn track_frames(outputs: &[Output]) -> Result<Vec<Batch>, TestCaseError> {
    let mut out = Vec::new();
    for text in transmitted(outputs) {
        if !text.starts_with(r#"{"type":"track""#) {
            continue;
        }
        match decode::<VisitorMessage>(&text) {
            Ok(VisitorMessage::Track { sent_at, events }) => out.push(Batch {
                text,
                sent_at,
                events,
            }),
            other => return Err(TestCaseError::fail(format!("{other:?} from {text}"))),
        }
    }
    Ok(out)
}

/// Every beacon body left, read as the server reads it.
fn beacons(c: &mut VisitorClient, now: Millis, ids: &Ids) -> Result<Vec<Batch>, TestCaseError> {
    let mut out = Vec::new();
    while let Some(body) = c.take_beacon(now) {
        let beacon: TrackBeacon = serde_json::from_slice(body.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e} in {body}")))?;
        prop_assert_eq!(&beacon.api_key, &ids.api_key);
        prop_assert_eq!(&beacon.short_id, &ids.short_id);
        prop_assert_eq!(beacon.unique_connection_id.as_ref(), Some(&ids.connection));
        prop_assert_eq!(&beacon.visitor_secret, &ids.secret);
        out.push(Batch {
            text: body,
            sent_at: beacon.sent_at,
            events: beacon.events,
        });
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the page tracks, online or offline, sent on the batch timer, when a
    /// batch fills, on reconnect or as beacons: the server reads back every event, in
    /// order, exactly as tracked, from frames and bodies within the size and count
    /// limits that it accepts whole.
    #[test]
    fn tracked_events_reach_the_server_exactly(
        ids in ids(),
        ops in ops(),
    ) {
        let config = Json::Object(
            [
                ("apiKey".to_string(), Json::from(ids.api_key.as_str())),
                ("server".to_string(), Json::from("https://covisit.test")),
            ]
            .into_iter()
            .collect(),
        );
        let mut c = VisitorClient::new(&config, PageInfo::default(), StoredIds::default(), 3)
            .expect("a valid config");
        let mut now = T0;
        c.handle_socket_open(now);
        c.handle_frame(now, &welcome_frame(&ids));
        let mut expected = Vec::new();
        let mut received = Vec::new();
        for op in ops {
            match op {
                Op::PageView(facts) => {
                    let mut v = serde_json::to_value(&facts).expect("facts");
                    v.as_object_mut().expect("an object").remove("at");
                    c.track_page_view(now, &v.to_string()).expect("a valid page view");
                    expected.push(TrackEvent::PageView(PageFacts { at: now.0, ..facts }));
                }
                Op::Custom(name, attributes) => {
                    c.track_event(now, &name, &Json::Object(attributes.clone()))
                        .expect("a valid event");
                    expected.push(TrackEvent::Custom { at: now.0, event_name: name, attributes });
                }
                Op::Wait(ms) => {
                    now = Millis(now.0 + ms);
                    c.handle_timeout(now);
                }
                Op::Drop => c.handle_socket_close(now),
                Op::Reconnect => {
                    now = Millis(now.0 + RECONNECT_MAX_MS);
                    c.handle_timeout(now);
                    c.handle_socket_open(now);
                    c.handle_frame(now, &welcome_frame(&ids));
                }
                Op::Beacon => {
                    received.extend(track_frames(&drain(&mut c))?);
                    received.extend(beacons(&mut c, now, &ids)?);
                }
            }
            received.extend(track_frames(&drain(&mut c))?);
        }
        received.extend(beacons(&mut c, now, &ids)?);
        prop_assert_eq!(c.pending_tracking(), 0);
        for batch in &received {
            prop_assert!(
                batch.text.len() <= TRACK_FRAME_BYTES,
                "{} bytes, over {}", batch.text.len(), TRACK_FRAME_BYTES
            );
            prop_assert!(!batch.events.is_empty());
            prop_assert_eq!(journey::validate_batch(&batch.events), Ok(()));
            prop_assert!(batch.events.iter().all(|e| e.at() <= batch.sent_at));
        }
        let got: Vec<TrackEvent> = received.into_iter().flat_map(|b| b.events).collect();
        prop_assert_eq!(got.len(), expected.len());
        prop_assert_eq!(got, expected);
    }

    /// A batch of mirror records from the capture leaves as a `mirror` frame that the
    /// server decodes to those records, byte for byte.
    #[test]
    fn mirror_batches_reach_the_server_as_written(
        records in prop::collection::vec(json_value(), 0..6),
        pretty in any::<bool>(),
    ) {
        let batch = Value::Array(records);
        let text = if pretty {
            serde_json::to_string_pretty(&batch).expect("JSON")
        } else {
            batch.to_string()
        };
        let config = jv!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080"});
        let mut c = VisitorClient::new(&config, PageInfo::default(), StoredIds::default(), 5)
            .expect("a valid config");
        welcome(&mut c, T0);
        c.handle_frame(T0, &frame(ServerToVisitor::SessionStart { session_id: "s1".into() }));
        drain(&mut c);
        prop_assert!(c.mirror(&text));
        let frames = transmitted(&drain(&mut c));
        prop_assert_eq!(frames.len(), 1);
        let data = MirrorData::from_text(text.clone()).expect("JSON");
        prop_assert_eq!(decode::<VisitorMessage>(&frames[0]), Ok(VisitorMessage::Mirror { data }));
    }
}
