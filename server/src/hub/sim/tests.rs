//! Scenarios run in the simulation: what must reach whom, what must never, and what
//! the timers do, proven by stepping the world rather than by waiting on a real one.

use covisit::core::client::{ClientEvent, StoredIds};
use covisit::core::protocol::{AgentMessage, FoundBy, RemoteAction};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::{Net, Sim};

/// A tab whose visitor has been welcomed.
fn welcomed_tab(sim: &mut Sim, config: Value) -> usize {
    let tab = sim.open_tab(config, StoredIds::default());
    assert!(
        sim.run_until(5_000, |s| s.tabs[tab].stored.short_id.is_some()),
        "the tab is welcomed"
    );
    tab
}

/// `agent` asks the tab's visitor for a session and the visitor allows it: the
/// session is active. Returns its id.
fn live_session(sim: &mut Sim, agent: usize, tab: usize) -> String {
    let short_id = sim.short_id(tab);
    sim.agent_send(
        agent,
        AgentMessage::RequestSession {
            short_id,
            found_by: FoundBy::Search,
        },
    );
    assert!(sim.run_until(5_000, |s| s.tabs[tab]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::SessionRequest { .. }))));
    // The visitor's deliberate click on Allow.
    sim.page(tab, |c| c.authorize())
        .expect("a prompt to answer");
    assert!(sim
        .run_until(5_000, |s| s.agents[agent].frames.iter().any(|f| {
            f["type"] == "session_update" && f["status"] == "active"
        })));
    sim.session_of(agent, tab).expect("a session")
}

fn request_control(sim: &mut Sim, agent: usize, tab: usize, session_id: &str) {
    sim.agent_send(
        agent,
        AgentMessage::RequestControl {
            session_id: session_id.into(),
        },
    );
    assert!(sim.run_until(5_000, |s| s.tabs[tab]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::ControlRequest { .. }))));
    sim.page(tab, |c| c.grant_control())
        .expect("a control prompt");
    assert!(
        sim.run_until(5_000, |s| s.agents[agent].frames.iter().any(|f| {
            f["type"] == "session_update" && f["control"]["state"] == "granted"
        }))
    );
}

fn click(session_id: &str) -> AgentMessage {
    AgentMessage::RemoteAction {
        session_id: session_id.into(),
        tab: None,
        action: RemoteAction::Click {
            node: 5,
            x: 1,
            y: 2,
        },
    }
}

/// Mirror records reach the agents of an active session and nobody else: not before
/// the visitor allowed it, not other agents of the account, not after the end, and not
/// when a hostile page pushes them past the SDK.
#[test]
fn mirror_reaches_the_sessions_agents_only_while_it_is_active() {
    let mut sim = Sim::new(1, Net::default());
    let tab = welcomed_tab(&mut sim, json!({}));
    let grace = sim.connect_agent("Grace");
    let ola = sim.connect_agent("Ola");
    let short_id = sim.short_id(tab);
    let records =
        r#"[["S",1,"http://127.0.0.1:8080/shop",800,600,1],["N",1,0,[0,"html"],[1,0,"secret"]]]"#;
    let mirror_frame = format!(r#"{{"type":"mirror","data":{records}}}"#);

    // No session: the SDK refuses to send; a page that sends anyway reaches nobody.
    assert!(!sim.capture(tab, serde_json::from_str(records).unwrap()));
    sim.inject(tab, &mirror_frame);
    sim.agent_send(
        grace,
        AgentMessage::RequestSession {
            short_id,
            found_by: FoundBy::Search,
        },
    );
    assert!(sim.run_until(5_000, |s| s.tabs[tab]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::SessionRequest { .. }))));
    // Asked but not allowed yet: still nothing.
    sim.inject(tab, &mirror_frame);
    sim.settle();
    assert_eq!(sim.agent_count(grace, "mirror"), 0);
    assert_eq!(sim.agent_count(ola, "mirror"), 0);
    assert!(!sim.tabs[tab].capturing, "capture waits for the visitor");

    sim.page(tab, |c| c.authorize()).unwrap();
    assert!(sim.run_until(5_000, |s| s.agent_count(grace, "mirror") > 0));
    let first = &sim.agents_frames(grace, "mirror")[0];
    assert_eq!(first["tab"], sim.connection_id(tab).as_str());
    assert_eq!(
        first["data"][0][0], "S",
        "the capture starts with a snapshot"
    );
    sim.settle();
    assert_eq!(
        sim.agent_count(ola, "mirror"),
        0,
        "Ola is not in the session"
    );

    // The visitor ends it: the capture stops and injected frames go nowhere.
    sim.page(tab, |c| c.end()).unwrap();
    assert!(sim
        .run_until(5_000, |s| s.agents[grace].frames.iter().any(|f| {
            f["type"] == "session_update" && f["status"] == "ended"
        })));
    assert!(!sim.tabs[tab].capturing);
    let seen = sim.agent_count(grace, "mirror");
    sim.inject(tab, &mirror_frame);
    sim.settle();
    assert_eq!(sim.agent_count(grace, "mirror"), seen);
    assert_eq!(sim.agent_count(ola, "mirror"), 0);
}

/// Remote actions reach the page only while the visitor has granted control to that
/// agent; after a revoke nothing more arrives, and a refused one counts for nothing.
#[test]
fn remote_actions_reach_the_page_only_under_granted_control() {
    let mut sim = Sim::new(2, Net::default());
    let tab = welcomed_tab(&mut sim, json!({"allowRemoteScroll": false}));
    let grace = sim.connect_agent("Grace");
    let session_id = live_session(&mut sim, grace, tab);

    let before = sim.agents[grace].frames.len();
    sim.agent_send(grace, click(&session_id));
    sim.settle();
    assert!(sim.tabs[tab].applied.is_empty(), "no control, no click");
    let refusals = sim.agent_frames_since(grace, before, "error");
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0]["code"], "control_not_granted");

    request_control(&mut sim, grace, tab, &session_id);
    sim.agent_send(grace, click(&session_id));
    // Scrolling is off in this page's config: refused by the server already.
    sim.agent_send(
        grace,
        AgentMessage::RemoteAction {
            session_id: session_id.clone(),
            tab: None,
            action: RemoteAction::Scroll {
                node: 0,
                x: 0,
                y: 100,
            },
        },
    );
    assert!(sim.run_until(5_000, |s| s.agent_count(grace, "remote_result") == 1));
    sim.settle();
    assert_eq!(sim.tabs[tab].applied.len(), 1, "the click, not the scroll");
    assert_eq!(sim.agent_frames(grace, "remote_result")[0]["ok"], true);

    sim.page(tab, |c| c.revoke_control()).unwrap();
    assert!(sim.run_until(5_000, |s| s.agents[grace]
        .frames
        .iter()
        .rev()
        .any(|f| { f["type"] == "session_update" && f["control"]["state"] == "none" })));
    sim.agent_send(grace, click(&session_id));
    sim.settle();
    assert_eq!(sim.tabs[tab].applied.len(), 1, "nothing after the revoke");
    let (session, _) = &sim.store.sessions[&session_id];
    assert!(session.features_used.iter().any(|f| f == "remote_click"));
    assert!(!session.features_used.iter().any(|f| f == "remote_scroll"));
}

/// An agent is sent `visitor_update`s for the visitors its list shows (its hello's,
/// those that came online since, those it searched for or opened), not for every
/// visitor of the account.
#[test]
fn agents_get_updates_only_for_the_visitors_they_look_at() {
    let mut sim = Sim::new(3, Net::default());
    // More visitors than a hello lists (500), oldest first.
    let tabs: Vec<usize> = (0..520)
        .map(|_| {
            let tab = sim.open_tab(json!({}), StoredIds::default());
            sim.run_for(5);
            tab
        })
        .collect();
    assert!(sim.run_until(10_000, |s| tabs
        .iter()
        .all(|t| s.tabs[*t].stored.short_id.is_some())));
    let ada = sim.connect_agent("Ada");
    sim.settle();
    let pages = sim.agents_frames(ada, "visitors");
    let listed: Vec<Value> = pages
        .iter()
        .flat_map(|p| p["visitors"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(listed.len(), 500, "a hello lists at most 500");
    assert_eq!(pages.len(), 10, "in pages of 50");
    assert!(pages[..9].iter().all(|p| p["more"] == true));
    assert_eq!(pages[9]["more"], false, "the last says so");
    let oldest = sim.short_id(tabs[0]);
    let newest = sim.short_id(tabs[519]);
    assert!(listed.iter().all(|v| v["short_id"] != oldest.as_str()));
    assert!(listed.iter().any(|v| v["short_id"] == newest.as_str()));

    let updates_for = |sim: &Sim, from: usize, short_id: &str| {
        sim.visitor_views_since(ada, from)
            .iter()
            .filter(|v| v["short_id"] == short_id)
            .count()
    };
    // The oldest navigates: not on Ada's list, so not sent to Ada.
    let mark = sim.agents[ada].frames.len();
    sim.page(tabs[0], |c| {
        c.handle_url(super::T0, "http://127.0.0.1:8080/a")
    });
    sim.page(tabs[519], |c| {
        c.handle_url(super::T0, "http://127.0.0.1:8080/b")
    });
    // A navigation reaches agents outside the session within 5 s.
    sim.run_for(6_000);
    assert_eq!(updates_for(&sim, mark, &oldest), 0, "not on the list");
    assert!(updates_for(&sim, mark, &newest) > 0, "on the list");

    // Ada searches for it: the answer has it, and from then on its updates come.
    sim.agent_send(ada, AgentMessage::Search { q: oldest.clone() });
    assert!(sim.run_until(5_000, |s| s.agent_count(ada, "search_result") == 1));
    let found = &sim.agents_frames(ada, "search_result")[0];
    assert_eq!(found["visitors"][0]["short_id"], oldest.as_str());
    let mark = sim.agents[ada].frames.len();
    sim.page(tabs[0], |c| {
        c.handle_url(super::T0, "http://127.0.0.1:8080/c")
    });
    sim.run_for(6_000);
    assert!(updates_for(&sim, mark, &oldest) > 0, "searched for");

    // A visitor that comes online later reaches every agent's list.
    let late = welcomed_tab(&mut sim, json!({}));
    let late_id = sim.short_id(late);
    sim.run_for(2_000);
    assert!(updates_for(&sim, mark, &late_id) > 0, "came online");
}

/// A tab that goes silent (a half-open connection) is closed after the heartbeat
/// allowance; tabs whose SDK keeps beating stay, however long; silent agent consoles
/// are closed too.
#[test]
fn silent_sockets_are_closed_and_heartbeats_keep_them_open() {
    let mut sim = Sim::new(4, Net::default());
    let chatty = welcomed_tab(&mut sim, json!({}));
    let silent = welcomed_tab(&mut sim, json!({}));
    let grace = sim.connect_agent("Grace");
    let mute = sim.connect_agent("Mute");
    sim.agents[mute].heartbeats = false;
    let chatty_conn = sim.tabs[chatty].conn;
    let silent_conn = sim.tabs[silent].conn;
    sim.mute(silent, true);

    // Just under the visitors' allowance: nobody is closed yet.
    sim.run_for(59_000);
    assert_eq!(sim.tabs[silent].conn, silent_conn, "not yet");
    // Past it: the server closes the silent tab (which then reconnects).
    sim.run_for(2_000);
    assert_ne!(sim.tabs[silent].conn, silent_conn, "closed after 60 s");
    // Ten minutes on: the chatty tab kept its one socket; the agent that does not beat
    // was closed after its allowance (180 s), the other was not.
    sim.run_for(600_000);
    assert_eq!(sim.tabs[chatty].conn, chatty_conn);
    assert!(sim.agents[grace].open);
    assert!(!sim.agents[mute].open);
}

/// A tab that vanishes keeps its active session through the grace period (a reload
/// comes back to it); when nothing comes back, the session ends when the grace ends.
#[test]
fn a_vanished_tab_ends_its_session_when_the_grace_period_ends() {
    let mut sim = Sim::new(5, Net::default());
    let tab = welcomed_tab(&mut sim, json!({}));
    let grace = sim.connect_agent("Grace");
    let session_id = live_session(&mut sim, grace, tab);

    // A network blip: the SDK reconnects and the session continues.
    sim.drop_socket(tab);
    assert!(sim.run_until(10_000, |s| s.tabs[tab]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::SessionContinue { .. }))));

    sim.kill_tab(tab);
    let killed = sim.now;
    let ended = |s: &Sim| {
        s.agents[grace].frames.iter().any(|f| {
            f["type"] == "session_update"
                && f["session"]["id"] == session_id.as_str()
                && f["status"] == "ended"
        })
    };
    assert!(sim.run_until(120_000, ended));
    let after = sim.now.0 - killed.0;
    assert!(
        (30_000..31_000).contains(&after),
        "ended {after} ms after the tab vanished (grace 30 s)"
    );
}

/// Knowing a visitor's short id (and even its tab's id) does not make a page that
/// visitor: it becomes a new visitor, and nothing of the victim's session reaches it
/// or is touched by it.
#[test]
fn naming_a_visitor_or_its_tab_does_not_take_it_over() {
    let mut sim = Sim::new(6, Net::default());
    let victim = welcomed_tab(&mut sim, json!({}));
    let grace = sim.connect_agent("Grace");
    let session_id = live_session(&mut sim, grace, victim);
    let stolen = StoredIds {
        short_id: Some(sim.short_id(victim)),
        visitor_secret: None,
        connection_id: Some(sim.connection_id(victim)),
    };
    let mark = sim.agents[grace].frames.len();
    let attacker = sim.open_tab(json!({}), stolen);
    assert!(sim.run_until(5_000, |s| s.tabs[attacker]
        .events
        .iter()
        .any(|e| matches!(e, ClientEvent::Ready { .. }))));
    assert_ne!(sim.short_id(attacker), sim.short_id(victim));
    assert_ne!(sim.connection_id(attacker), sim.connection_id(victim));
    // The attacker's page tries to act in the victim's session.
    sim.inject(attacker, r#"{"type":"end"}"#);
    sim.inject(attacker, r#"{"type":"control_grant"}"#);
    sim.settle();
    let attacker_kinds: Vec<String> = sim.tabs[attacker]
        .frames
        .iter()
        .map(|f| f["type"].as_str().unwrap_or_default().to_string())
        .collect();
    for kind in [
        "session_request",
        "session_start",
        "mirror_resync",
        "remote_action",
    ] {
        assert!(!attacker_kinds.iter().any(|k| k == kind), "{kind} leaked");
    }
    let victim_updates = sim
        .agent_frames_since(grace, mark, "session_update")
        .into_iter()
        .filter(|f| f["session"]["id"] == session_id.as_str())
        .collect::<Vec<_>>();
    assert!(
        victim_updates.is_empty(),
        "the session did not change: {victim_updates:?}"
    );
    assert_eq!(sim.store.sessions[&session_id].1, "active");
}

/// A lookup code shows for an hour; then agents see it go.
#[test]
fn lookup_codes_expire_after_an_hour() {
    let mut sim = Sim::new(7, Net::default());
    let tab = welcomed_tab(&mut sim, json!({}));
    let ada = sim.connect_agent("Ada");
    sim.settle();
    let listed = &sim.agents_frames(ada, "visitors")[0]["visitors"][0];
    assert!(listed["lookup_code"].is_string());
    let short_id = sim.short_id(tab);
    let code_gone = |s: &Sim| {
        s.visitor_views_since(ada, 0)
            .iter()
            .any(|v| v["short_id"] == short_id.as_str() && v["lookup_code"].is_null())
    };
    sim.run_for(3_590_000);
    assert!(!code_gone(&sim), "still valid before the hour");
    assert!(sim.run_until(20_000, code_gone));
}

/// Random worlds (seeded): visitors, agents and a lossy network doing random things.
/// After every step nobody outside a session has seen its mirror, and no page got a
/// remote action without control; at the end, with every tab gone, no session is left
/// live and the hub holds no more than it should.
#[test]
fn random_worlds_keep_the_invariants() {
    for seed in 0..12u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let net = Net {
            latency_ms: rng.gen_range(1..80),
            jitter_ms: rng.gen_range(0..40),
        };
        let mut sim = Sim::new(seed, net);
        let tabs: Vec<usize> = (0..6)
            .map(|_| sim.open_tab(json!({}), StoredIds::default()))
            .collect();
        let agents: Vec<usize> = ["Ada", "Bo", "Cy"]
            .iter()
            .map(|n| sim.connect_agent(n))
            .collect();
        sim.run_for(2_000);
        for _ in 0..300 {
            let tab = tabs[rng.gen_range(0..tabs.len())];
            let agent = agents[rng.gen_range(0..agents.len())];
            match rng.gen_range(0..12) {
                0 | 1 => {
                    if let Some(short_id) = sim.tabs[tab].stored.short_id.clone() {
                        sim.agent_send(
                            agent,
                            AgentMessage::RequestSession {
                                short_id,
                                found_by: FoundBy::Search,
                            },
                        );
                    }
                }
                2 => {
                    let _ = sim.page(tab, |c| c.authorize());
                }
                3 => {
                    let _ = sim.page(tab, |c| c.deny());
                }
                4 => {
                    let _ = sim.page(tab, |c| c.end());
                }
                5 => sim.drop_socket(tab),
                6 => {
                    if let Some(session_id) = sim.session_of(agent, tab) {
                        sim.agent_send(agent, AgentMessage::RequestControl { session_id });
                    }
                }
                7 => {
                    let _ = sim.page(tab, |c| c.grant_control());
                }
                8 => {
                    if let Some(session_id) = sim.session_of(agent, tab) {
                        sim.agent_send(agent, click(&session_id));
                    }
                }
                9 => {
                    let _ = sim.capture(tab, json!([["T", 1, "typed"]]));
                }
                10 => {
                    let _ = sim.page(tab, |c| c.revoke_control());
                }
                _ => {
                    let muted = !sim.tabs[tab].muted;
                    sim.mute(tab, muted);
                }
            }
            let wait = rng.gen_range(0..3_000);
            sim.run_for(wait);
            check_invariants(&sim);
        }
        for tab in tabs {
            sim.mute(tab, false);
            sim.kill_tab(tab);
        }
        sim.run_for(120_000);
        check_invariants(&sim);
        let (online, live) = sim.hub.counts();
        assert_eq!(
            (online, live),
            (0, 0),
            "seed {seed}: all gone, nothing live"
        );
        let (conns, sessions, timers) = sim.hub.sizes();
        assert_eq!(conns, 3, "seed {seed}: only the agents' sockets");
        assert_eq!(sessions, 0, "seed {seed}: ended sessions are let go");
        assert!(timers <= 3 + 6 * 2, "seed {seed}: {timers} timers left");
    }
}

/// Every mirror frame an agent received belongs to a session that agent is part of;
/// every remote action a page applied came while some agent held control of it.
fn check_invariants(sim: &Sim) {
    for a in &sim.agents {
        for f in a.frames.iter().filter(|f| f["type"] == "mirror") {
            let id = f["session_id"].as_str().unwrap_or_default();
            let (session, _) = sim
                .store
                .sessions
                .get(id)
                .unwrap_or_else(|| panic!("mirror of an unknown session {id}"));
            assert!(
                session.agents.iter().any(|x| x.id == a.agent.id),
                "{} saw the mirror of {id} without being in it",
                a.agent.name
            );
        }
    }
    for t in &sim.tabs {
        let granted = t
            .events
            .iter()
            .any(|e| matches!(e, ClientEvent::ControlStart { .. }));
        assert!(
            t.applied.is_empty() || granted,
            "a page applied remote actions without ever granting control"
        );
    }
}

impl Sim {
    /// The agent's frames of `kind`, oldest first.
    fn agents_frames(&self, agent: usize, kind: &str) -> Vec<Value> {
        self.agent_frames_since(agent, 0, kind)
    }

    fn agent_frames(&self, agent: usize, kind: &str) -> Vec<Value> {
        self.agents_frames(agent, kind)
    }
}

/// Assets through covisit: an agent in the active session may have the page asked for an
/// asset of a tab whose page opted in; the page's `a` records go to the request (never to
/// the agents' mirrors), only from the tab that was asked, and are counted in the
/// session's bytes. Nobody else may ask, nor anyone once the session ended.
#[test]
fn asset_requests_reach_the_page_in_a_live_session_and_its_answer_only_the_request() {
    let mut sim = Sim::new(11, Net::default());
    let grace = sim.connect_agent("Grace");
    let ola = sim.connect_agent("Ola");
    let tab = welcomed_tab(&mut sim, json!({"assetsProxyConfigured": true}));
    let other_tab = welcomed_tab(&mut sim, json!({}));
    let session = live_session(&mut sim, grace, tab);
    let tab_id = sim.connection_id(tab);
    let url = "http://127.0.0.1:9/img/a.png";
    let g = sim.agents[grace].agent.id.clone();
    let o = sim.agents[ola].agent.id.clone();
    assert!(
        sim.hub
            .asset_scope(super::ACCOUNT, &o, &session, &tab_id)
            .is_err(),
        "an agent outside the session"
    );
    assert!(sim
        .hub
        .asset_scope(super::ACCOUNT, &g, &session, "c_nope")
        .is_err());
    let id = sim
        .hub
        .handle_asset_ask(super::ACCOUNT, &g, &session, &tab_id, url)
        .expect("an agent in the session asks");
    sim.pump();
    assert!(sim.run_until(5_000, |s| !s.tabs[tab].asset_asks.is_empty()));
    assert_eq!(sim.tabs[tab].asset_asks, vec![(id, url.to_string())]);
    // The page's first snapshot has reached the agent: what follows is counted from here.
    assert!(sim.run_until(5_000, |s| s.agent_count(grace, "mirror") > 0));
    let mirrors = sim.agent_count(grace, "mirror");
    // Another tab answering that id is not heard.
    let forged = format!(r#"{{"type":"mirror","data":[["a",{id},"image/png","AAAA",1]]}}"#);
    sim.inject(other_tab, &forged);
    sim.run_for(500);
    assert!(sim.asset_replies.is_empty());
    // The page answers in two pieces, through its client's gate.
    assert!(sim.capture(tab, json!([["a", id, "image/png", "iVBO", 0]])));
    assert!(sim.capture(tab, json!([["a", id, "image/png", "Rw==", 1]])));
    assert!(sim.run_until(5_000, |s| s.asset_replies.len() == 2));
    assert!(sim.asset_replies[1].1.is_last());
    assert_eq!(
        sim.agent_count(grace, "mirror"),
        mirrors,
        "never relayed as records"
    );
    assert!(sim.hub.session_bytes(&session).assets > 0);
    // A piece after the last one is for nobody.
    assert!(sim.capture(tab, json!([["a", id, "image/png", "AAAA", 1]])));
    sim.run_for(500);
    assert_eq!(sim.asset_replies.len(), 2);
    // After the end nobody may ask.
    sim.page(tab, |c| c.end()).expect("the visitor ends it");
    sim.run_for(1_000);
    assert!(sim
        .hub
        .handle_asset_ask(super::ACCOUNT, &g, &session, &tab_id, url)
        .is_err());
}
