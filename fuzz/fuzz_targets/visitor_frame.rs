//! The server's decoding of a visitor socket's text frames (`decode::<VisitorMessage>`,
//! as `server/src/ws.rs` calls it) and what the core then parses out of them: the
//! hello's config (`parse_config`, with the `apiKey`/`server` the server adds), an
//! `update_visitor` identity, a `track` batch (`validate_batch`), mirror records
//! (`check`, `starts_snapshot`). Nothing may panic; a decoded message must encode to a
//! frame that decodes again, and relayed mirror records must reach agents unchanged.
#![no_main]

use covisit::core::config;
use covisit::core::journey;
use covisit::core::json::Json;
use covisit::core::protocol::{decode, encode, ServerToAgent, VisitorMessage, MAX_FRAME_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // WebSocket text frames are UTF-8 (the server's socket library checks).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = decode::<VisitorMessage>(text) else {
        return;
    };
    match &message {
        VisitorMessage::Hello {
            api_key,
            config: Json::Object(fields),
            ..
        } => {
            let mut fields = fields.clone();
            fields.insert("apiKey".into(), Json::from(api_key.as_str()));
            fields.insert("server".into(), Json::from("https://covisit.test"));
            let _ = config::parse_config(&Json::Object(fields));
        }
        VisitorMessage::UpdateVisitor { identity } => {
            let _ = config::parse_identity_update(identity);
        }
        VisitorMessage::Track { events, .. } => {
            let _ = journey::validate_batch(events);
            return; // written by the SDK by hand, never by `encode`
        }
        VisitorMessage::Mirror { data } if data.check().is_ok() => {
            let _ = data.starts_snapshot();
            let relayed = encode(&ServerToAgent::Mirror {
                session_id: "s1".into(),
                tab: "t1".into(),
                data: data.clone(),
            });
            if relayed.len() <= MAX_FRAME_BYTES {
                match decode::<ServerToAgent>(&relayed) {
                    Ok(ServerToAgent::Mirror { data: back, .. }) => {
                        assert_eq!(back.text(), data.text(), "relayed records changed")
                    }
                    other => panic!("relayed mirror frame decodes as {other:?}"),
                }
            }
            return; // written by the SDK by hand (client/mirror.rs), never by `encode`
        }
        VisitorMessage::Mirror { .. } => return,
        VisitorMessage::Console { entries } => {
            for e in entries {
                let _ = e.check();
            }
            return; // written by the SDK by hand (client/console.rs), never by `encode`
        }
        _ => {}
    }
    let again = encode(&message);
    assert!(!again.contains(r#""code":"encode_failed""#), "{again}");
    // Re-encoding may grow a frame (`1e2` is written `100.0`): only a frame within
    // the limit must decode again.
    if again.len() <= MAX_FRAME_BYTES {
        let back = decode::<VisitorMessage>(&again);
        assert!(
            back.is_ok(),
            "{message:?} encodes as {again}, which decodes as {back:?}"
        );
    }
});
