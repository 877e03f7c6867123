//! A real SDK client (`VisitorClient`, built as `src/core/client/tests.rs` builds it)
//! fed arbitrary server frames, as text (`handle_frame`) and as parsed values
//! (`handle_frame_json`), between the page's calls and time passing. The input is
//! lines: a line starting with `{` or `[` is a server frame, any other line is a page
//! or socket event chosen by its first byte (see `step`). Nothing may panic; every
//! frame the client writes through `encode` or by hand (`track`) must decode on the
//! server, within the frame limit; `state()` must serialize; timers must not stall.
#![no_main]

use covisit::core::client::{Output, PageInfo, StoredIds, VisitorClient};
use covisit::core::journey::PageFacts;
use covisit::core::json::Json;
use covisit::core::protocol::{decode, RemoteRefusal, VisitorMessage, MAX_FRAME_BYTES};
use covisit::core::Millis;
use libfuzzer_sys::fuzz_target;

const T0: Millis = Millis(1_795_255_445_000);

fn client() -> VisitorClient {
    let page = PageInfo {
        url: Some("https://shop.test/".into()),
        screen_width: 1280,
        screen_height: 800,
        has_focus: true,
        user_agent: None,
        call_token: Some("call_1".into()),
        ..PageInfo::default()
    };
    let config = serde_json::json!({
        "apiKey": "pk_demo",
        "server": "http://127.0.0.1:8080",
        "authorizationTimeoutSeconds": 30,
        "allowAgentRedirect": true,
    });
    VisitorClient::new(&config.into(), page, StoredIds::default(), 42).expect("a valid config")
}

/// A page or socket event, by the line's first byte; the rest of the line is its
/// argument where it takes one.
fn step(c: &mut VisitorClient, now: &mut Millis, op: u8, arg: &str) {
    let json = || Json::parse(arg).unwrap_or_default();
    match op {
        b'o' => c.handle_socket_open(*now),
        b'c' => c.handle_socket_close(*now),
        b't' => {
            // Time passes to the next deadline (or by the argument's length in seconds).
            *now = c
                .poll_timeout()
                .filter(|d| *d > *now)
                .unwrap_or(now.plus_seconds(arg.len() as u64));
            c.handle_timeout(*now);
        }
        b'a' => drop(c.authorize()),
        b'd' => drop(c.deny()),
        b'e' => drop(c.end()),
        b'g' => drop(c.grant_control()),
        b'x' => drop(c.deny_control()),
        b'r' => drop(c.revoke_control()),
        b'h' => c.handle_page_hide(*now),
        b's' => c.handle_page_show(*now),
        b'f' => c.handle_focus(*now, !arg.is_empty()),
        b'u' => c.handle_url(*now, arg),
        b'k' => drop(c.track_event(*now, arg, &Json::Null)),
        b'K' => drop(c.track_event(*now, "event", &json())),
        b'v' => {
            // Facts as glue.js writes them: a PageFacts object without `at`.
            let facts = PageFacts {
                url: arg.to_string(),
                title: Some(arg.to_string()),
                ..PageFacts::default()
            };
            let mut v = serde_json::to_value(facts).expect("facts");
            if let Some(o) = v.as_object_mut() {
                o.remove("at");
            }
            drop(c.track_page_view(*now, &v.to_string()));
        }
        b'm' => {
            // The capture writes JSON arrays; anything else is not the SDK's own.
            if serde_json::from_str::<Vec<serde_json::Value>>(arg).is_ok() {
                c.mirror(arg);
            }
        }
        b'A' => c.remote_applied(arg.len() as u32, arg.is_empty(), Some(RemoteRefusal::from_page(arg))),
        b'b' => {
            while let Some(body) = c.take_beacon(*now) {
                assert!(body.len() <= MAX_FRAME_BYTES);
                let beacon = serde_json::from_str::<covisit::core::protocol::TrackBeacon>(&body);
                assert!(beacon.is_ok(), "{body}: {beacon:?}");
            }
        }
        b'l' => c.flush_tracking(*now),
        b'q' => c.stop(),
        b'R' => drop(c.rate(&json())),
        b'E' => drop(c.expect_disconnect(&json())),
        b'U' => drop(c.update_visitor(&json())),
        b'P' => drop(c.request_agent()),
        b'C' => drop(c.cancel_request_agent()),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut c = client();
    let mut now = T0;
    for (i, line) in data.split(|b| *b == b'\n').enumerate().take(64) {
        let line = String::from_utf8_lossy(line);
        match line.as_bytes().first() {
            Some(b'{' | b'[') if i % 2 == 0 => c.handle_frame(now, &line),
            Some(b'{' | b'[') => {
                let parsed = serde_json::from_str::<serde_json::Value>(&line).ok();
                c.handle_frame_json(now, parsed.map(Json::from));
            }
            Some(&op) => step(&mut c, &mut now, op, line.get(1..).unwrap_or_default()),
            None => {}
        }
        while let Some(output) = c.poll_output() {
            if let Output::Transmit(frame) = output {
                if frame.starts_with(r#"{"type":"mirror""#) {
                    continue; // the capture's text, passed through
                }
                assert!(frame.len() <= MAX_FRAME_BYTES, "{} bytes", frame.len());
                let sent = decode::<VisitorMessage>(&frame);
                assert!(
                    sent.is_ok(),
                    "the client wrote {frame}, which decodes as {sent:?}"
                );
            }
        }
        assert!(serde_json::to_string(&c.state()).is_ok());
        if let Some(deadline) = c.poll_timeout() {
            // Firing a due deadline must move it (or clear it): no timer stays due.
            if deadline <= now {
                c.handle_timeout(now);
                assert!(
                    c.poll_timeout().is_none_or(|d| d > now),
                    "a timer stays due"
                );
            }
        }
    }
});
