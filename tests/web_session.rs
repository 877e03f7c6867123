//! Browser tests of the session client (`startCovisit` and the `Covisit` object, feature
//! `session-client`) in headless Chromium, against a real `covisit-server --dev`.
//!
//! `scripts/test` starts the server on a free loopback port and passes its URL at compile
//! time in `COVISIT_TEST_SERVER`; without it the tests that need a server say so and
//! pass. They drive the SDK through its public API only and watch it from outside, as a
//! page could: the frames handed to and received from its WebSocket, the listeners on
//! window/document, the `<covisit-ui>` element, and an agent on `/ws/agent`
//! (`tests/web_session.js` holds that plumbing).
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const SERVER: Option<&str> = option_env!("COVISIT_TEST_SERVER");
const VISITOR: &str = "/ws/visitor";

#[wasm_bindgen(module = "/tests/web_session.js")]
extern "C" {
    fn install();
    fn reset();
    #[wasm_bindgen(js_name = trackListeners)]
    fn track_listeners(on: bool);
    #[wasm_bindgen(js_name = liveListeners)]
    fn live_listeners() -> JsValue;
    #[wasm_bindgen(js_name = setBlocked)]
    fn set_blocked(on: bool);
    #[wasm_bindgen(js_name = sentFrames)]
    fn sent_frames(path: &str) -> JsValue;
    #[wasm_bindgen(js_name = receivedFrames)]
    fn received_frames(path: &str) -> JsValue;
    #[wasm_bindgen(js_name = socketsCreated)]
    fn sockets_created(path: &str) -> u32;
    #[wasm_bindgen(js_name = lastSocketState)]
    fn last_socket_state(path: &str) -> i32;
    #[wasm_bindgen(js_name = historyIsNative)]
    fn history_is_native() -> bool;
    #[wasm_bindgen(js_name = dispatchOn)]
    fn dispatch_on(target: &str, kind: &str);
    #[wasm_bindgen(js_name = pressControl)]
    fn press_control();
    #[wasm_bindgen(js_name = setHidden)]
    fn set_hidden(hidden: bool);
    #[wasm_bindgen(js_name = documentHasFocus)]
    fn document_has_focus() -> bool;
    #[wasm_bindgen(js_name = uiShown)]
    fn ui_shown() -> JsValue;
    fn sleep(ms: u32) -> js_sys::Promise;

    type AgentSocket;
    #[wasm_bindgen(js_name = connectAgent)]
    fn connect_agent(server: &str, name: &str) -> js_sys::Promise;
    #[wasm_bindgen(method, getter)]
    fn frames(this: &AgentSocket) -> JsValue;
    #[wasm_bindgen(method)]
    fn send(this: &AgentSocket, message: JsValue);
    #[wasm_bindgen(method)]
    fn close(this: &AgentSocket);
}

// ----- helpers -------------------------------------------------------------------------

fn to_json(v: &JsValue) -> Value {
    js_sys::JSON::stringify(v)
        .ok()
        .and_then(|s| serde_json::from_str(&String::from(s)).ok())
        .unwrap_or(Value::Null)
}

fn to_js(v: &Value) -> JsValue {
    js_sys::JSON::parse(&v.to_string()).expect("serde_json writes valid JSON")
}

fn list(v: JsValue) -> Vec<Value> {
    match to_json(&v) {
        Value::Array(items) => items,
        _ => Vec::new(),
    }
}

fn now() -> f64 {
    js_sys::Date::now()
}

async fn pause(ms: u32) {
    JsFuture::from(sleep(ms))
        .await
        .expect("setTimeout resolves");
}

/// Polls `f` every 20 ms until it holds; panics after `ms` naming `what`.
async fn wait_until(what: &str, ms: f64, mut f: impl FnMut() -> bool) {
    let end = now() + ms;
    while !f() {
        assert!(now() < end, "timed out after {ms} ms waiting for {what}");
        pause(20).await;
    }
}

fn server_or_skip(test: &str) -> Option<&'static str> {
    if SERVER.is_none() {
        console_log!(
            "{test}: skipped, COVISIT_TEST_SERVER is not set (scripts/test starts a covisit-server and sets it)"
        );
    }
    SERVER
}

fn config(server: &str, extra: Value) -> Value {
    let mut c = json!({ "apiKey": "pk_demo", "server": server });
    if let (Value::Object(c), Value::Object(extra)) = (&mut c, extra) {
        c.extend(extra);
    }
    c
}

thread_local! {
    /// Every SDK a test started, so that the next test can stop what a failed one left.
    static STARTED: RefCell<Vec<JsValue>> = const { RefCell::new(Vec::new()) };
}

/// Before each test: stop SDKs earlier tests left running, forget recordings, and give
/// this test a new visitor (empty storage).
async fn fresh() {
    install();
    for cv in STARTED.with(|s| std::mem::take(&mut *s.borrow_mut())) {
        if let Ok(stop) = js_sys::Reflect::get(&cv, &"stop".into()) {
            if let Ok(stop) = stop.dyn_into::<js_sys::Function>() {
                let _ = stop.call0(&cv);
            }
        }
    }
    reset();
}

type Events = Rc<RefCell<Vec<(String, Value)>>>;

/// The SDK object `startCovisit` resolved with, used through its JS methods, plus every
/// event it reported (all but `sessionRequest`/`controlRequest`: a handler for those
/// would replace the default prompt).
struct Sdk {
    cv: JsValue,
    events: Events,
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

impl Sdk {
    async fn start(config: Value) -> Result<Sdk, JsValue> {
        let cv = JsFuture::from(covisit::start_covisit(
            to_js(&config),
            None,
            None,
            None,
            None,
        ))
        .await?;
        STARTED.with(|s| s.borrow_mut().push(cv.clone()));
        let events: Events = Rc::default();
        let mut sdk = Sdk {
            cv,
            events: events.clone(),
            _handlers: Vec::new(),
        };
        for name in [
            "ready",
            "sessionStart",
            "sessionContinue",
            "sessionEnd",
            "controlStart",
            "controlEnd",
            "connectionChange",
            "error",
        ] {
            let events = events.clone();
            let handler = Closure::<dyn FnMut(JsValue)>::new(move |detail: JsValue| {
                events
                    .borrow_mut()
                    .push((name.to_string(), to_json(&detail)));
            });
            sdk.call("on", &[name.into(), handler.as_ref().clone()])?;
            sdk._handlers.push(handler);
        }
        Ok(sdk)
    }

    fn call(&self, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
        let f: js_sys::Function = js_sys::Reflect::get(&self.cv, &method.into())?.dyn_into()?;
        f.apply(&self.cv, &args.iter().collect::<js_sys::Array>())
    }

    fn state(&self) -> Value {
        to_json(&self.call("state", &[]).expect("state() does not throw"))
    }

    fn events_named(&self, name: &str) -> Vec<Value> {
        self.events
            .borrow()
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .collect()
    }

    async fn stop(&self) {
        let p: js_sys::Promise = self
            .call("stop", &[])
            .expect("stop() does not throw")
            .dyn_into()
            .expect("stop() returns a Promise");
        JsFuture::from(p).await.expect("stop() resolves");
    }

    /// Started and the server's `state` frame arrived (`state().connection` is set).
    async fn connected(&self) {
        wait_until("the server's first state frame", 5000.0, || {
            self.state()["connection"].is_object()
        })
        .await;
    }
}

fn error_code(e: &JsValue) -> Option<String> {
    assert!(
        e.is_instance_of::<js_sys::Error>(),
        "errors are Error objects: {e:?}"
    );
    js_sys::Reflect::get(e, &"code".into()).ok()?.as_string()
}

struct Agent(AgentSocket);

impl Agent {
    async fn connect(server: &str, name: &str) -> Agent {
        let socket: AgentSocket = JsFuture::from(connect_agent(server, name))
            .await
            .expect("the agent socket opens")
            .unchecked_into();
        let agent = Agent(socket);
        agent
            .frame("the agent's welcome", |f| f["type"] == "welcome")
            .await;
        agent
    }

    fn frames(&self) -> Vec<Value> {
        list(self.0.frames())
    }

    /// The first frame (received so far or within 5 s) for which `f` holds.
    async fn frame(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let mut found = None;
        wait_until(what, 5000.0, || {
            found = self.frames().into_iter().find(|x| f(x));
            found.is_some()
        })
        .await;
        found.expect("wait_until returned, so the frame is there")
    }

    fn request_session(&self, short_id: &str) {
        self.0.send(to_js(&json!({
            "type": "request_session", "short_id": short_id, "found_by": "search"
        })));
    }

    fn end_session(&self, session_id: &str) {
        self.0.send(to_js(
            &json!({ "type": "end_session", "session_id": session_id }),
        ));
    }
}

fn last_sent(path: &str) -> Value {
    list(sent_frames(path)).pop().unwrap_or(Value::Null)
}

fn count_sent(kind: &str) -> usize {
    list(sent_frames(VISITOR))
        .iter()
        .filter(|f| f["type"] == kind)
        .count()
}

/// The newest `state` frame the server sent the visitor, if `f` holds for it.
fn server_state_where(f: impl Fn(&Value) -> bool) -> bool {
    list(received_frames(VISITOR))
        .iter()
        .rev()
        .find(|fr| fr["type"] == "state")
        .is_some_and(|fr| f(&fr["state"]))
}

// ----- tests ---------------------------------------------------------------------------

/// A page passing a bad config gets a rejected promise with an `Error` whose `code`
/// names the problem; nothing connects and no UI appears.
#[wasm_bindgen_test]
async fn start_rejects_bad_configs_with_a_code() {
    fresh().await;
    let server = "http://127.0.0.1:9";
    for (config, code) in [
        (json!({ "server": server }), "config_missing_key"),
        (json!({ "apiKey": "pk_demo" }), "config_missing_key"),
        (
            json!({ "apiKey": "pk_demo", "server": server, "allowRemoteTypo": true }),
            "config_unknown_key",
        ),
        (
            json!({ "apiKey": "pk_demo", "server": server, "allowRemoteType": "yes" }),
            "config_wrong_type",
        ),
        (
            json!({ "apiKey": 42, "server": server }),
            "config_wrong_type",
        ),
        (
            json!({ "apiKey": "pk_demo", "server": server, "authorizationTimeoutSeconds": "60" }),
            "config_wrong_type",
        ),
    ] {
        let err = match Sdk::start(config.clone()).await {
            Ok(_) => panic!("{config} was accepted"),
            Err(e) => e,
        };
        assert_eq!(error_code(&err).as_deref(), Some(code), "{config}");
    }
    assert_eq!(
        sockets_created(VISITOR),
        0,
        "a rejected config connects nothing"
    );
    assert!(ui_shown().is_null(), "a rejected config adds no UI");
}

/// Focus, blur and visibility changes of the tab reach the connection state the page
/// sees and the server (a `focus` frame each, confirmed in the server's `state`).
#[wasm_bindgen_test]
async fn focus_blur_and_visibility_change_the_connection_state() {
    let Some(server) = server_or_skip("focus_blur_and_visibility") else {
        return;
    };
    fresh().await;
    let sdk = Sdk::start(config(server, json!({}))).await.expect("starts");
    sdk.connected().await;
    let has_focus = |sdk: &Sdk| sdk.state()["connection"]["hasFocus"].clone();
    assert_eq!(has_focus(&sdk), json!(document_has_focus()));
    let hello = list(sent_frames(VISITOR)).remove(0);
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["connection"]["hasFocus"], json!(document_has_focus()));

    dispatch_on("window", "blur");
    assert_eq!(has_focus(&sdk), json!(false));
    assert_eq!(
        last_sent(VISITOR),
        json!({ "type": "focus", "hasFocus": false })
    );
    assert!(sdk.state()["connection"]["lastFocusAt"].is_string());
    wait_until("the server's state with hasFocus false", 5000.0, || {
        server_state_where(|s| s["connection"]["hasFocus"] == false)
    })
    .await;
    // Blur again: nothing changed, nothing sent.
    let focus_frames = count_sent("focus");
    dispatch_on("window", "blur");
    assert_eq!(count_sent("focus"), focus_frames);

    if document_has_focus() {
        dispatch_on("window", "focus");
        assert_eq!(has_focus(&sdk), json!(true));
        assert_eq!(
            last_sent(VISITOR),
            json!({ "type": "focus", "hasFocus": true })
        );
        wait_until("the server's state with hasFocus true", 5000.0, || {
            server_state_where(|s| s["connection"]["hasFocus"] == true)
        })
        .await;

        set_hidden(true);
        dispatch_on("document", "visibilitychange");
        assert_eq!(has_focus(&sdk), json!(false), "a hidden tab has no focus");
        assert_eq!(
            last_sent(VISITOR),
            json!({ "type": "focus", "hasFocus": false })
        );

        set_hidden(false);
        dispatch_on("document", "visibilitychange");
        assert_eq!(has_focus(&sdk), json!(true), "visible again");
        assert_eq!(
            last_sent(VISITOR),
            json!({ "type": "focus", "hasFocus": true })
        );
        wait_until("the server's state with hasFocus true", 5000.0, || {
            server_state_where(|s| s["connection"]["hasFocus"] == true)
        })
        .await;
    } else {
        console_log!("focus_blur_and_visibility: this browser window has no focus; the gain-focus half is skipped");
    }
    sdk.stop().await;
}

/// Leaving the page (`pagehide`) announces an expected disconnect with the default
/// return time, once; `expectDisconnect` sets the return time and is not repeated.
#[wasm_bindgen_test]
async fn pagehide_announces_the_expected_disconnect() {
    let Some(server) = server_or_skip("pagehide") else {
        return;
    };
    fresh().await;
    let sdk = Sdk::start(config(server, json!({}))).await.expect("starts");
    sdk.connected().await;
    assert!(sdk.state()["connection"]["expectedDisconnect"].is_null());

    dispatch_on("window", "pagehide");
    assert_eq!(
        last_sent(VISITOR),
        json!({ "type": "expect_disconnect", "returnTimeSeconds": null, "message": null, "title": null })
    );
    wait_until("the server's state with expectedDisconnect", 5000.0, || {
        server_state_where(|s| s["connection"]["expectedDisconnect"].is_object())
    })
    .await;
    wait_until("state().connection.expectedDisconnect", 5000.0, || {
        sdk.state()["connection"]["expectedDisconnect"].is_object()
    })
    .await;
    dispatch_on("window", "pagehide");
    assert_eq!(count_sent("expect_disconnect"), 1, "announced once");

    // Back from the back/forward cache, then away again: announced again.
    dispatch_on("window", "pageshow");
    dispatch_on("window", "pagehide");
    assert_eq!(count_sent("expect_disconnect"), 2);

    dispatch_on("window", "pageshow");
    sdk.call(
        "expectDisconnect",
        &[to_js(
            &json!({ "returnTimeSeconds": 5, "title": "Payment" }),
        )],
    )
    .expect("expectDisconnect accepts a return time");
    assert_eq!(
        last_sent(VISITOR),
        json!({ "type": "expect_disconnect", "returnTimeSeconds": 5, "message": null, "title": "Payment" })
    );
    dispatch_on("window", "pagehide");
    assert_eq!(count_sent("expect_disconnect"), 3, "already announced");
    wait_until(
        "the server's state with returnTimeSeconds 5",
        5000.0,
        || server_state_where(|s| s["connection"]["expectedDisconnect"]["returnTimeSeconds"] == 5),
    )
    .await;

    let err = sdk
        .call(
            "expectDisconnect",
            &[to_js(&json!({ "returnTimeSeconds": 99999 }))],
        )
        .expect_err("a return time over an hour is refused");
    assert_eq!(error_code(&err).as_deref(), Some("invalid_argument"));
    sdk.stop().await;
}

/// With no answer the SDK's own timer ends the request after
/// `authorizationTimeoutSeconds` and takes the prompt away, even when the server's
/// frames no longer arrive; the server ends it with `timeout` too.
#[wasm_bindgen_test]
async fn the_authorization_timeout_fires_from_the_sdk_timer() {
    let Some(server) = server_or_skip("authorization_timeout") else {
        return;
    };
    fresh().await;
    let sdk = Sdk::start(config(server, json!({ "authorizationTimeoutSeconds": 2 })))
        .await
        .expect("starts");
    sdk.connected().await;
    let short_id = sdk.state()["visitor"]["short_id"]
        .as_str()
        .expect("a short_id after ready")
        .to_string();
    let agent = Agent::connect(server, "Tess").await;
    agent.request_session(&short_id);
    let shows = |which: &str| list(ui_shown()).iter().any(|w| w == which);
    wait_until("the default session prompt", 5000.0, || {
        shows("session-prompt")
    })
    .await;
    let asked_at = now();
    assert_eq!(sdk.state()["session"]["status"], "authorizing");

    // From here on the SDK hears nothing from the server.
    set_blocked(true);
    wait_until("sessionEnd", 6000.0, || {
        !sdk.events_named("sessionEnd").is_empty()
    })
    .await;
    let waited = now() - asked_at;
    set_blocked(false);
    assert!(
        (1000.0..4500.0).contains(&waited),
        "ended after {waited} ms, expected about 2000"
    );
    assert_eq!(
        sdk.events_named("sessionEnd")[0]["disconnectType"],
        "timeout"
    );
    assert!(!shows("session-prompt"), "the prompt is gone");
    assert_eq!(sdk.state()["session"]["status"], "ended");
    assert_eq!(count_sent("authorize") + count_sent("deny"), 0);

    // The server's own timer agrees.
    let update = agent
        .frame("the agent's session_update ended", |f| {
            f["type"] == "session_update" && f["status"] == "ended"
        })
        .await;
    let visitor_comm = update["communications"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["cobrowseRole"] == "sharer"))
        .cloned()
        .expect("the visitor's communication");
    assert_eq!(visitor_comm["disconnectType"], "timeout");
    agent.0.close();
    sdk.stop().await;
}

/// `stop()` takes away everything `start()` added: the UI element, every window and
/// document listener, the history patch, the socket; afterwards page events send
/// nothing and no socket reconnects, and the server sees the visitor go offline.
#[wasm_bindgen_test]
async fn start_then_stop_leaves_nothing_behind() {
    let Some(server) = server_or_skip("start_then_stop") else {
        return;
    };
    fresh().await;
    track_listeners(true);
    let sdk = Sdk::start(config(server, json!({}))).await.expect("starts");
    sdk.connected().await;
    let short_id = sdk.state()["visitor"]["short_id"]
        .as_str()
        .expect("a short_id after ready")
        .to_string();
    assert!(
        !history_is_native(),
        "SPA navigation is watched while running"
    );
    let agent = Agent::connect(server, "Uma").await;
    agent.request_session(&short_id);
    wait_until("the default session prompt", 5000.0, || {
        list(ui_shown()).iter().any(|w| w == "session-prompt")
    })
    .await;
    let listening = list(live_listeners());
    for l in [
        "window:focus",
        "window:blur",
        "window:pagehide",
        "document:visibilitychange",
        "window:keydown",
    ] {
        assert!(
            listening.contains(&json!(l)),
            "{l} while running: {listening:?}"
        );
    }

    sdk.stop().await;
    track_listeners(false);
    assert!(ui_shown().is_null(), "no covisit-ui element after stop()");
    assert_eq!(
        list(live_listeners()),
        Vec::<Value>::new(),
        "listeners left"
    );
    assert!(
        history_is_native(),
        "history.pushState/replaceState restored"
    );
    assert!(
        last_socket_state(VISITOR) >= 2,
        "the socket is closing or closed"
    );
    let err = sdk.call("authorize", &[]).expect_err("stopped");
    assert_eq!(error_code(&err).as_deref(), Some("stopped"));

    let (sent, sockets) = (list(sent_frames(VISITOR)).len(), sockets_created(VISITOR));
    for (target, kind) in [
        ("window", "focus"),
        ("window", "blur"),
        ("window", "pagehide"),
        ("window", "pageshow"),
        ("window", "popstate"),
        ("window", "hashchange"),
        ("document", "visibilitychange"),
    ] {
        dispatch_on(target, kind);
    }
    for _ in 0..5 {
        press_control(); // five Ctrl presses open the lookup code while running
    }
    // Longer than the first reconnect delay (at most 500 ms).
    pause(1200).await;
    assert_eq!(
        list(sent_frames(VISITOR)).len(),
        sent,
        "nothing sent after stop()"
    );
    assert_eq!(
        sockets_created(VISITOR),
        sockets,
        "no reconnect after stop()"
    );
    assert!(ui_shown().is_null(), "no UI after stop()");
    agent
        .frame("the agent's visitor_update offline", |f| {
            f["type"] == "visitor_update"
                && f["visitor"]["short_id"] == short_id.as_str()
                && f["visitor"]["is_online"] == false
        })
        .await;
    if let Some(session) = agent
        .frames()
        .iter()
        .rev()
        .find(|f| f["type"] == "session_update")
    {
        if let Some(id) = session["session"]["id"].as_str() {
            agent.end_session(id);
        }
    }
    agent.0.close();
}
