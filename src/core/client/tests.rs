//! Unit tests of the SDK client: hello and welcome, the offline queue, reconnect
//! backoff, server frames becoming events, and the local authorization timeout.

use super::test_support::*;
use super::*;
use crate::core::json::Json;

fn client() -> VisitorClient {
    let page = PageInfo {
        url: Some("https://shop.test/".into()),
        screen_width: 1280,
        screen_height: 800,
        has_focus: true,
        user_agent: None,
        call_token: None,
        audio_supported: true,
        ..Default::default()
    };
    VisitorClient::new(&jv!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080", "authorizationTimeoutSeconds": 30}), page, StoredIds::default(), 42).unwrap()
}

fn agent() -> Agent {
    Agent::new("ea_1", "Sam", None)
}

#[test]
fn connects_says_hello_and_becomes_ready() {
    let mut c = client();
    assert_eq!(
        drain(&mut c),
        vec![Output::Connect {
            url: "ws://127.0.0.1:8080/ws/visitor".into()
        }]
    );
    c.handle_socket_open(T0);
    let out = drain(&mut c);
    match sent(&out).as_slice() {
        [VisitorMessage::Hello {
            api_key,
            connection,
            config,
            ..
        }] => {
            assert_eq!(api_key, "pk_demo");
            assert!(connection.has_focus);
            assert_eq!(
                config
                    .get("authorizationTimeoutSeconds")
                    .and_then(Json::as_u64),
                Some(30)
            );
            assert!(config.get("apiKey").is_none());
        }
        other => panic!("expected one hello, got {other:?}"),
    }
    c.handle_frame(
        T0,
        &frame(ServerToVisitor::Welcome {
            protocol_version: 1,
            short_id: "v1".into(),
            unique_connection_id: "c1".into(),
            lookup_code: Some("0042".into()),
            visitor_secret: Some("s1".into()),
        }),
    );
    let out = drain(&mut c);
    assert!(out.contains(&Output::Persist {
        short_id: "v1".into(),
        visitor_secret: Some("s1".into()),
        unique_connection_id: "c1".into()
    }));
    assert!(events(&out).contains(&ClientEvent::Ready {
        short_id: "v1".into(),
        unique_connection_id: "c1".into()
    }));
    assert_eq!(c.lookup_code(), Some("0042"));
    assert!(c.is_online());
}

#[test]
fn messages_are_queued_while_offline_and_flushed_after_welcome() {
    let mut c = client();
    drain(&mut c);
    c.update_visitor(&jv!({"uniqueId": "u-1", "identities": ["Ada Lovelace"]}))
        .unwrap();
    c.handle_url(T0, "https://shop.test/a");
    c.handle_url(T0, "https://shop.test/b");
    assert!(
        sent(&drain(&mut c)).is_empty(),
        "nothing is sent before the welcome"
    );
    let out = welcome(&mut c, T0);
    let msgs = sent(&out);
    assert!(matches!(msgs[0], VisitorMessage::Hello { .. }));
    assert!(matches!(msgs[1], VisitorMessage::UpdateVisitor { .. }));
    assert_eq!(
        msgs[2],
        VisitorMessage::Url {
            current_url: "https://shop.test/b".into()
        },
        "only the latest URL is kept"
    );
    assert_eq!(msgs.len(), 3);
    assert_eq!(c.state().visitor.name.as_deref(), Some("Ada Lovelace"));
}

/// `state().visitor.email` follows the server's rule (`derive::Names`): the email set
/// explicitly, else the first identity that looks like one; clearing either shows it.
#[test]
fn the_visitor_email_is_derived_as_the_server_derives_it() {
    let mut c = client();
    welcome(&mut c, T0);
    let email = |c: &VisitorClient| c.state().visitor.email;
    c.update_visitor(&jv!({"identities": ["Ada Lovelace", "ada@example.com"]}))
        .unwrap();
    assert_eq!(email(&c).as_deref(), Some("ada@example.com"));
    assert_eq!(c.state().visitor.nickname.as_deref(), Some("Ada Lovelace"));
    c.update_visitor(&jv!({"email": "a.l@work.example"}))
        .unwrap();
    assert_eq!(email(&c).as_deref(), Some("a.l@work.example"));
    c.update_visitor(&jv!({"email": null})).unwrap();
    assert_eq!(email(&c).as_deref(), Some("ada@example.com"));
    c.update_visitor(&jv!({"identities": null})).unwrap();
    assert_eq!(email(&c), None);
    assert_eq!(c.state().visitor.nickname.as_deref(), Some("v1"));
}

#[test]
fn reconnects_with_growing_jittered_backoff() {
    let mut c = client();
    drain(&mut c);
    welcome(&mut c, T0);
    c.handle_socket_close(T0);
    let out = drain(&mut c);
    assert!(events(&out).contains(&ClientEvent::ConnectionChange { online: false }));
    let first = c.poll_timeout().unwrap();
    assert!(
        first.0 >= T0.0 + 250 && first.0 <= T0.0 + 500,
        "first retry within the base delay"
    );
    c.handle_timeout(Millis(first.0 - 1));
    assert!(drain(&mut c).is_empty(), "early timeout does nothing");
    c.handle_timeout(first);
    assert!(matches!(drain(&mut c).as_slice(), [Output::Connect { .. }]));
    c.handle_socket_close(first);
    let second = c.poll_timeout().unwrap();
    assert!(
        second.0 - first.0 >= 500 && second.0 - first.0 <= 1000,
        "second retry doubles"
    );
    for _ in 0..20 {
        let t = c.poll_timeout().unwrap();
        c.handle_timeout(t);
        c.handle_socket_close(t);
    }
    let t = c.poll_timeout().unwrap();
    c.handle_timeout(t);
    c.handle_socket_close(t);
    assert!(
        c.poll_timeout().unwrap().0 - t.0 <= RECONNECT_MAX_MS,
        "capped"
    );
}

#[test]
fn server_frames_become_events_and_the_prompt_times_out_locally() {
    let mut c = client();
    drain(&mut c);
    welcome(&mut c, T0);
    let out = session_request(&mut c, T0, agent());
    assert!(events(&out).contains(&ClientEvent::SessionRequest {
        session_id: "s1".into(),
        agent: agent(),
        recorded: false,
    }));
    assert_eq!(c.status(), SessionStatus::Authorizing);
    let deadline = c.poll_timeout().unwrap();
    assert!(deadline <= T0.plus_seconds(30));
    c.handle_timeout(T0.plus_seconds(30));
    let out = drain(&mut c);
    assert!(events(&out).contains(&ClientEvent::SessionEnd {
        session_id: "s1".into(),
        disconnect_type: DisconnectType::Timeout
    }));
    assert_eq!(c.status(), SessionStatus::Ended);
    // The server's own end later changes nothing more.
    c.handle_frame(
        T0,
        &frame(ServerToVisitor::SessionEnd {
            session_id: "s1".into(),
            disconnect_type: DisconnectType::Timeout,
        }),
    );
    assert!(events(&drain(&mut c)).is_empty());
}

#[test]
fn authorize_then_control_then_end() {
    let mut c = client();
    drain(&mut c);
    welcome(&mut c, T0);
    assert_eq!(c.authorize().unwrap_err().code(), "wrong_session_state");
    c.handle_frame(
        T0,
        &frame(ServerToVisitor::SessionRequest {
            session_id: "s1".into(),
            agent: agent(),
            recorded: false,
        }),
    );
    c.authorize().unwrap();
    assert_eq!(sent(&drain(&mut c)), vec![VisitorMessage::Authorize]);
    c.handle_frame(
        T0,
        &frame(ServerToVisitor::SessionStart {
            session_id: "s1".into(),
        }),
    );
    assert_eq!(c.grant_control().unwrap_err().code(), "wrong_control_state");
    c.handle_frame(
        T0,
        &frame(ServerToVisitor::ControlRequest { agent: agent() }),
    );
    c.grant_control().unwrap();
    c.handle_frame(
        T0,
        &frame(ServerToVisitor::ControlStart {
            agent_id: "ea_1".into(),
        }),
    );
    assert!(c.control_granted());
    drain(&mut c);
    c.end().unwrap();
    let out = drain(&mut c);
    assert_eq!(sent(&out), vec![VisitorMessage::End]);
    let ev = events(&out);
    assert!(ev.contains(&ClientEvent::ControlEnd {
        agent_id: "ea_1".into()
    }));
    assert!(ev.contains(&ClientEvent::SessionEnd {
        session_id: "s1".into(),
        disconnect_type: DisconnectType::Client
    }));
    assert!(!c.control_granted());
    assert_eq!(
        c.rate(&jv!({"rating": 9})).unwrap_err().code(),
        "invalid_argument"
    );
    c.rate(&jv!({"rating": 5, "feedback": "great"})).unwrap();
}

#[test]
fn page_hide_announces_the_return_time_set_by_expect_disconnect() {
    let mut c = client();
    drain(&mut c);
    welcome(&mut c, T0);
    c.handle_page_hide(T0);
    assert_eq!(
        sent(&drain(&mut c)),
        vec![VisitorMessage::ExpectDisconnect {
            return_time_seconds: None,
            message: None,
            title: None
        }]
    );
    c.handle_page_show(T0);
    c.expect_disconnect(&jv!({"returnTimeSeconds": 30, "message": "Paying"}))
        .unwrap();
    c.handle_page_hide(T0);
    let msgs = sent(&drain(&mut c));
    assert_eq!(
        msgs,
        vec![VisitorMessage::ExpectDisconnect {
            return_time_seconds: Some(30),
            message: Some("Paying".into()),
            title: None
        }]
    );
    assert_eq!(
        c.expect_disconnect(&jv!({"returnTimeSeconds": 99999}))
            .unwrap_err()
            .code(),
        "invalid_argument"
    );
    assert_eq!(
        c.expect_disconnect(&jv!({"returnTime": 5}))
            .unwrap_err()
            .code(),
        "config_unknown_key"
    );
}

#[test]
fn a_refused_hello_stops_retrying() {
    let mut c = client();
    drain(&mut c);
    c.handle_socket_open(T0);
    drain(&mut c);
    c.handle_frame(
        T0,
        r#"{"type":"error","code":"invalid_api_key","message":"no such key"}"#,
    );
    let out = drain(&mut c);
    assert!(out.contains(&Output::Close));
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, ClientEvent::Error { code, .. } if code == "invalid_api_key")));
    c.handle_socket_close(T0);
    assert_eq!(c.poll_timeout(), None);
    assert!(c.is_stopped());
}

#[test]
fn garbage_frames_are_reported_not_fatal() {
    let mut c = client();
    drain(&mut c);
    welcome(&mut c, T0);
    c.handle_frame(T0, "{not json");
    c.handle_frame(T0, r#"{"type":"from_the_future"}"#);
    let ev = events(&drain(&mut c));
    assert_eq!(
        ev.len(),
        1,
        "unknown types from a newer server are ignored: {ev:?}"
    );
    assert!(c.is_online());
}

/// `EVENT_NAMES` (what `on()` accepts) and `ClientEvent::name` (what is emitted) are the
/// same list written twice; this keeps them from drifting apart.
#[test]
fn every_emitted_event_name_can_be_subscribed_to() {
    let agent = agent();
    let all = [
        ClientEvent::Ready {
            short_id: String::new(),
            unique_connection_id: String::new(),
        },
        ClientEvent::SessionRequest {
            session_id: String::new(),
            agent: agent.clone(),
            recorded: false,
        },
        ClientEvent::SessionStart {
            session_id: String::new(),
        },
        ClientEvent::SessionContinue {
            session_id: String::new(),
        },
        ClientEvent::SessionEnd {
            session_id: String::new(),
            disconnect_type: DisconnectType::Client,
        },
        ClientEvent::ControlRequest { agent },
        ClientEvent::ControlStart {
            agent_id: String::new(),
        },
        ClientEvent::ControlEnd {
            agent_id: String::new(),
        },
        ClientEvent::PromptWithdrawn {
            prompt: PromptKind::Session,
        },
        ClientEvent::ConnectionChange { online: true },
        ClientEvent::StateChange,
        ClientEvent::Error {
            code: String::new(),
            message: String::new(),
        },
    ];
    let mut names: Vec<&str> = all.iter().map(ClientEvent::name).collect();
    // The call events are fired by the on-demand call file through the facade.
    names.extend(["callRequest", "callStart", "callEnd"]);
    assert_eq!(names, EVENT_NAMES.to_vec());
    // The hand-written detail the SDK hands to handlers is serde's `detail`.
    for event in &all {
        let tagged = serde_json::to_value(event).unwrap();
        let serde_detail = tagged
            .get("detail")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let ours: serde_json::Value = serde_json::from_str(&event.detail_text()).unwrap();
        assert_eq!(ours, serde_detail, "{}", event.name());
    }
    let quoted = ClientEvent::Error {
        code: "c\"1".into(),
        message: "line\nbreak \u{1}".into(),
    };
    let ours: serde_json::Value = serde_json::from_str(&quoted.detail_text()).unwrap();
    assert_eq!(
        ours,
        serde_json::json!({"code": "c\"1", "message": "line\nbreak \u{1}"})
    );
}

#[test]
fn a_withdrawn_prompt_hides_without_ending_and_a_returning_prompt_keeps_its_deadline() {
    let mut c = client();
    welcome(&mut c, T0);
    let request = frame(ServerToVisitor::SessionRequest {
        session_id: "s_1".into(),
        agent: Agent {
            agent_nickname: "Ada".into(),
            email: None,
            external_id: None,
            id: "ea_ada".into(),
            name: "Ada".into(),
            on_premise: true,
        },
        recorded: false,
    });
    c.handle_frame(T0.plus_seconds(1), &request);
    drain(&mut c);
    c.handle_frame(
        T0.plus_seconds(2),
        &frame(ServerToVisitor::PromptWithdrawn {
            prompt: PromptKind::Session,
        }),
    );
    assert_eq!(
        events(&drain(&mut c)),
        vec![ClientEvent::PromptWithdrawn {
            prompt: PromptKind::Session
        }]
    );
    assert_eq!(
        c.status(),
        SessionStatus::Authorizing,
        "still asking, in another tab"
    );
    // Focus comes back: the prompt returns with the time left from the first request
    // (30 s from second 1), not 30 s more.
    c.handle_frame(T0.plus_seconds(9), &request);
    drain(&mut c);
    c.handle_timeout(T0.plus_seconds(32));
    assert!(
        events(&drain(&mut c)).iter().any(|e| matches!(
            e,
            ClientEvent::SessionEnd {
                disconnect_type: DisconnectType::Timeout,
                ..
            }
        )),
        "the first request's 30 seconds ran out"
    );
}

#[test]
fn stop_during_a_live_session_ends_it_before_closing() {
    let mut c = client();
    welcome(&mut c, T0);
    c.handle_frame(
        T0.plus_seconds(1),
        &frame(ServerToVisitor::SessionStart {
            session_id: "s_1".into(),
        }),
    );
    drain(&mut c);
    c.stop();
    let out = drain(&mut c);
    assert_eq!(sent(&out), vec![VisitorMessage::End]);
    let end_at = out.iter().position(|o| matches!(o, Output::Transmit(_)));
    let close_at = out.iter().position(|o| matches!(o, Output::Close));
    assert!(
        end_at < close_at,
        "end goes out before the socket closes: {out:?}"
    );
    assert_eq!(c.status(), SessionStatus::Ended);
    // Stopping again sends nothing.
    c.stop();
    assert!(drain(&mut c).is_empty());
}

#[test]
fn frames_the_browser_parsed_decode_like_text_frames() {
    let mut by_text = client();
    let mut by_value = client();
    by_text.handle_socket_open(T0);
    by_value.handle_socket_open(T0);
    let welcome = frame(ServerToVisitor::Welcome {
        protocol_version: 1,
        short_id: "v1".into(),
        unique_connection_id: "c1".into(),
        lookup_code: Some("1234".into()),
        visitor_secret: Some("s1".into()),
    });
    by_text.handle_frame(T0, &welcome);
    by_value.handle_frame_json(T0, Json::parse(&welcome));
    assert_eq!(drain(&mut by_text), drain(&mut by_value));
    // A newer server's message type is ignored; not JSON (or too large) is an error event.
    by_value.handle_frame_json(T0, Some(jv!({"type": "from_the_future"})));
    assert!(drain(&mut by_value).is_empty());
    by_value.handle_frame_json(T0, None);
    assert!(matches!(
        &events(&drain(&mut by_value))[..],
        [ClientEvent::Error { code, .. }] if code == "malformed_frame"
    ));
    by_value.handle_frame_json(T0, Some(jv!({"type": "session_start"})));
    assert!(matches!(
        &events(&drain(&mut by_value))[..],
        [ClientEvent::Error { code, .. }] if code == "malformed_frame"
    ));
}

/// The visitor's secret: kept from the welcome that gave it, sent in every later hello
/// and beacon, replaced when the server made a new visitor, never in the page's state.
#[test]
fn the_visitor_secret_is_kept_sent_and_replaced_with_a_new_id() {
    let stored = StoredIds {
        short_id: Some("v1".into()),
        visitor_secret: Some("old-secret".into()),
        connection_id: None,
    };
    let config = jv!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080"});
    let mut c = VisitorClient::new(&config, PageInfo::default(), stored, 1).unwrap();
    drain(&mut c);
    c.handle_socket_open(T0);
    match sent(&drain(&mut c)).as_slice() {
        [VisitorMessage::Hello {
            short_id,
            visitor_secret,
            ..
        }] => {
            assert_eq!(short_id.as_deref(), Some("v1"));
            assert_eq!(visitor_secret.as_deref(), Some("old-secret"));
        }
        other => panic!("expected a hello, got {other:?}"),
    }
    // The same visitor: the welcome carries no secret, ours stays.
    let welcome = |short_id: &str, secret: Option<&str>| {
        frame(ServerToVisitor::Welcome {
            protocol_version: 1,
            short_id: short_id.into(),
            unique_connection_id: "c1".into(),
            lookup_code: None,
            visitor_secret: secret.map(Into::into),
        })
    };
    c.handle_frame(T0, &welcome("v1", None));
    let out = drain(&mut c);
    assert!(out.contains(&Output::Persist {
        short_id: "v1".into(),
        visitor_secret: Some("old-secret".into()),
        unique_connection_id: "c1".into(),
    }));
    assert!(!serde_json::to_string(&c.state())
        .unwrap()
        .contains("old-secret"));
    // Not proven (say, the server lost it): a new id with its own secret.
    c.handle_socket_close(T0);
    c.handle_timeout(Millis(T0.0 + 60_000));
    drain(&mut c);
    c.handle_socket_open(T0);
    drain(&mut c);
    c.handle_frame(T0, &welcome("v2", Some("new-secret")));
    assert!(drain(&mut c).contains(&Output::Persist {
        short_id: "v2".into(),
        visitor_secret: Some("new-secret".into()),
        unique_connection_id: "c1".into(),
    }));
    #[cfg(feature = "journey-tracking")]
    {
        c.track_event(T0, "clicked", &Json::Null).unwrap();
        let beacon = c.take_beacon(T0).expect("a beacon");
        let b: crate::core::protocol::TrackBeacon = serde_json::from_str(&beacon).unwrap();
        assert_eq!(b.visitor_secret.as_deref(), Some("new-secret"));
        assert_eq!(b.short_id, "v2");
    }
}

/// A personal link's token goes out once, after the first welcome, and never again.
#[test]
fn a_personal_link_token_is_redeemed_once() {
    let page = PageInfo {
        call_token: Some("tok_0123456789abcdef".into()),
        ..PageInfo::default()
    };
    let config = jv!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080"});
    let mut c = VisitorClient::new(&config, page, StoredIds::default(), 1).unwrap();
    drain(&mut c);
    let out = welcome(&mut c, T0);
    let links: Vec<_> = sent(&out)
        .into_iter()
        .filter(
            |m| matches!(m, VisitorMessage::CallLink { token } if token == "tok_0123456789abcdef"),
        )
        .collect();
    assert_eq!(links.len(), 1);
    c.handle_socket_close(T0);
    c.handle_timeout(Millis(T0.0 + 60_000));
    drain(&mut c);
    let again = welcome(&mut c, T0);
    assert!(!sent(&again)
        .iter()
        .any(|m| matches!(m, VisitorMessage::CallLink { .. })));
}

fn calls(outputs: &[Output]) -> Vec<Option<String>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Call(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// Calls exist only inside an active session: a `call` frame before it is not handed to
/// the page's call file, the call file cannot send before it, and the session's end
/// stops every call at once.
#[test]
fn call_frames_pass_only_while_the_session_is_active() {
    let mut c = client();
    drain(&mut c);
    welcome(&mut c, T0);
    let request = frame(ServerToVisitor::Call {
        call: jv!({"kind": "request"}),
    });
    c.handle_frame(T0, &request);
    assert!(calls(&drain(&mut c)).is_empty(), "no session: nothing");
    assert_eq!(
        c.call_send(r#"{"kind":"accept"}"#).unwrap_err().code(),
        "wrong_session_state"
    );
    c.handle_frame(
        T0,
        &frame(ServerToVisitor::SessionStart {
            session_id: "s1".into(),
        }),
    );
    drain(&mut c);
    c.handle_frame(T0, &request);
    assert_eq!(
        calls(&drain(&mut c)),
        vec![Some(r#"{"kind":"request"}"#.to_string())]
    );
    c.call_send(r#"{"kind":"end","reason":"declined"}"#)
        .unwrap();
    assert_eq!(
        transmitted(&drain(&mut c)),
        vec![r#"{"type":"call","call":{"kind":"end","reason":"declined"}}"#.to_string()]
    );
    assert!(c.call_send("not json").is_err());
    c.handle_frame(
        T0,
        &frame(ServerToVisitor::SessionEnd {
            session_id: "s1".into(),
            disconnect_type: DisconnectType::Peer,
        }),
    );
    assert_eq!(calls(&drain(&mut c)), vec![None], "the end stops calls");
}
