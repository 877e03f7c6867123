//! Unit tests of the hub, stepped by hand (no runtime, no clock): lookup codes.
//! The simulation (`hub::sim`) drives it with real SDK clients and agent stand-ins.

use std::collections::HashMap;

use covisit::core::protocol::ConnectionHello;
use serde_json::{json, Value};

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
        lookup_code: None,
        lookup_code_for: None,
        record_sessions: false,
    }
}

fn hub() -> Hub {
    Hub::new(
        HubConfig {
            public_url: "http://127.0.0.1".into(),
            grace_period_seconds: 30,
            visitor_silence_ms: 60_000,
            agent_silence_ms: 180_000,
            ice: Default::default(),
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
                ice: Default::default(),
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

/// Two nodes' hubs: a visitor owned by `a`, an agent whose socket `b` holds (and `a`
/// knows as a remote agent). `b`'s agent sees the visitor through the news `a`
/// publishes, and the session's frames `a` sends it directly.
#[test]
fn news_and_remote_agents_carry_a_visitor_across_nodes() {
    use covisit::core::model::{Agent, SessionSource};
    let now = Millis(1_800_000_000_000);
    let mut a = hub();
    let mut b = hub();
    a.set_owned_slots(Some((0..128).collect()));
    b.set_owned_slots(Some((128..256).collect()));
    let agent = Agent {
        agent_nickname: "Ada".into(),
        email: None,
        external_id: None,
        id: "u_ada".into(),
        name: "Ada".into(),
        on_premise: true,
    };
    let who = AgentIdentity {
        account_id: 1,
        agent: agent.clone(),
        ip: "10.0.0.1".into(),
        user_id: Some("u_ada".into()),
        auth_session: None,
        api_key: None,
        may_join_any: false,
    };
    // The agent's socket is b's conn 900; a registers it as remote.
    b.handle_agent_connect(now, 900, who.clone());
    a.handle_remote_agent_connect(900, who);
    let drain = |h: &mut Hub| std::iter::from_fn(|| h.poll_output()).collect::<Vec<_>>();
    drain(&mut b);
    drain(&mut a);

    let w = a
        .handle_visitor_connect(now, 1, hello(1))
        .expect("connects");
    assert!(
        super::cluster::fits(Some(&(0..128).collect()), &w.short_id),
        "minted in a's slots"
    );
    let out = drain(&mut a);
    // a sends the agent nothing about the visitor itself (b does, from the news).
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::Send { conn: 900, .. })));
    let news: Vec<VisitorNews> = out
        .into_iter()
        .filter_map(|o| match o {
            Output::Publish(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(news.len(), 1, "one piece of news: it came online");
    for n in news {
        b.handle_visitor_news(now, n);
    }
    let frames = frames_to(&drain(&mut b), 900);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0]["type"], "visitor_update");
    assert_eq!(frames[0]["visitor"]["short_id"], w.short_id.as_str());
    assert_eq!(b.online_visitors(now, 1).len(), 1, "b lists it");

    // A navigation of it (past the 5 s of a navigation alone): b's watching agent gets
    // it with b's next `visitor_updates`, as an owner's own agents would.
    let later = Millis(now.0 + 6_000);
    a.handle_visitor_frame(
        later,
        1,
        covisit::core::protocol::VisitorMessage::Url {
            current_url: "http://127.0.0.1/next".into(),
        },
    );
    for o in drain(&mut a) {
        if let Output::PublishNow(n) = o {
            b.handle_visitor_news(later, *n);
        }
    }
    assert!(drain(&mut b).is_empty(), "held back until the tick");
    b.handle_timeout(b.poll_timeout().expect("the tick is armed"));
    let frames = frames_to(&drain(&mut b), 900);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0]["type"], "visitor_updates");
    assert_eq!(
        frames[0]["visitors"][0]["last_url"],
        "http://127.0.0.1/next"
    );

    // The agent asks for a session (b's shell routes it to the owner, a): the
    // session's frames go from a to the agent's socket, in the visitor's slot.
    let (session_id, _) = a
        .handle_rest_request_session(now, 1, &w.short_id, agent, SessionSource::Search)
        .expect("requested");
    assert_eq!(
        crate::store::slot_of(&session_id),
        crate::store::slot_of(&w.short_id)
    );
    let out = drain(&mut a);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Send { conn: 900, frame, .. }
        if frame.as_str().contains("\"session_update\""))));

    // a fails: b forgets what a owned.
    b.handle_shadows_lost(now, &(0..128).collect());
    assert!(b.online_visitors(now, 1).is_empty());
    let frames = frames_to(&drain(&mut b), 900);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0]["visitor"]["is_online"], false);

    // a lets go of its slots (fenced): its visitor's socket closes with Moved.
    a.handle_slots_lost(now, &(0..128).collect());
    assert!(drain(&mut a).iter().any(|o| matches!(
        o,
        Output::Close {
            conn: 1,
            reason: CloseReason::Moved
        }
    )));
    assert_eq!(a.counts(), (0, 0));
}

/// A clustered hub's news of a navigation announces no write: it is `PublishNow`
/// (the shell sends it at once), while a change it persists (the visitor came online,
/// it lost focus) is `Publish`, after its writes.
#[test]
fn navigation_news_goes_now_and_other_news_after_the_writes() {
    let now = Millis(1_800_000_000_000);
    let mut a = hub();
    a.set_owned_slots(Some((0..256).collect()));
    a.handle_visitor_connect(now, 1, hello(1))
        .expect("connects");
    let kinds = |out: Vec<Output>| -> Vec<&'static str> {
        out.iter()
            .filter_map(|o| match o {
                Output::Publish(_) => Some("after writes"),
                Output::PublishNow(_) => Some("now"),
                _ => None,
            })
            .collect()
    };
    assert_eq!(kinds(drain(&mut a)), ["after writes"], "came online");
    let url = |u: &str| covisit::core::protocol::VisitorMessage::Url {
        current_url: u.into(),
    };
    a.handle_visitor_frame(Millis(now.0 + 10), 1, url("http://127.0.0.1/a"));
    let out = drain(&mut a);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Persist(_))),
        "the url is written later, coalesced"
    );
    assert_eq!(kinds(out), ["now"], "a navigation");
    // A heartbeat after it changes nothing agents see: no news, no write, no update
    // (the navigation's was sent).
    a.handle_visitor_frame(
        Millis(now.0 + 20),
        1,
        covisit::core::protocol::VisitorMessage::Heartbeat,
    );
    let out = drain(&mut a);
    assert!(
        !out.iter().any(|o| matches!(o, Output::Persist(_))
            || matches!(o, Output::Send { frame, .. } if frame.as_str().contains("visitor_update"))),
        "{out:?}"
    );
    assert!(kinds(out).is_empty(), "a heartbeat");
    a.handle_visitor_frame(
        Millis(now.0 + 30),
        1,
        covisit::core::protocol::VisitorMessage::RequestAgent,
    );
    assert_eq!(kinds(drain(&mut a)), ["after writes"], "asks for an agent");
}

/// Drives `visitors` visitors (connections `0..visitors`) navigating 20 times a second
/// from `start` to `end`, stepping the hub's clock to each navigation or timer, and
/// hands every batch of outputs to `take`, the last after `end`.
fn drive_navigations(
    hub: &mut Hub,
    visitors: u64,
    start: u64,
    end: u64,
    mut take: impl FnMut(Vec<Output>),
) {
    let url = |n: u64| covisit::core::protocol::VisitorMessage::Url {
        current_url: format!("http://127.0.0.1/page/{n}"),
    };
    let (mut now, mut next_nav, mut n) = (start, start, 0u64);
    while now < end {
        if now >= next_nav {
            for conn in 0..visitors {
                n += 1;
                hub.handle_visitor_frame(Millis(now), conn, url(n));
            }
            next_nav += 50;
        }
        take(drain(hub));
        let timer = hub.poll_timeout().map_or(u64::MAX, |d| d.0);
        now = timer.min(next_nav);
        if timer <= now {
            hub.handle_timeout(Millis(now));
        }
    }
    take(drain(hub));
}

/// Navigations' urls are written coalesced, once a tick at most, even while the
/// broadcast timer fires far more often for many visitors' held-back updates (each at
/// its own time): 40 visitors navigating 20 times a second for 6 s.
#[test]
fn url_writes_are_coalesced_to_one_a_tick_while_held_back_updates_fall_due() {
    let t0 = Millis(1_800_000_000_000);
    let mut hub = hub();
    let visitors = 40u64;
    for conn in 0..visitors {
        // Connected 9 ms apart: their updates fall due at 40 different times.
        hub.handle_visitor_connect(Millis(t0.0 + conn * 9), conn, hello(1))
            .expect("connects");
    }
    drain(&mut hub);
    let (start, end) = (t0.0 + 1_000, t0.0 + 7_000);
    let mut url_writes = 0u64;
    drive_navigations(&mut hub, visitors, start, end, |out| {
        url_writes += out
            .iter()
            .filter(|o| matches!(o, Output::Persist(crate::store::Write::Visitor(..))))
            .count() as u64;
    });
    let ticks = (end - start) / BROADCAST_TICK_MS + 1;
    assert!(
        url_writes <= visitors * ticks,
        "{url_writes} visitor writes in {ticks} ticks of {visitors} visitors"
    );
    assert!(
        url_writes >= visitors * (ticks - 2),
        "{url_writes}: urls are written"
    );
}

/// Held-back changes reach a console together: 40 visitors on its list navigating 20
/// times a second for 6 s come as one `visitor_updates` a tick at most (not a frame per
/// visitor), each visitor at most once in a frame and with its latest state, in text
/// exactly as serde writes `ServerToAgent::VisitorUpdates`.
#[test]
fn held_back_visitor_changes_reach_a_console_in_one_frame_a_tick() {
    use covisit::core::protocol::ServerToAgent;
    let t0 = Millis(1_800_000_000_000);
    let mut hub = hub();
    let visitors = 40u64;
    for conn in 0..visitors {
        hub.handle_visitor_connect(Millis(t0.0 + conn * 9), conn, hello(1))
            .expect("connects");
    }
    let agent_conn = 1_000;
    hub.handle_agent_connect(Millis(t0.0 + 500), agent_conn, identity("u_ada", "Ada"));
    drain(&mut hub);
    let (start, end) = (t0.0 + 1_000, t0.0 + 7_000);
    let mut frames: Vec<String> = Vec::new();
    drive_navigations(&mut hub, visitors, start, end, |out| {
        for o in out {
            if let Output::Send { conn, frame, .. } = o {
                if conn == agent_conn {
                    frames.push(frame.to_string());
                }
            }
        }
    });
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut batches = 0usize;
    for text in &frames {
        let msg: ServerToAgent = serde_json::from_str(text).expect("a server frame");
        assert_eq!(&covisit::core::protocol::encode(&msg), text, "serde's text");
        match msg {
            ServerToAgent::VisitorUpdates { visitors } => {
                batches += 1;
                let mut ids: Vec<&str> = visitors.iter().map(|v| v.short_id.as_str()).collect();
                ids.sort();
                ids.dedup();
                assert_eq!(ids.len(), visitors.len(), "each visitor once a frame");
                for v in visitors {
                    *seen.entry(v.short_id).or_default() += 1;
                }
            }
            other => panic!("only visitor_updates for navigations: {other:?}"),
        }
    }
    let ticks = (end - start) / BROADCAST_TICK_MS + 1;
    assert!(batches as u64 <= ticks, "{batches} frames in {ticks} ticks");
    assert_eq!(
        seen.len(),
        visitors as usize,
        "every visitor's navigation came"
    );
    // Navigations alone: at most every 5 s per visitor (6 s: twice at most).
    assert!(seen.values().all(|&k| (1..=2).contains(&k)), "{seen:?}");
    assert!(
        batches * 4 <= seen.values().sum::<usize>(),
        "{batches} frames for {} updates: batched",
        seen.values().sum::<usize>()
    );
}

/// A visitor queued for a console's next `visitor_updates` is left out of it when the
/// agent has joined the visitor's session meanwhile (it gets every change at once).
#[test]
fn a_queued_visitor_is_left_out_once_its_session_has_the_agent() {
    use covisit::core::model::SessionSource;
    let t0 = Millis(1_800_000_000_000);
    let mut hub = hub();
    let w = hub
        .handle_visitor_connect(t0, 1, hello(1))
        .expect("connects");
    let other = hub
        .handle_visitor_connect(t0, 2, hello(1))
        .expect("connects");
    let ada = identity("u_ada", "Ada");
    hub.handle_agent_connect(t0, 900, ada.clone());
    drain(&mut hub);
    // Both navigate past the 5 s of a navigation alone: queued for Ada.
    let later = Millis(t0.0 + 6_000);
    for conn in [1, 2] {
        let url = covisit::core::protocol::VisitorMessage::Url {
            current_url: format!("http://127.0.0.1/next/{conn}"),
        };
        hub.handle_visitor_frame(later, conn, url);
    }
    hub.handle_rest_request_session(later, 1, &w.short_id, ada.agent, SessionSource::Search)
        .expect("requested");
    drain(&mut hub);
    hub.handle_timeout(Millis(later.0 + BROADCAST_TICK_MS));
    let listed: Vec<String> = frames_to(&drain(&mut hub), 900)
        .into_iter()
        .filter(|f| f["type"] == "visitor_updates")
        .flat_map(|f| f["visitors"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v["short_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        listed,
        [other.short_id],
        "only the visitor outside her session"
    );
}

/// A session's frames find its agents' sockets by id (`sockets_of`): every socket of
/// the agent, in socket order, none of another agent or account, and none once closed.
#[test]
fn a_sessions_agents_are_found_by_id_on_every_socket_they_hold() {
    let now = Millis(1_800_000_000_000);
    let mut hub = hub();
    hub.handle_agent_connect(now, 12, identity("u_ada", "Ada"));
    hub.handle_agent_connect(now, 10, identity("u_ada", "Ada"));
    hub.handle_agent_connect(now, 11, identity("u_bob", "Bob"));
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(hub.sockets_of(1, &ids(&["u_ada"])), [10, 12]);
    assert_eq!(hub.sockets_of(1, &ids(&["u_bob", "u_ada"])), [10, 11, 12]);
    assert_eq!(hub.sockets_of(1, &ids(&["u_eve"])), [] as [ConnId; 0]);
    assert_eq!(hub.sockets_of(2, &ids(&["u_ada"])), [] as [ConnId; 0]);
    hub.handle_agent_disconnect(now, 12);
    assert_eq!(hub.sockets_of(1, &ids(&["u_ada"])), [10]);
    hub.handle_agent_disconnect(now, 10);
    hub.handle_agent_disconnect(now, 11);
    assert!(hub.sockets_of(1, &ids(&["u_ada", "u_bob"])).is_empty());
    assert!(hub.agent_sockets.is_empty(), "nothing left behind");
}

/// An agent identity of account 1.
fn identity(id: &str, name: &str) -> AgentIdentity {
    AgentIdentity {
        account_id: 1,
        agent: covisit::core::model::Agent {
            agent_nickname: name.into(),
            email: None,
            external_id: None,
            id: id.into(),
            name: name.into(),
            on_premise: true,
        },
        ip: "10.0.0.1".into(),
        user_id: Some(id.into()),
        auth_session: None,
        api_key: None,
        may_join_any: false,
    }
}

/// An agent's hello lists the most recently seen visitors: the same as the first of
/// the full list, newest first.
#[test]
fn the_newest_online_visitors_are_the_first_of_the_full_list() {
    let t0 = Millis(1_800_000_000_000);
    let mut hub = hub();
    for conn in 0..30u64 {
        // Seen 1 s apart, in a shuffled order.
        hub.handle_visitor_connect(Millis(t0.0 + (conn * 7 % 30) * 1000), conn, hello(1))
            .expect("connects");
    }
    let now = Millis(t0.0 + 60_000);
    let all = hub.online_visitors(now, 1);
    assert_eq!(all.len(), 30);
    assert!(all
        .windows(2)
        .all(|w| w[0].last_seen_at >= w[1].last_seen_at));
    assert_eq!(hub.newest_online_visitors(now, 1, 5), all[..5].to_vec());
    assert_eq!(hub.newest_online_visitors(now, 1, 50), all);
    assert!(
        hub.newest_online_visitors(now, 2, 5).is_empty(),
        "another account's"
    );
}

/// The frames among `out` sent to socket `conn`, parsed.
fn frames_to(out: &[Output], conn: ConnId) -> Vec<Value> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { conn: c, frame, .. } if *c == conn => {
                serde_json::from_str(frame.as_str()).ok()
            }
            _ => None,
        })
        .collect()
}

/// Everything the hub asked for, drained.
fn drain(hub: &mut Hub) -> Vec<Output> {
    std::iter::from_fn(|| hub.poll_output()).collect()
}

/// A recorded account's session (issue 18): the visitor's prompt says so, the relayed
/// mirror frames and the session's events go to the writer with their times, in
/// chunks after the recording's start, and the session's end ends the recording once
/// the input that ended it is through (its audit entries included). An account that
/// does not record writes none of it.
#[test]
fn a_recorded_session_writes_its_frames_and_events_in_order() {
    use covisit::core::model::Agent;
    use covisit::core::protocol::{AgentMessage, FoundBy, MirrorData, VisitorMessage};
    let t0 = Millis(1_800_000_000_000);
    let mut hub = hub();
    let agent = Agent::new("u_ada", "Ada", None);
    let who = |account_id| AgentIdentity {
        account_id,
        agent: agent.clone(),
        ip: "10.0.0.1".into(),
        user_id: Some("u_ada".into()),
        auth_session: None,
        api_key: None,
        may_join_any: false,
    };
    hub.handle_agent_connect(t0, 900, who(1));
    hub.handle_agent_connect(t0, 901, who(2));
    let recorded = hub
        .handle_visitor_connect(
            t0,
            1,
            VisitorHello {
                record_sessions: true,
                ..hello(1)
            },
        )
        .expect("connects");
    let unrecorded = hub
        .handle_visitor_connect(t0, 2, hello(2))
        .expect("connects");
    drain(&mut hub);

    let mut sessions = Vec::new();
    let mut out = Vec::new();
    for (agent_conn, visitor_conn, short_id) in
        [(900, 1, &recorded.short_id), (901, 2, &unrecorded.short_id)]
    {
        let t = Millis(t0.0 + 1000);
        hub.handle_agent_frame(
            t,
            agent_conn,
            AgentMessage::RequestSession {
                short_id: short_id.clone(),
                found_by: FoundBy::Search,
            },
        );
        out.extend(drain(&mut hub));
        let request = frames_to(&out, visitor_conn)
            .into_iter()
            .find(|f| f["type"] == "session_request")
            .expect("the visitor is asked");
        assert_eq!(request["recorded"], visitor_conn == 1);
        let session_id = request["session_id"].as_str().unwrap().to_string();
        hub.handle_visitor_frame(Millis(t0.0 + 2000), visitor_conn, VisitorMessage::Authorize);
        let data =
            MirrorData::from_text(r#"[["S",1,"https://shop.example/",800,600,1,0],["E"]]"#.into())
                .unwrap();
        hub.handle_visitor_frame(
            Millis(t0.0 + 3000),
            visitor_conn,
            VisitorMessage::Mirror { data },
        );
        hub.handle_agent_frame(
            Millis(t0.0 + 4000),
            agent_conn,
            AgentMessage::Note {
                session_id: session_id.clone(),
                text: "typed by the agent".into(),
            },
        );
        hub.handle_agent_frame(
            Millis(t0.0 + 5000),
            agent_conn,
            AgentMessage::EndSession {
                session_id: session_id.clone(),
            },
        );
        sessions.push(session_id);
    }
    out.extend(drain(&mut hub));
    // The end goes out at the next timeout.
    let due = hub.poll_timeout().expect("a recording's end is due");
    assert!(due <= Millis(t0.0 + 5000));
    hub.handle_timeout(Millis(t0.0 + 5000));
    out.extend(drain(&mut hub));

    let mut order = Vec::new();
    let mut lines = String::new();
    for o in &out {
        match o {
            Output::Persist(Write::RecordingStart(r)) => {
                assert_eq!(
                    (r.account_id, r.session_id.as_str(), r.visitor_id.as_str()),
                    (1, sessions[0].as_str(), recorded.short_id.as_str())
                );
                order.push("start");
            }
            Output::Persist(Write::RecordingChunk(c)) => {
                assert_eq!(c.session_id, sessions[0]);
                lines.push_str(&c.lines);
                order.push("chunk");
            }
            Output::Persist(Write::RecordingEnd(id, _)) => {
                assert_eq!(id, &sessions[0]);
                order.push("end");
            }
            Output::RecordingEnded(id) => {
                assert_eq!(id, &sessions[0]);
                order.push("ended");
            }
            _ => {}
        }
    }
    assert_eq!(order, ["start", "chunk", "end", "ended"]);
    let lines: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let t = |s: u64| Value::from(t0.0 + s * 1000);
    assert_eq!(
        lines,
        [
            json!([
                t(2),
                "e",
                "session.authorized",
                format!("visitor:{}", recorded.short_id),
                "ok"
            ]),
            json!([
                t(3),
                "m",
                &lines[1][2],
                [["S", 1, "https://shop.example/", 800, 600, 1, 0], ["E"]]
            ]),
            json!([t(4), "n", "u_ada", "typed by the agent"]),
            json!([t(5), "e", "session.ended", "u_ada", "ok"]),
        ]
    );
    // The Session's video_status: pending once over (the store finalises it), and
    // not_available where nothing is recorded.
    assert_eq!(
        hub.session(1, &sessions[0])
            .unwrap()
            .0
            .video_status
            .as_deref(),
        Some("pending")
    );
    assert_eq!(
        hub.session(2, &sessions[1])
            .unwrap()
            .0
            .video_status
            .as_deref(),
        Some("not_available")
    );
    hub.handle_timeout(Millis(t0.0 + 60_000));
    assert!(
        !drain(&mut hub).iter().any(|o| matches!(
            o,
            Output::Persist(
                Write::RecordingStart(_) | Write::RecordingChunk(_) | Write::RecordingEnd(..)
            ) | Output::RecordingEnded(_)
        )),
        "nothing left to write"
    );
}

/// A share's ICE servers (with TURN credentials) reach the visitor only once it allowed
/// the share, in `share_start`; a share allowed then stopped before its stream ran is a
/// hang-up, not a decline; an agent's `end` says why its side dropped the call.
#[test]
fn a_share_gets_ice_servers_only_after_consent_and_ends_say_why() {
    use covisit::core::protocol::{
        AgentMessage, CallFromAgent, CallFromVisitor, FoundBy, VisitorCallEnd, VisitorMessage,
    };
    let t0 = Millis(1_800_000_000_000);
    let mut hub = Hub::new(
        HubConfig {
            public_url: "http://127.0.0.1".into(),
            grace_period_seconds: 30,
            visitor_silence_ms: 60_000,
            agent_silence_ms: 180_000,
            ice: crate::ice::IceConfig {
                urls: vec!["turn:127.0.0.1:3478".into()],
                turn_secret: Some("hub-test-secret".into()),
                ttl_seconds: 0,
            },
        },
        Ids::seeded(7),
    );
    let (agent, visitor) = (900, 1);
    hub.handle_agent_connect(t0, agent, identity("u_ada", "Ada"));
    let welcome = hub
        .handle_visitor_connect(
            t0,
            visitor,
            VisitorHello {
                config: json!({ "allowRequestFullTab": true }),
                connection: ConnectionHello {
                    has_focus: true,
                    audio_supported: true,
                    ..ConnectionHello::default()
                },
                ..hello(1)
            },
        )
        .expect("connects");
    drain(&mut hub);
    let t = |s: u64| Millis(t0.0 + s * 1000);
    hub.handle_agent_frame(
        t(1),
        agent,
        AgentMessage::RequestSession {
            short_id: welcome.short_id.clone(),
            found_by: FoundBy::Search,
        },
    );
    let out = drain(&mut hub);
    let session_id = frames_to(&out, visitor)
        .into_iter()
        .find(|f| f["type"] == "session_request")
        .expect("the visitor is asked")["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    hub.handle_visitor_frame(t(2), visitor, VisitorMessage::Authorize);
    drain(&mut hub);
    let call = |call| AgentMessage::Call {
        session_id: session_id.clone(),
        call,
    };
    let calls_to = |out: &[Output], conn| -> Vec<Value> {
        frames_to(out, conn)
            .into_iter()
            .filter(|f| f["type"] == "call")
            .map(|f| f["call"].clone())
            .collect()
    };
    let share_reason = |out: &[Output]| -> Option<Value> {
        frames_to(out, agent)
            .into_iter()
            .filter(|f| f["type"] == "session_update")
            .map(|f| f["call"]["share_reason"].clone())
            .next_back()
    };

    hub.handle_agent_frame(
        t(3),
        agent,
        call(CallFromAgent::ShareRequest { screen: false }),
    );
    let out = drain(&mut hub);
    let asked = calls_to(&out, visitor);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["kind"], "share_request");
    assert!(
        asked[0].get("ice_servers").is_none(),
        "no ICE before consent: {asked:?}"
    );
    assert!(!serde_json::to_string(&asked).unwrap().contains("3478"));

    hub.handle_visitor_frame(
        t(4),
        visitor,
        VisitorMessage::Call {
            call: CallFromVisitor::ShareAccept,
        },
    );
    let out = drain(&mut hub);
    let to_visitor = calls_to(&out, visitor);
    assert_eq!(to_visitor.len(), 1, "{to_visitor:?}");
    assert_eq!(to_visitor[0]["kind"], "share_start");
    let ice = &to_visitor[0]["ice_servers"][0];
    assert_eq!(ice["urls"], "turn:127.0.0.1:3478");
    assert!(
        ice["username"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", welcome.short_id)),
        "{ice}"
    );
    assert!(ice["credential"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(calls_to(&out, agent)[0]["kind"], "share_start");

    // Allowed, then stopped before its stream ran: the visitor hung up.
    hub.handle_visitor_frame(
        t(5),
        visitor,
        VisitorMessage::Call {
            call: CallFromVisitor::ShareEnd {
                reason: VisitorCallEnd::Declined,
            },
        },
    );
    let out = drain(&mut hub);
    assert_eq!(share_reason(&out), Some(json!("hung_up_by_visitor")));

    // Asked and declined: a decline.
    hub.handle_agent_frame(
        t(6),
        agent,
        call(CallFromAgent::ShareRequest { screen: false }),
    );
    hub.handle_visitor_frame(
        t(7),
        visitor,
        VisitorMessage::Call {
            call: CallFromVisitor::ShareEnd {
                reason: VisitorCallEnd::Declined,
            },
        },
    );
    let out = drain(&mut hub);
    assert_eq!(share_reason(&out), Some(json!("declined")));

    // The agent's browser gave no microphone: the call ends `media_denied`, not as a hang-up.
    hub.handle_agent_frame(t(8), agent, call(CallFromAgent::Start { video: false }));
    hub.handle_visitor_frame(
        t(9),
        visitor,
        VisitorMessage::Call {
            call: CallFromVisitor::Accept {
                audio: true,
                video: false,
            },
        },
    );
    drain(&mut hub);
    hub.handle_agent_frame(
        t(10),
        agent,
        call(CallFromAgent::End {
            reason: Some(VisitorCallEnd::MediaDenied),
        }),
    );
    let out = drain(&mut hub);
    let ended = calls_to(&out, visitor);
    assert_eq!(ended, [json!({ "kind": "end", "reason": "media_denied" })]);
}
