//! The browser session client: `start()` and the `Covisit` object around
//! [`VisitorClient`], owning the clock, the one timer, the WebSocket, the DOM listeners
//! and the default UI. Compiled with the `session-client` feature.
//!
//! Re-entrancy: page callbacks may call back into the SDK (a `sessionRequest` handler
//! calling `authorize()`), so outputs are taken out of the `RefCell` before any JS runs.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, Event, EventTarget, MessageEvent, WebSocket};

use super::glue;
use super::mirror::Capture;
use super::{from_js, json_from_js, now, to_js, CovisitError};
use crate::core::client::{
    ClientEvent, ClientState, DrawCommand, MirrorCommand, Output, PageInfo, StoredIds,
    VisitorClient, EVENT_NAMES,
};
use crate::core::machine::SessionStatus;
use crate::core::protocol::{RemoteAction, RemoteRefusal, MAX_FRAME_BYTES};
use crate::core::Millis;

const SHORT_ID_KEY: &str = "covisit.short_id";
const SECRET_KEY: &str = "covisit.visitor_secret";
const CONNECTION_ID_KEY: &str = "covisit.connection_id";

/// Connects to the covisit server and identifies the visitor. Resolves with the SDK
/// object once the server has welcomed this tab; rejects with an `Error` (with `code`)
/// when the config is invalid or the server refuses the key. While the server cannot
/// be reached the promise waits and the SDK keeps retrying.
///
/// ```js
/// import { start } from 'covisit';
/// const cv = await start({ apiKey: 'pk_demo', server: 'http://127.0.0.1:8080' });
/// cv.on('sessionRequest', ({ agent }) => confirm(`Let ${agent.name} see this page?`) ? cv.authorize() : cv.deny());
/// ```
#[wasm_bindgen(js_name = startCovisit, unchecked_return_type = "Promise<Covisit>")]
pub fn start_covisit(
    #[wasm_bindgen(unchecked_param_type = "CovisitConfig")] config: JsValue,
    // Where the on-demand co-browsing capture is (index.js passes the file next to the
    // wasm); without it the SDK works but never shares the page.
    #[wasm_bindgen(js_name = captureUrl)] capture_url: Option<String>,
    // Where the on-demand drawing layer is (agents' laser and ink; index.js passes the
    // file next to the wasm); without it no ink is ever shown.
    #[wasm_bindgen(js_name = drawUrl)] draw_url: Option<String>,
    // Where the on-demand remote console hooks are (`allowRemoteConsole`); without it
    // the page's console is never shared.
    #[wasm_bindgen(js_name = consoleUrl)] console_url: Option<String>,
    // Where the on-demand call file is (calls and tab sharing; index.js passes the file
    // next to the wasm); without it calls are declined.
    #[wasm_bindgen(js_name = callUrl)] call_url: Option<String>,
) -> js_sys::Promise {
    let config = match from_js(&config) {
        Ok(c) => c,
        Err(e) => return js_sys::Promise::reject(&e.into()),
    };
    let window = web_sys::window();
    let storage = |session: bool| {
        window
            .as_ref()
            .and_then(|w| {
                if session {
                    w.session_storage().ok()
                } else {
                    w.local_storage().ok()
                }
            })
            .flatten()
    };
    let local = storage(false);
    let stored = StoredIds {
        short_id: local
            .as_ref()
            .and_then(|s| s.get_item(SHORT_ID_KEY).ok().flatten()),
        visitor_secret: local
            .as_ref()
            .and_then(|s| s.get_item(SECRET_KEY).ok().flatten()),
        connection_id: storage(true).and_then(|s| s.get_item(CONNECTION_ID_KEY).ok().flatten()),
    };
    let mut page = page_info();
    page.call_token = glue::take_call_token();
    let seed = (js_sys::Math::random() * 9.0e15) as u64;
    let client = match VisitorClient::new(&config, page, stored, seed) {
        Ok(c) => c,
        Err(e) => return js_sys::Promise::reject(&CovisitError::from(e).into()),
    };
    let driver = Driver::new(client, capture_url, draw_url, console_url, call_url);
    let covisit = Covisit {
        driver: driver.clone(),
    };
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        driver.borrow_mut().waiters.push((resolve, reject));
    });
    // Open the socket first: its handshake runs while the listeners and the UI go in.
    Driver::drive(&driver);
    Driver::install(&driver);
    #[cfg(feature = "journey-tracking")]
    {
        let client = &mut driver.borrow_mut().client;
        if client.config().track_page_views {
            // A page view that cannot be queued is dropped, never thrown at the page.
            let _ = track_page_view(client, now(), true);
        }
    }
    Driver::drive(&driver);
    driver.borrow_mut().instance = Some(covisit);
    promise
}

fn page_info() -> PageInfo {
    let Some(window) = web_sys::window() else {
        return PageInfo::default();
    };
    let document = window.document();
    let screen = window.screen().ok();
    PageInfo {
        url: window.location().href().ok(),
        screen_width: screen
            .as_ref()
            .and_then(|s| s.width().ok())
            .unwrap_or(0)
            .max(0) as u32,
        screen_height: screen
            .as_ref()
            .and_then(|s| s.height().ok())
            .unwrap_or(0)
            .max(0) as u32,
        has_focus: document
            .as_ref()
            .is_some_and(|d| d.has_focus().unwrap_or(false) && !d.hidden()),
        user_agent: window.navigator().user_agent().ok(),
        call_token: None,
        audio_supported: glue::Ui::audio_supported(),
        integration: glue::integration(),
        missing: glue::missing()
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

/// Calls the page's event handlers with `detail`; one that throws is reported on the
/// console and the others still run.
fn call_handlers(handlers: Vec<js_sys::Function>, detail: &JsValue) {
    for handler in handlers {
        if let Err(e) = handler.call1(&JsValue::NULL, detail) {
            web_sys::console::error_2(&JsValue::from_str("[covisit] an event handler threw:"), &e);
        }
    }
}

type Listener = (EventTarget, &'static str, Closure<dyn FnMut(Event)>);
/// Takes a batch of mirror records; false stops the capture.
type BatchCallback = Closure<dyn FnMut(String) -> bool>;

/// Everything the SDK added to the page, so `stop()` can take all of it away.
struct Driver {
    client: VisitorClient,
    socket: Option<WebSocket>,
    socket_callbacks: Vec<Closure<dyn FnMut(JsValue)>>,
    timer: Option<(Millis, Timeout)>,
    listeners: Vec<Listener>,
    unpatch_history: Option<js_sys::Function>,
    handlers: Vec<(String, js_sys::Function)>,
    ui: Option<glue::Ui>,
    ui_callback: Option<Closure<dyn FnMut(String, JsValue) -> bool>>,
    /// Co-browsing capture (`mirror.js`) and the callback it hands batches to.
    mirror: Option<(Capture, BatchCallback)>,
    capture_url: Option<String>,
    /// Where the drawing layer (covisit-draw.js) is.
    draw_url: Option<String>,
    /// Where the call file (covisit-call.js) is, until the UI (which fetches it) is made.
    call_url: Option<String>,
    /// Where the remote console hooks (covisit-console.js) are, and the callback they
    /// hand batches to while installed.
    console_url: Option<String>,
    console_callback: Option<BatchCallback>,
    waiters: Vec<(js_sys::Function, js_sys::Function)>,
    /// The `ready` detail once it happened, for handlers added later (see `on`).
    ready_detail: Option<JsValue>,
    instance: Option<Covisit>,
    this: Weak<RefCell<Driver>>,
}

impl Driver {
    fn new(
        client: VisitorClient,
        capture_url: Option<String>,
        draw_url: Option<String>,
        console_url: Option<String>,
        call_url: Option<String>,
    ) -> Rc<RefCell<Driver>> {
        Rc::new_cyclic(|this| {
            RefCell::new(Driver {
                client,
                socket: None,
                socket_callbacks: Vec::new(),
                timer: None,
                listeners: Vec::new(),
                unpatch_history: None,
                handlers: Vec::new(),
                ui: None,
                ui_callback: None,
                mirror: None,
                capture_url,
                draw_url,
                call_url,
                console_url,
                console_callback: None,
                waiters: Vec::new(),
                ready_detail: None,
                instance: None,
                this: this.clone(),
            })
        })
    }

    /// Adds the page listeners: focus, visibility, navigation, unload, history.
    fn install(driver: &Rc<RefCell<Driver>>) {
        let Some(window) = web_sys::window() else {
            return;
        };
        let weak = Rc::downgrade(driver);
        let add = |target: EventTarget, name: &'static str, f: fn(&mut VisitorClient, Millis)| {
            let weak = weak.clone();
            let closure = Closure::<dyn FnMut(Event)>::new(move |_e: Event| {
                if let Some(d) = weak.upgrade() {
                    f(&mut d.borrow_mut().client, now());
                    Driver::drive(&d);
                }
            });
            let _ = target.add_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
            driver.borrow_mut().listeners.push((target, name, closure));
        };
        let win: EventTarget = window.clone().into();
        add(win.clone(), "focus", |c, t| {
            c.handle_focus(t, page_info().has_focus)
        });
        add(win.clone(), "blur", |c, t| c.handle_focus(t, false));
        add(win.clone(), "pagehide", |c, t| {
            // What tracking still holds leaves by beacon, which outlives the page; if
            // the browser refuses one, the rest goes over the socket while it lasts.
            #[cfg(feature = "journey-tracking")]
            {
                let url = c.beacon_url();
                while let Some(body) = c.take_beacon(t) {
                    if !glue::send_beacon(&url, &body) {
                        c.flush_tracking(t);
                        break;
                    }
                }
            }
            c.handle_page_hide(t)
        });
        add(win.clone(), "pageshow", |c, t| c.handle_page_show(t));
        add(win.clone(), "popstate", url_changed);
        add(win.clone(), "hashchange", url_changed);
        if let Some(document) = window.document() {
            add(document.into(), "visibilitychange", |c, t| {
                c.handle_focus(t, page_info().has_focus)
            });
        }
        let on_history = Closure::<dyn FnMut(Event)>::new({
            let weak = weak.clone();
            move |_e: Event| {
                if let Some(d) = weak.upgrade() {
                    url_changed(&mut d.borrow_mut().client, now());
                    Driver::drive(&d);
                }
            }
        });
        let unpatch = glue::patch_history(on_history.as_ref().unchecked_ref());
        let mut d = driver.borrow_mut();
        d.unpatch_history = Some(unpatch);
        // Kept with the listeners so that stop() drops it after unpatching.
        d.listeners.push((win, "covisit-history", on_history));
        drop(d);
        Driver::install_ui(driver);
        Driver::install_mirror(driver);
    }

    /// The co-browsing capture; idle until the client says `Start`.
    fn install_mirror(driver: &Rc<RefCell<Driver>>) {
        let weak = Rc::downgrade(driver);
        let on_batch = BatchCallback::new(move |batch: String| {
            let Some(d) = weak.upgrade() else {
                return false;
            };
            let go_on = d.borrow_mut().client.mirror(&batch);
            Driver::drive(&d);
            go_on
        });
        let masked = serde_json::to_string(&driver.borrow().client.config().masked_elements)
            .unwrap_or_default();
        let url = driver.borrow().capture_url.clone();
        let mirror = Capture::new(on_batch.as_ref().unchecked_ref(), &masked, url);
        driver.borrow_mut().mirror = Some((mirror, on_batch));
    }

    /// Does what the client says to the capture. No borrow is held while JS runs.
    fn mirror_command(driver: &Rc<RefCell<Driver>>, command: MirrorCommand) {
        let Some(mirror) = driver.borrow().mirror.as_ref().map(|(m, _)| m.clone()) else {
            return;
        };
        match command {
            MirrorCommand::Start => mirror.start(),
            MirrorCommand::Stop => mirror.stop(),
            MirrorCommand::Control { granted } => mirror.control(granted),
            MirrorCommand::Asset { id, url } => mirror.asset(id, &url),
            MirrorCommand::Apply { id, action } => {
                let refusal = mirror.apply(&serde_json::to_string(&action).unwrap_or_default());
                if !matches!(action, RemoteAction::Pointer { .. }) {
                    let ok = refusal.is_empty();
                    let reason = (!ok).then(|| RemoteRefusal::from_page(&refusal));
                    driver.borrow_mut().client.remote_applied(id, ok, reason);
                }
            }
        }
    }

    /// Does what the client says to the drawing layer (it decided; this only draws).
    fn draw_command(driver: &Rc<RefCell<Driver>>, command: DrawCommand) {
        let (ui, capture, url) = {
            let d = driver.borrow();
            (
                d.ui.clone(),
                d.mirror.as_ref().map(|(m, _)| JsValue::from(m.clone())),
                d.draw_url.clone(),
            )
        };
        let Some(ui) = ui else { return };
        match command {
            DrawCommand::Start => ui.draw_start(url, &capture.unwrap_or(JsValue::NULL)),
            DrawCommand::Ink {
                agent_id,
                name,
                color,
                ink,
            } => ui.draw(&agent_id, &name, color, &ink.to_text()),
            DrawCommand::Stop => ui.draw_stop(),
        }
    }

    /// Installs or removes the remote console hooks (the client decided; see
    /// `core::client::console`). Their batches go back through the client's gate.
    fn console_command(driver: &Rc<RefCell<Driver>>, on: bool) {
        let Some(ui) = driver.borrow().ui.clone() else {
            return;
        };
        if !on {
            ui.console_stop();
            driver.borrow_mut().console_callback = None;
            return;
        }
        if driver.borrow().console_callback.is_some() {
            return; // installed (a resumed session or a resync)
        }
        let weak = Rc::downgrade(driver);
        let callback = BatchCallback::new(move |batch: String| {
            let Some(d) = weak.upgrade() else {
                return false;
            };
            let go_on = d.borrow_mut().client.console(&batch);
            Driver::drive(&d);
            go_on
        });
        let url = driver.borrow().console_url.clone();
        ui.console_start(url, callback.as_ref().unchecked_ref());
        driver.borrow_mut().console_callback = Some(callback);
    }

    fn install_ui(driver: &Rc<RefCell<Driver>>) {
        let weak = Rc::downgrade(driver);
        let callback = Closure::<dyn FnMut(String, JsValue) -> bool>::new(
            move |action: String, arg: JsValue| {
                let Some(d) = weak.upgrade() else {
                    return false;
                };
                // The call file fires the page's call events (`on:callStart`…): is
                // anyone listening?
                if let Some(event) = action.strip_prefix("on:") {
                    let handlers = d.borrow().handlers_of(event);
                    let any = !handlers.is_empty();
                    call_handlers(handlers, &arg);
                    return any;
                }
                let result = {
                    let client = &mut d.borrow_mut().client;
                    match action.as_str() {
                        "allow" => client.authorize(),
                        "deny" => client.deny(),
                        "end" => client.end(),
                        "grantControl" => client.grant_control(),
                        "denyControl" => client.deny_control(),
                        "revokeControl" => client.revoke_control(),
                        "callSend" => client.call_send(&arg.as_string().unwrap_or_default()),
                        "rate" => from_js(&arg)
                            .map_err(|_| crate::core::client::ClientError::InvalidArgument {
                                field: "rating",
                                reason: "must be an object",
                            })
                            .and_then(|v| client.rate(&v)),
                        // "lookupCode" is answered below, once the borrow is released.
                        _ => Ok(()),
                    }
                };
                if action == "lookupCode" {
                    let code = d.borrow().client.lookup_code().map(str::to_string);
                    if let (Some(ui), Some(code)) = (d.borrow().ui.as_ref(), code) {
                        ui.show_lookup_code(&code);
                    }
                }
                let ok = result.is_ok();
                if let Err(e) = result {
                    web_sys::console::warn_2(
                        &JsValue::from_str("[covisit]"),
                        &CovisitError::from(e).into(),
                    );
                }
                Driver::drive(&d);
                ok
            },
        );
        let mut d = driver.borrow_mut();
        let ui = glue::Ui::new(callback.as_ref().unchecked_ref(), d.call_url.take());
        d.ui = Some(ui);
        d.ui_callback = Some(callback);
    }

    /// Drains the client's outputs and does what they say, then re-arms the timer.
    /// JS (page handlers, UI) runs only while no borrow is held.
    fn drive(driver: &Rc<RefCell<Driver>>) {
        for _ in 0..1000 {
            let Some(output) = driver.borrow_mut().client.poll_output() else {
                break;
            };
            match output {
                Output::Connect { url } => Driver::connect(driver, &url),
                Output::Transmit(text) => {
                    if let Some(socket) = driver.borrow().socket.as_ref() {
                        let _ = socket.send_with_str(&text);
                    }
                }
                Output::Close => driver.borrow_mut().close_socket(),
                Output::Persist {
                    short_id,
                    visitor_secret,
                    unique_connection_id,
                } => persist(&short_id, visitor_secret.as_deref(), &unique_connection_id),
                Output::Event(event) => Driver::dispatch(driver, event),
                Output::Mirror(command) => Driver::mirror_command(driver, command),
                Output::Draw(command) => Driver::draw_command(driver, command),
                Output::Call(frame) => {
                    let ui = driver.borrow().ui.clone();
                    if let Some(ui) = ui {
                        match frame {
                            Some(text) => ui.call_frame(&text),
                            None => ui.call_stop(),
                        }
                    }
                }
                Output::Console(on) => Driver::console_command(driver, on),
            }
        }
        driver.borrow_mut().arm_timer();
    }

    fn arm_timer(&mut self) {
        let next = self.client.poll_timeout();
        if self.timer.as_ref().map(|(d, _)| *d) == next {
            return; // unchanged: keep the running timer
        }
        self.timer = next.map(|deadline| {
            let weak = self.this.clone();
            let delay = deadline.0.saturating_sub(now().0).min(u32::MAX as u64) as u32;
            let timeout = Timeout::new(delay, move || {
                if let Some(d) = weak.upgrade() {
                    d.borrow_mut().timer = None;
                    d.borrow_mut().client.handle_timeout(now());
                    Driver::drive(&d);
                }
            });
            (deadline, timeout)
        });
    }

    fn connect(driver: &Rc<RefCell<Driver>>, url: &str) {
        driver.borrow_mut().close_socket();
        let socket = match WebSocket::new(url) {
            Ok(s) => s,
            Err(_) => {
                driver.borrow_mut().client.handle_socket_close(now());
                return;
            }
        };
        let weak = Rc::downgrade(driver);
        let on = |f: fn(&Rc<RefCell<Driver>>, JsValue)| {
            let weak = weak.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
                if let Some(d) = weak.upgrade() {
                    f(&d, e);
                    Driver::drive(&d);
                }
            })
        };
        let open = on(|d, _| d.borrow_mut().client.handle_socket_open(now()));
        let message = on(|d, e| {
            if let Some(m) = e.dyn_ref::<MessageEvent>() {
                let parsed = glue::parse_frame(&m.data(), MAX_FRAME_BYTES);
                let frame = json_from_js(&parsed, 0);
                d.borrow_mut().client.handle_frame_json(now(), frame);
            }
        });
        let close = on(|d, e| {
            let _ = e.dyn_ref::<CloseEvent>();
            d.borrow_mut().socket = None;
            d.borrow_mut().client.handle_socket_close(now());
        });
        socket.set_onopen(Some(open.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(close.as_ref().unchecked_ref()));
        let mut d = driver.borrow_mut();
        d.socket = Some(socket);
        d.socket_callbacks = vec![open, message, close];
    }

    fn close_socket(&mut self) {
        if let Some(socket) = self.socket.take() {
            socket.set_onopen(None);
            socket.set_onmessage(None);
            socket.set_onclose(None);
            let _ = socket.close();
        }
        self.socket_callbacks.clear();
    }

    /// The page's handlers of the event `name`, cloned: none of them may run while the
    /// driver is borrowed (they call back into the SDK).
    fn handlers_of(&self, name: &str) -> Vec<js_sys::Function> {
        self.handlers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// Calls the page's handlers for `event`; without one, the default UI answers
    /// prompts. Also keeps the default indicator in step with the session.
    fn dispatch(driver: &Rc<RefCell<Driver>>, event: ClientEvent) {
        let name = event.name();
        // Only what this event needs is read: dispatch runs for every event, and the
        // whole state is serialized for `stateChange` alone.
        let (handlers, ui, state, status, granted, agent_name, prompt, rate, console) = {
            let d = driver.borrow();
            let config = d.client.config();
            let handlers = d.handlers_of(name);
            let agent_name = d
                .client
                .session_agent()
                .map(|a| a.name.clone())
                .unwrap_or_default();
            let prompt = matches!(event, ClientEvent::SessionRequest { .. }).then(|| {
                (
                    config.authorization_prompt_title.clone(),
                    config.authorization_prompt_message.clone(),
                )
            });
            let rate = matches!(event, ClientEvent::SessionEnd { .. })
                && config.permissions.enable_session_rating
                && d.client.state().session.went_live;
            (
                handlers,
                d.ui.clone(),
                matches!(event, ClientEvent::StateChange).then(|| d.client.state()),
                d.client.status(),
                d.client.control_granted(),
                agent_name,
                prompt,
                rate,
                config.permissions.allow_remote_console,
            )
        };
        if matches!(event, ClientEvent::SessionRequest { .. }) {
            // The capture is needed once the visitor allows: fetch it while they read.
            let capture = driver.borrow().mirror.as_ref().map(|(m, _)| m.clone());
            if let Some(capture) = capture {
                capture.preload();
            }
        }
        if let Some(ui) = ui.as_ref() {
            match &event {
                ClientEvent::SessionRequest {
                    agent, recorded, ..
                } if handlers.is_empty() => {
                    let (title, message) = prompt.unwrap_or_default();
                    let title = title.unwrap_or_else(|| "Allow screen sharing?".into());
                    // glue.js puts the agent's name in for `{agentName}`.
                    let mut message = message.unwrap_or_else(|| "{agentName} from our support team would like to see this page to help you. They will not see other tabs or apps, and hidden fields stay hidden.".into());
                    if *recorded {
                        message.push_str(" This session is recorded.");
                    }
                    ui.show_session_prompt(&title, &message, &agent.name, console);
                }
                ClientEvent::ControlRequest { agent } if handlers.is_empty() => {
                    ui.show_control_prompt(&agent.name);
                }
                ClientEvent::PromptWithdrawn { .. } => ui.hide_asked(),
                ClientEvent::SessionEnd { .. } => ui.hide_asked(),
                _ => {}
            }
            match status {
                SessionStatus::Active => ui.show_indicator(&agent_name, granted),
                SessionStatus::Authorizing => ui.hide_indicator(),
                _ => {
                    ui.hide_indicator();
                    ui.hide_consent();
                }
            }
            if matches!(
                event,
                ClientEvent::SessionStart { .. } | ClientEvent::SessionContinue { .. }
            ) {
                ui.hide_asked();
            }
            if matches!(
                event,
                ClientEvent::ControlStart { .. } | ClientEvent::ControlEnd { .. }
            ) {
                ui.hide_asked();
            }
            // After the status above, which clears prompts once a session is over.
            if rate {
                ui.show_rating(&agent_name);
            }
        }
        if let ClientEvent::Ready { .. } = event {
            let (waiters, instance) = {
                let mut d = driver.borrow_mut();
                (std::mem::take(&mut d.waiters), d.instance.clone())
            };
            let value = instance.map(JsValue::from).unwrap_or(JsValue::UNDEFINED);
            for (resolve, _) in waiters {
                let _ = resolve.call1(&JsValue::NULL, &value);
            }
        }
        if let ClientEvent::Error { code, message } = &event {
            if driver.borrow().client.is_stopped() {
                let waiters = std::mem::take(&mut driver.borrow_mut().waiters);
                let error: JsValue = CovisitError::owned(code.clone(), message.clone()).into();
                for (_, reject) in waiters {
                    let _ = reject.call1(&JsValue::NULL, &error);
                }
            }
        }
        let detail = match &event {
            ClientEvent::StateChange => state.as_ref().map_or(JsValue::NULL, to_js),
            other => js_sys::JSON::parse(&other.detail_text()).unwrap_or(JsValue::UNDEFINED),
        };
        if let ClientEvent::Ready { .. } = event {
            driver.borrow_mut().ready_detail = Some(detail.clone());
        }
        call_handlers(handlers, &detail);
    }

    /// Removes everything the SDK added: socket, timer, listeners, history patch, UI.
    fn teardown(&mut self) {
        self.client.stop();
        // Only the goodbye (an `end` of a live session) goes out; events are not
        // delivered while the page's handlers are being removed.
        while let Some(output) = self.client.poll_output() {
            if let (Output::Transmit(text), Some(socket)) = (output, self.socket.as_ref()) {
                let _ = socket.send_with_str(&text);
            }
        }
        self.close_socket();
        self.timer = None;
        if let Some(unpatch) = self.unpatch_history.take() {
            let _ = unpatch.call0(&JsValue::NULL);
        }
        for (target, name, closure) in self.listeners.drain(..) {
            let _ =
                target.remove_event_listener_with_callback(name, closure.as_ref().unchecked_ref());
        }
        if let Some(ui) = self.ui.take() {
            ui.destroy();
        }
        if let Some((mirror, _)) = self.mirror.take() {
            mirror.destroy();
        }

        self.ui_callback = None;
        self.handlers.clear();
        self.waiters.clear();
        self.ready_detail = None;
        self.instance = None;
    }
}

fn url_changed(client: &mut VisitorClient, t: Millis) {
    if let Some(href) = web_sys::window().and_then(|w| w.location().href().ok()) {
        client.handle_url(t, &href);
    }
    #[cfg(feature = "journey-tracking")]
    if client.config().track_page_views {
        let _ = track_page_view(client, t, false);
    }
}

/// A journey page view: on start (`page_load`) and after each SPA navigation to a new
/// URL (unless `trackPageViews` is false), or when the page calls `trackPageView()`.
/// glue.js collects the facts, and gives none when the URL is the last page view's.
#[cfg(feature = "journey-tracking")]
fn track_page_view(
    client: &mut VisitorClient,
    t: Millis,
    page_load: bool,
) -> Result<(), crate::core::client::ClientError> {
    let facts = glue::page_view(page_load);
    if facts.is_empty() {
        return Ok(());
    }
    client.track_page_view(t, &facts)
}

fn persist(short_id: &str, secret: Option<&str>, connection_id: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    // Storage can be unavailable (private mode, blocked cookies): the SDK still works,
    // the visitor just gets a new id next time.
    if let Ok(Some(local)) = window.local_storage() {
        let _ = local.set_item(SHORT_ID_KEY, short_id);
        let _ = match secret {
            Some(s) => local.set_item(SECRET_KEY, s),
            None => local.remove_item(SECRET_KEY),
        };
    }
    if let Ok(Some(session)) = window.session_storage() {
        let _ = session.set_item(CONNECTION_ID_KEY, connection_id);
    }
}

/// The SDK object `start()` resolves with. Every method throws an `Error` with a stable
/// `code` when it cannot be done now (e.g. `wrong_session_state`).
#[wasm_bindgen]
#[derive(Clone)]
pub struct Covisit {
    driver: Rc<RefCell<Driver>>,
}

impl Covisit {
    fn call(
        &self,
        f: impl FnOnce(&mut VisitorClient) -> Result<(), crate::core::client::ClientError>,
    ) -> Result<(), CovisitError> {
        let result = f(&mut self.driver.borrow_mut().client);
        Driver::drive(&self.driver);
        result.map_err(CovisitError::from)
    }
}

#[wasm_bindgen]
impl Covisit {
    /// Allow the pending session request.
    ///
    /// ```js
    /// cv.on('sessionRequest', () => cv.authorize());
    /// ```
    pub fn authorize(&self) -> Result<(), CovisitError> {
        self.call(|c| c.authorize())
    }

    /// Refuse the pending session request (`sessionEnd` with `disconnectType: 'client'`).
    pub fn deny(&self) -> Result<(), CovisitError> {
        self.call(|c| c.deny())
    }

    /// End the session.
    pub fn end(&self) -> Result<(), CovisitError> {
        self.call(|c| c.end())
    }

    /// Allow the pending control request.
    #[wasm_bindgen(js_name = grantControl)]
    pub fn grant_control(&self) -> Result<(), CovisitError> {
        self.call(|c| c.grant_control())
    }

    /// Refuse the pending control request.
    #[wasm_bindgen(js_name = denyControl)]
    pub fn deny_control(&self) -> Result<(), CovisitError> {
        self.call(|c| c.deny_control())
    }

    /// Take control back from the agent.
    #[wasm_bindgen(js_name = revokeControl)]
    pub fn revoke_control(&self) -> Result<(), CovisitError> {
        self.call(|c| c.revoke_control())
    }

    /// Announce leaving to a page without the SDK; the session waits `returnTimeSeconds`.
    ///
    /// ```js
    /// cv.expectDisconnect({ returnTimeSeconds: 60, title: 'Payment', message: 'Back in a minute' });
    /// location.href = 'https://pay.example.com/';
    /// ```
    #[wasm_bindgen(js_name = expectDisconnect)]
    pub fn expect_disconnect(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ExpectDisconnectOptions")] options: JsValue,
    ) -> Result<(), CovisitError> {
        let options = from_js(&options)?;
        self.call(|c| c.expect_disconnect(&options))
    }

    /// Record a custom journey event (batched; sent within a second, or by beacon when
    /// the page goes away). Attribute values: string, number, boolean, or a list of one
    /// of those.
    ///
    /// ```js
    /// cv.track('add_to_cart', { sku: 'TR-42', price: 249, sizes: ['42', '43'] });
    /// ```
    #[cfg(feature = "journey-tracking")]
    #[wasm_bindgen(js_name = trackPageView)]
    /// Record a page view of the current URL now: for pages started with
    /// `trackPageViews: false` (say, after the visitor consented to analytics, or from an
    /// SPA router). A URL that is already the last page view is not counted twice.
    pub fn track_page_view(&self) -> Result<(), CovisitError> {
        self.call(|c| track_page_view(c, now(), false))
    }

    #[cfg(feature = "journey-tracking")]
    pub fn track(
        &self,
        #[wasm_bindgen(js_name = eventName)] event_name: String,
        #[wasm_bindgen(unchecked_param_type = "TrackAttributes | undefined")] attributes: JsValue,
    ) -> Result<(), CovisitError> {
        let attributes = from_js(&attributes)?;
        self.call(|c| c.track_event(now(), &event_name, &attributes))
    }

    /// Identify the visitor; `null` clears a value.
    ///
    /// ```js
    /// cv.updateVisitor({ uniqueId: 'cust-42', identities: ['Ada Lovelace', 'ada@example.com'] });
    /// ```
    #[wasm_bindgen(js_name = updateVisitor)]
    pub fn update_visitor(
        &self,
        #[wasm_bindgen(unchecked_param_type = "VisitorIdentity")] identity: JsValue,
    ) -> Result<(), CovisitError> {
        let identity = from_js(&identity)?;
        self.call(|c| c.update_visitor(&identity))
    }

    /// The 4-digit code an agent can search for.
    #[wasm_bindgen(js_name = lookupCode, unchecked_return_type = "Promise<string>")]
    pub fn lookup_code(&self) -> js_sys::Promise {
        match self.driver.borrow().client.lookup_code() {
            Some(code) => js_sys::Promise::resolve(&JsValue::from_str(code)),
            None => js_sys::Promise::reject(
                &CovisitError::new(
                    crate::core::codes::ErrorCode::NOT_CONNECTED,
                    "no lookup code yet: the SDK is not connected",
                )
                .into(),
            ),
        }
    }

    /// `{visitor, connection, session, communication}`.
    #[wasm_bindgen(unchecked_return_type = "CovisitState")]
    pub fn state(&self) -> JsValue {
        let state: ClientState = self.driver.borrow().client.state();
        to_js(&state)
    }

    /// The visitor asks for help (`is_waiting_for_call`).
    #[wasm_bindgen(js_name = requestAgent)]
    pub fn request_agent(&self) -> Result<(), CovisitError> {
        self.call(|c| c.request_agent())
    }

    #[wasm_bindgen(js_name = cancelRequestAgent)]
    pub fn cancel_request_agent(&self) -> Result<(), CovisitError> {
        self.call(|c| c.cancel_request_agent())
    }

    /// Rate the session that just ended (1–5).
    pub fn rate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "{ rating: number; feedback?: string | null }")]
        rating: JsValue,
    ) -> Result<(), CovisitError> {
        let rating = from_js(&rating)?;
        self.call(|c| c.rate(&rating))
    }

    /// Calls (issue 17): `acceptCall()`, `declineCall()`, `endCall()`,
    /// `setMicrophone(on)` and `setCamera(on)` are this one export, which index.js puts
    /// on the prototype under those names (`CALL_METHODS`; one export rather than five
    /// keeps the first load within budget) and `Covisit` in the TypeScript declares
    /// (src/web/mod.rs). The on-demand call file answers (glue.js `callApi`).
    #[wasm_bindgen(js_name = callApi, skip_typescript)]
    pub fn call_api(&self, name: &str, arg: JsValue) -> js_sys::Promise {
        // No borrow is held while the call file runs: it calls back into the SDK.
        let ui = self.driver.borrow().ui.clone();
        match ui {
            Some(ui) => ui.call_api(name, arg),
            None => js_sys::Promise::reject(
                &CovisitError::from(crate::core::client::ClientError::Stopped).into(),
            ),
        }
    }

    /// Subscribe to an event: `ready`, `sessionRequest`, `sessionStart`,
    /// `sessionContinue`, `sessionEnd`, `controlRequest`, `controlStart`, `controlEnd`,
    /// `connectionChange`, `stateChange`, `error`, `callRequest`, `callStart`,
    /// `callEnd`. A `sessionRequest` or
    /// `controlRequest` handler replaces the SDK's own prompt. A `ready` handler added
    /// after the SDK became ready is called at once (`ready` happens once per `start`).
    pub fn on(&self, event: String, handler: js_sys::Function) -> Result<(), CovisitError> {
        if !EVENT_NAMES.contains(&event.as_str()) {
            return Err(crate::core::client::ClientError::UnknownEvent { name: event }.into());
        }
        // `start()` resolves at `ready`, so whoever subscribes on the object it resolved
        // with (the script-tag loader replaying `Covisit('on', 'ready', fn)` queued before
        // the SDK loaded, too) would otherwise never hear it.
        let late_ready = match event.as_str() {
            "ready" => self.driver.borrow().ready_detail.clone(),
            _ => None,
        };
        self.driver
            .borrow_mut()
            .handlers
            .push((event, handler.clone()));
        if let Some(detail) = late_ready {
            if let Err(e) = handler.call1(&JsValue::NULL, &detail) {
                web_sys::console::error_2(
                    &JsValue::from_str("[covisit] an event handler threw:"),
                    &e,
                );
            }
        }
        Ok(())
    }

    /// Remove a handler added with `on`.
    pub fn off(&self, event: String, handler: js_sys::Function) {
        self.driver
            .borrow_mut()
            .handlers
            .retain(|(n, f)| !(n == &event && f == &handler));
    }

    /// Disconnect and remove every listener, timer and UI element the SDK added.
    pub fn stop(&self) -> js_sys::Promise {
        self.driver.borrow_mut().teardown();
        js_sys::Promise::resolve(&JsValue::UNDEFINED)
    }
}
