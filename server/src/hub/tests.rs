//! Unit tests of the hub, stepped by hand (no runtime, no clock): lookup codes.
//! The simulation (`hub::sim`) drives it with real SDK clients and agent stand-ins.

use std::collections::HashMap;

use covisit::core::protocol::ConnectionHello;
use serde_json::Value;

use super::*;

pub(super) fn hello(account_id: i64) -> VisitorHello {
    VisitorHello {
        account_id,
        api_key: format!("pk_{account_id}"),
        short_id: None,
        visitor_secret: None,
        stored: None,
        connection_owner: None,
        connection: ConnectionHello {
            has_focus: true,
            ..ConnectionHello::default()
        },
        config: Value::Null,
        ip: "127.0.0.1".into(),
        location: None,
    }
}

fn hub() -> Hub {
    Hub::new(
        HubConfig {
            public_url: "http://127.0.0.1".into(),
            grace_period_seconds: 30,
            visitor_silence_ms: 60_000,
            agent_silence_ms: 180_000,
        },
        Ids::seeded(7),
    )
}

/// The lookup code of the welcome the hub queued for `conn`.
fn code_of(hub: &mut Hub, conn: ConnId) -> Option<String> {
    let mut code = None;
    while let Some(o) = hub.poll_output() {
        if let Output::Send { conn: c, frame, .. } = o {
            let v: Value = serde_json::from_str(frame.as_str()).expect("frames are JSON");
            if c == conn && v["type"] == "welcome" {
                code = v["lookup_code"].as_str().map(str::to_string);
            }
        }
    }
    code
}

/// Lookup codes stay unique among an account's online visitors up to all 10,000 of
/// them; a code frees up when its visitor leaves; other accounts have their own.
#[test]
fn lookup_codes_are_unique_per_account_until_every_code_is_taken() {
    let mut hub = hub();
    let now = Millis(1_800_000_000_000);
    let mut holders = HashMap::new();
    for conn in 0..10_000u64 {
        hub.handle_visitor_connect(now, conn, hello(1))
            .expect("connects");
        let code = code_of(&mut hub, conn).expect("a code while any is free");
        let earlier = holders.insert(code.clone(), conn);
        assert!(earlier.is_none(), "{code} given twice");
    }
    hub.handle_visitor_connect(now, 10_000, hello(1))
        .expect("connects");
    assert_eq!(
        code_of(&mut hub, 10_000),
        None,
        "all 10,000 codes are taken"
    );
    hub.handle_visitor_connect(now, 10_001, hello(2))
        .expect("connects");
    assert!(
        code_of(&mut hub, 10_001).is_some(),
        "another account has its own codes"
    );

    let conn = holders.get("0042").copied().expect("0042 is held");
    hub.handle_visitor_disconnect(now, conn);
    hub.handle_visitor_connect(now, 10_002, hello(1))
        .expect("connects");
    assert_eq!(
        code_of(&mut hub, 10_002).as_deref(),
        Some("0042"),
        "the one code left free"
    );
    assert_eq!(hub.sizes().0, 10_002, "the one that left is forgotten");
}

/// The same seed gives the same ids: the hub draws no randomness of its own.
#[test]
fn ids_come_from_the_generator_handed_in() {
    let ids = |seed| {
        let mut hub = Hub::new(
            HubConfig {
                public_url: "http://127.0.0.1".into(),
                grace_period_seconds: 30,
                visitor_silence_ms: 60_000,
                agent_silence_ms: 180_000,
            },
            Ids::seeded(seed),
        );
        let w = hub
            .handle_visitor_connect(Millis(1), 1, hello(1))
            .expect("connects");
        (w.short_id, w.connection_id)
    };
    assert_eq!(ids(3), ids(3));
    assert_ne!(ids(3), ids(4));
}
