//! Unit tests of the client's journey tracking: batching on a timer, the offline
//! queue, frame-size cuts, the pagehide beacon, and typed errors for bad input.

use super::test_support::*;
use super::*;
use crate::core::journey::{PageFacts, TrackEvent};
use crate::core::json::Json;
use crate::core::protocol::{decode, TrackBeacon};

fn client() -> VisitorClient {
    let page = PageInfo {
        url: Some("https://shop.test/".into()),
        has_focus: true,
        ..PageInfo::default()
    };
    let config = jv!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080/"});
    VisitorClient::new(&config, page, StoredIds::default(), 7).unwrap()
}

/// The `track` frames among the outputs, decoded as the server decodes them.
fn batches(outputs: &[Output]) -> Vec<(u64, Vec<TrackEvent>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Transmit(t) => match decode::<VisitorMessage>(t) {
                Ok(VisitorMessage::Track { sent_at, events }) => Some((sent_at, events)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A page view's facts as the SDK's collector writes them (JSON, no `at`).
fn page(url: &str) -> String {
    let facts = PageFacts {
        url: url.into(),
        title: Some("Shop".into()),
        referrer: Some("https://www.google.com/".into()),
        view_width: Some(1280),
        ..PageFacts::default()
    };
    let mut value = serde_json::to_value(facts).unwrap();
    value.as_object_mut().unwrap().remove("at");
    value.to_string()
}

#[test]
fn events_go_out_together_after_the_batch_delay() {
    let mut c = client();
    welcome(&mut c, T0);
    c.track_page_view(T0, &page("https://shop.test/")).unwrap();
    c.track_event(
        Millis(T0.0 + 10),
        "add_to_cart",
        &jv!({"sku": "A1", "qty": 2}),
    )
    .unwrap();
    assert!(
        batches(&drain(&mut c)).is_empty(),
        "nothing goes out at once"
    );
    assert_eq!(c.poll_timeout(), Some(Millis(T0.0 + TRACK_BATCH_MS)));
    c.handle_timeout(Millis(T0.0 + TRACK_BATCH_MS - 1));
    assert!(batches(&drain(&mut c)).is_empty(), "early is harmless");
    c.handle_timeout(Millis(T0.0 + TRACK_BATCH_MS));
    let out = batches(&drain(&mut c));
    assert_eq!(out.len(), 1, "one frame for both events");
    let (sent_at, events) = &out[0];
    assert_eq!(*sent_at, T0.0 + TRACK_BATCH_MS);
    assert_eq!(events.len(), 2);
    assert!(
        matches!(&events[0], TrackEvent::PageView(p) if p.at == T0.0 && p.url == "https://shop.test/")
    );
    assert!(
        matches!(&events[1], TrackEvent::Custom { event_name, attributes, at } if event_name == "add_to_cart" && attributes.get("qty").and_then(Json::as_u64) == Some(2) && *at == T0.0 + 10)
    );
    assert_eq!(c.pending_tracking(), 0);
    // The heartbeat timer alone remains.
    assert_eq!(c.poll_timeout(), Some(T0.plus_seconds(HEARTBEAT_SECONDS)));
}

#[test]
fn a_burst_online_goes_out_batch_by_batch_and_loses_nothing() {
    let mut c = client();
    welcome(&mut c, T0);
    // Far more than the queue holds, all within one batch delay (a busy SPA).
    let total = TRACK_QUEUE_LIMIT + 150;
    let mut sent = Vec::new();
    for i in 0..total {
        let at = Millis(T0.0 + i as u64);
        c.track_event(at, "tick", &jv!({ "i": i })).unwrap();
        sent.extend(batches(&drain(&mut c)));
    }
    let counts: Vec<usize> = sent.iter().map(|b| b.1.len()).collect();
    assert!(
        counts.iter().all(|&n| n == journey::MAX_EVENTS_PER_BATCH),
        "{counts:?}"
    );
    assert_eq!(c.pending_tracking(), total % journey::MAX_EVENTS_PER_BATCH);
    // The rest waits the batch delay from the first event after the last full batch.
    let due = c.poll_timeout().unwrap();
    assert_eq!(due, Millis(T0.0 + 600 + TRACK_BATCH_MS));
    c.handle_timeout(due);
    sent.extend(batches(&drain(&mut c)));
    let order: Vec<u64> = sent
        .iter()
        .flat_map(|(_, events)| events.iter())
        .map(|e| match e {
            TrackEvent::Custom { attributes, .. } => {
                attributes.get("i").and_then(Json::as_u64).unwrap()
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        order,
        (0..total as u64).collect::<Vec<_>>(),
        "every event, in order"
    );
}

#[test]
fn offline_events_wait_for_the_welcome() {
    let mut c = client();
    drain(&mut c);
    c.track_event(T0, "early", &Json::Null).unwrap();
    c.handle_timeout(Millis(T0.0 + TRACK_BATCH_MS));
    assert!(batches(&drain(&mut c)).is_empty());
    assert_eq!(c.pending_tracking(), 1);
    let out = batches(&welcome(&mut c, Millis(T0.0 + 5000)));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1.len(), 1);
    assert_eq!(c.pending_tracking(), 0);
}

#[test]
fn large_batches_are_cut_by_count_and_size() {
    let mut c = client();
    welcome(&mut c, T0);
    for i in 0..250 {
        c.track_event(T0, "tick", &jv!({ "i": i })).unwrap();
    }
    c.flush_tracking(T0);
    let counts: Vec<usize> = batches(&drain(&mut c)).iter().map(|b| b.1.len()).collect();
    assert_eq!(counts, [100, 100, 50]);
    let big = "x".repeat(1000);
    for _ in 0..100 {
        let attributes = jv!({"a": big, "b": big, "c": big});
        c.track_event(T0, "big", &attributes).unwrap();
    }
    c.flush_tracking(T0);
    let out = drain(&mut c);
    let frames: Vec<&String> = out
        .iter()
        .filter_map(|o| match o {
            Output::Transmit(t) => Some(t),
            _ => None,
        })
        .collect();
    assert!(frames.len() > 1);
    assert!(frames.iter().all(|f| f.len() <= TRACK_FRAME_BYTES));
    assert_eq!(batches(&out).iter().map(|b| b.1.len()).sum::<usize>(), 100);
}

#[test]
fn pagehide_takes_the_queue_as_a_beacon_body() {
    let mut c = client();
    assert_eq!(
        c.take_beacon(T0),
        None,
        "no visitor id yet: nothing could claim them"
    );
    welcome(&mut c, T0);
    assert_eq!(c.take_beacon(T0), None, "nothing queued");
    c.track_event(T0, "clicked_buy", &jv!({"sku": "A1"}))
        .unwrap();
    c.track_page_view(T0, &page("https://shop.test/checkout"))
        .unwrap();
    let body = c.take_beacon(Millis(T0.0 + 20)).expect("a body");
    let beacon: TrackBeacon = serde_json::from_str(&body).expect("the server's beacon shape");
    assert_eq!(beacon.api_key, "pk_demo");
    assert_eq!(beacon.short_id, "v1");
    assert_eq!(beacon.unique_connection_id.as_deref(), Some("c1"));
    assert_eq!(beacon.sent_at, T0.0 + 20);
    assert_eq!(beacon.events.len(), 2);
    assert_eq!(
        c.beacon_url(),
        "http://127.0.0.1:8080/api/v1/journey/beacon"
    );
    // Taken means taken: the timer finds nothing to send twice.
    assert_eq!(c.pending_tracking(), 0);
    c.handle_timeout(Millis(T0.0 + TRACK_BATCH_MS));
    assert!(batches(&drain(&mut c)).is_empty());
    assert_eq!(c.take_beacon(T0), None);
}

#[test]
fn bad_input_is_a_typed_error_and_queues_nothing() {
    let mut c = client();
    welcome(&mut c, T0);
    let code = |r: Result<(), ClientError>| r.unwrap_err().code();
    assert_eq!(
        code(c.track_event(T0, "", &Json::Null)),
        "invalid_event_name"
    );
    assert_eq!(
        code(c.track_event(T0, "ok", &jv!([1]))),
        "invalid_attributes"
    );
    assert_eq!(
        code(c.track_event(T0, "ok", &jv!({"a": {"b": 1}}))),
        "invalid_attributes"
    );
    assert_eq!(code(c.track_page_view(T0, "[1]")), "invalid_page_view");
    assert_eq!(c.pending_tracking(), 0);
    c.stop();
    assert_eq!(code(c.track_event(T0, "ok", &Json::Null)), "stopped");
}

/// Queues custom events whose encoded texts, joined with commas, are exactly
/// `TRACK_FRAME_BYTES` long: the most that fits before the envelope counts.
fn fill_exactly(c: &mut VisitorClient) -> usize {
    let event = |c: &mut VisitorClient, len: usize| {
        c.track_event(T0, "big", &jv!({ "a": "x".repeat(len) }))
            .unwrap();
        c.track_queue.back().unwrap().len() - len
    };
    let overhead = event(c, 3000);
    let mut count = 1;
    while c.track_queue.iter().map(|e| e.len() + 1).sum::<usize>() + 3000 + overhead
        < TRACK_FRAME_BYTES - 100
    {
        event(c, 3000);
        count += 1;
    }
    let used = c.track_queue.iter().map(|e| e.len() + 1).sum::<usize>();
    event(c, TRACK_FRAME_BYTES - used - overhead);
    assert_eq!(
        c.track_queue.iter().map(|e| e.len() + 1).sum::<usize>() - 1,
        TRACK_FRAME_BYTES
    );
    count + 1
}

/// Regression (found by `codec_props`): the size cut counted the events but not the
/// frame around them, so a full batch went out a few dozen bytes over the limit.
#[test]
fn a_frame_full_of_events_stays_within_the_limit_with_its_envelope() {
    let mut c = client();
    welcome(&mut c, T0);
    let count = fill_exactly(&mut c);
    c.flush_tracking(T0);
    let out = drain(&mut c);
    let frames = transmitted(&out);
    assert_eq!(frames.len(), 2, "the last event waits for the next frame");
    assert!(
        frames.iter().all(|f| f.len() <= TRACK_FRAME_BYTES),
        "{:?}",
        frames.iter().map(String::len).collect::<Vec<_>>()
    );
    assert_eq!(
        batches(&out).iter().map(|b| b.1.len()).sum::<usize>(),
        count
    );
}

/// The same for the beacon, whose envelope carries the visitor's ids and the API key.
#[test]
fn a_beacon_full_of_events_stays_within_the_limit_with_its_envelope() {
    let config =
        jv!({"apiKey": format!("pk_{}", "k".repeat(2000)), "server": "http://127.0.0.1:8080/"});
    let mut c = VisitorClient::new(&config, PageInfo::default(), StoredIds::default(), 7).unwrap();
    welcome(&mut c, T0);
    c.handle_socket_close(T0);
    let count = fill_exactly(&mut c);
    let mut events = 0;
    while let Some(body) = c.take_beacon(T0) {
        assert!(body.len() <= TRACK_FRAME_BYTES, "{} bytes", body.len());
        let beacon: TrackBeacon = serde_json::from_str(&body).unwrap();
        events += beacon.events.len();
    }
    assert_eq!(events, count);
}
