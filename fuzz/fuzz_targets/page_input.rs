//! What a page hands the SDK as JSON: its config (`parse_config`, and a client built
//! from it), `updateVisitor` (`parse_identity_update`), `rate`, `expectDisconnect`
//! and `track` attributes. The input is the JSON text (the facade converts the page's
//! JS values to the same `Json`). Nothing may panic, and what the client sends from
//! an accepted call must decode on the server.
#![no_main]

use covisit::core::client::{Output, PageInfo, StoredIds, VisitorClient};
use covisit::core::config::{parse_config, parse_identity_update};
use covisit::core::json::Json;
use covisit::core::protocol::{decode, encode, ServerToVisitor, VisitorMessage};
use covisit::core::Millis;
use libfuzzer_sys::fuzz_target;

const T0: Millis = Millis(1_795_255_445_000);

fn sent_frames_decode(c: &mut VisitorClient) {
    while let Some(output) = c.poll_output() {
        if let Output::Transmit(frame) = output {
            let sent = decode::<VisitorMessage>(&frame);
            assert!(
                sent.is_ok(),
                "the client wrote {frame}, which decodes as {sent:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(value) = Json::parse(text) else {
        return;
    };
    let _ = parse_identity_update(&value);
    let _ = parse_config(&value);
    // The same value as the config of a real client, and as its calls' arguments.
    let config = match &value {
        Json::Object(o) => {
            let mut o = o.clone();
            o.insert("apiKey".into(), Json::from("pk_demo"));
            o.insert("server".into(), Json::from("https://covisit.test"));
            Json::Object(o)
        }
        _ => value.clone(),
    };
    let page = PageInfo {
        url: Some("https://shop.test/".into()),
        ..PageInfo::default()
    };
    for config in [&value, &config] {
        let Ok(mut c) = VisitorClient::new(config, page.clone(), StoredIds::default(), 1) else {
            continue;
        };
        c.handle_socket_open(T0);
        c.handle_frame(
            T0,
            &encode(&ServerToVisitor::Welcome {
                protocol_version: 1,
                short_id: "v1".into(),
                unique_connection_id: "c1".into(),
                lookup_code: None,
                visitor_secret: Some("s1".into()),
            }),
        );
        let _ = c.update_visitor(&value);
        let _ = c.expect_disconnect(&value);
        let _ = c.track_event(T0, "event", &value);
        c.flush_tracking(T0);
        c.handle_frame(
            T0,
            &encode(&ServerToVisitor::SessionEnd {
                session_id: "s1".into(),
                disconnect_type: covisit::core::model::DisconnectType::Peer,
            }),
        );
        let _ = c.rate(&value);
        assert!(serde_json::to_string(&c.state()).is_ok());
        sent_frames_decode(&mut c);
    }
});
