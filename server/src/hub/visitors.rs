//! Visitors: a hello (who it is, proven by its secret; which tab; its lookup code), a
//! tab going away, and every frame a visitor's tab sends (its machine decides; the
//! records follow in `broadcast::after_change`).

use std::collections::{HashMap, HashSet};

use covisit::core::config::{self, Permissions};
use covisit::core::derive;
use covisit::core::ids::valid_id;
use covisit::core::journey::url_facts;
use covisit::core::machine::{ConnectionInfo, MachineOptions, SessionStatus, VisitorMachine};
use covisit::core::model::{ConnectionStatus, JourneyGeolocation, QualityFeedback, Visitor};
use covisit::core::protocol::{
    encode, ConnectionHello, ServerToVisitor, VisitorMessage, CAPABILITIES, INTEGRATIONS,
    PROTOCOL_VERSION,
};
use covisit::core::Millis;
use serde_json::{Map, Value};

use super::{Conn, ConnId, Delivery, Frame, Hub, HubError};
use crate::auth::{hash_secret, same_hash};
use crate::store::Write;

/// Everything a visitor's hello carries, checked (key, origin) by the socket layer,
/// with what the store knows of the visitor it names.
pub struct VisitorHello {
    pub account_id: i64,
    pub api_key: String,
    pub short_id: Option<String>,
    /// The secret that proves the hello is from that visitor.
    pub visitor_secret: Option<String>,
    /// The stored visitor named by `short_id` and the hash of its secret (`None`: a
    /// visitor from before secrets, who gets one now).
    pub stored: Option<(Visitor, Option<String>)>,
    /// Which visitor the store says the hello's `uniqueConnectionId` belongs to.
    pub connection_owner: Option<String>,
    pub connection: ConnectionHello,
    pub config: Value,
    pub ip: String,
    /// Where `ip` is, from `--geoip` (None without it, or when unknown).
    pub location: Option<JourneyGeolocation>,
    /// On a node of several: the lookup code the shell reserved across the cluster
    /// (PostgreSQL), used if the visitor needs a new one. A clustered hub never makes
    /// codes up itself (another node could hand out the same).
    pub lookup_code: Option<String>,
    /// Whom `lookup_code` is reserved for: `Some(short_id)` when the shell found the
    /// hello proven to be that visitor (its code), `None` when it is reserved for this
    /// socket and free for whoever the hello turns out to be. A code reserved for one
    /// visitor is never given to another.
    pub lookup_code_for: Option<String>,
    /// Whether the visitor's account records sessions (its setting, else the server's
    /// `--record-sessions`).
    pub record_sessions: bool,
}

/// What a visitor's hello produced (the welcome frame is in the outputs, after the
/// visitor's record: it acknowledges it).
#[derive(Debug, Clone)]
pub struct Welcome {
    pub short_id: String,
    pub connection_id: String,
    /// The visitor's lookup code after this hello (its own, or the one offered).
    pub lookup_code: Option<String>,
}

pub(super) struct VisitorEntry {
    pub account_id: i64,
    pub visitor: Visitor,
    /// The hash of the visitor's secret: a hello must prove it to be this visitor.
    pub secret_hash: Option<String>,
    pub machine: VisitorMachine,
    /// The visitor's open tabs: uniqueConnectionId → socket.
    pub sockets: HashMap<String, ConnId>,
    pub explicit_email: Option<String>,
    pub metadata: Map<String, Value>,
    pub lookup_expires: Millis,
    /// A fingerprint of what the agents were last sent (without `last_seen_at`): the
    /// change detection (`broadcast::fingerprint`).
    pub last_broadcast: Option<u64>,
    /// When the account's watching agents last got a `visitor_update`, and its flags.
    pub broadcast_at: Millis,
    /// Whether what waits for the watching agents is a navigation only (it waits
    /// `URL_BROADCAST_INTERVAL_MS`, other changes `BROADCAST_INTERVAL_MS`).
    pub pending_url_only: bool,
    pub broadcast_flags: (bool, bool, bool),
    /// The tabs (`uniqueConnectionId`) whose page set `allowAgentDrawing: false`:
    /// agents' `draw` for them is refused.
    pub no_drawing: HashSet<String>,
    /// The tabs whose page allows the remote console (`allowRemoteConsole`), each with
    /// its rate window: (window start, entries relayed in it, entries dropped).
    pub console: HashMap<String, (Millis, usize, usize)>,
}

impl VisitorEntry {
    /// The REST/agent view: an expired lookup code is not shown.
    pub fn view(&self, now: Millis) -> Visitor {
        let mut v = self.visitor.clone();
        if self.lookup_expires <= now || !self.machine.is_online() {
            v.lookup_code = None;
        }
        v
    }

    /// Applies an identity update (SDK `updateVisitor` or the hello's config) and the
    /// derived names (SPEC.md section 5, one rule in `core::derive`).
    pub fn apply_identity(&mut self, update: config::IdentityUpdate) {
        let v = &mut self.visitor;
        update.unique_id.apply_to(&mut v.unique_id);
        let mut identities = Some(std::mem::take(&mut v.identities));
        update.identities.apply_to(&mut identities);
        v.identities = identities.unwrap_or_default();
        let mut tags = Some(std::mem::take(&mut v.tags));
        update.tags.apply_to(&mut tags);
        v.tags = tags.unwrap_or_default();
        update.call_name.apply_to(&mut v.call_name);
        update.email.apply_to(&mut self.explicit_email);
        let mut metadata = Some(std::mem::take(&mut self.metadata));
        update.metadata.map(Map::from).apply_to(&mut metadata);
        self.metadata = metadata.unwrap_or_default();
        let names = derive::Names::of(self.explicit_email.as_deref(), &v.identities);
        v.nickname = names.nickname(&v.short_id);
        (v.name, v.email) = (names.name, names.email);
    }
}

/// Whether a hello's `secret` proves the visitor whose secret hash is `hash` (`None`: a
/// visitor from before secrets, whom naming proves; it gets a secret now).
pub fn secret_proves(secret: Option<&str>, hash: Option<&str>) -> bool {
    match hash {
        Some(h) => secret.is_some_and(|s| same_hash(&hash_secret(s), h)),
        None => true,
    }
}

pub(super) fn text_ok(field: &'static str, s: &str) -> Result<(), HubError> {
    if s.len() > config::MAX_TEXT_LEN {
        Err(HubError::InvalidArgument(format!(
            "`{field}` is too long (at most 2048 bytes)"
        )))
    } else {
        Ok(())
    }
}

/// A page's address (`currentUrl`): within the text limit and an `http(s)` URL with a
/// host. Agents see it and REST serves it as the Visitor's `last_url`: a `javascript:`
/// or `data:` "page" is not where a visitor is.
pub(super) fn page_url_ok(field: &'static str, s: &str) -> Result<(), HubError> {
    text_ok(field, s)?;
    if url_facts::parse_http(s).is_none() {
        return Err(HubError::InvalidArgument(format!(
            "`{field}` must be the page's http:// or https:// address"
        )));
    }
    Ok(())
}

impl Hub {
    /// A visitor's tab said hello on socket `conn`. On success the welcome frame (after
    /// the visitor's record, which it acknowledges) is in the outputs.
    pub fn handle_visitor_connect(
        &mut self,
        now: Millis,
        conn: ConnId,
        mut hello: VisitorHello,
    ) -> Result<Welcome, HubError> {
        // A URL's user:password@ is a secret, not where the visitor is.
        hello.connection.current_url = hello
            .connection
            .current_url
            .as_deref()
            .map(url_facts::without_credentials);
        let mut config_obj = match std::mem::take(&mut hello.config) {
            Value::Null => Map::new(),
            Value::Object(m) => m,
            _ => {
                return Err(HubError::Config {
                    code: covisit::core::codes::ErrorCode::CONFIG_NOT_OBJECT,
                    message: "config must be an object".into(),
                })
            }
        };
        self.set_account_recording(hello.account_id, hello.record_sessions);
        config_obj.insert("apiKey".into(), Value::String(hello.api_key.clone()));
        config_obj.insert(
            "server".into(),
            Value::String(self.config.public_url.clone()),
        );
        let config = config::parse_config(&Value::Object(config_obj).into())?;
        if let Some(url) = &hello.connection.current_url {
            page_url_ok("currentUrl", url)?;
        }
        let ua = crate::ua::parse(hello.connection.user_agent.as_deref());
        let account_id = hello.account_id;
        // The SDK's id is kept only when the hello proves it with the visitor's secret
        // (or names a visitor from before secrets, who gets one now). Anyone else who
        // names it (it is shown to agents and in links: not a secret) is a new visitor,
        // with nothing of the other one's tabs, session, prompts or lookup code.
        let proves = |hash: Option<&str>| secret_proves(hello.visitor_secret.as_deref(), hash);
        let claimed = hello.short_id.clone().filter(|s| valid_id(s));
        let in_memory = claimed.as_ref().and_then(|s| self.visitors.get(s));
        let short_id = match (claimed, in_memory, hello.stored.as_ref()) {
            (Some(s), Some(e), _)
                if e.account_id == account_id && proves(e.secret_hash.as_deref()) =>
            {
                s
            }
            (Some(s), None, Some((v, hash))) if v.short_id == s && proves(hash.as_deref()) => s,
            _ => {
                let owned = self.owned.take();
                let id = self
                    .ids
                    .short_id(|id| super::cluster::fits(owned.as_ref(), id));
                self.owned = owned;
                id
            }
        };
        let stored = hello.stored.take().filter(|(v, _)| v.short_id == short_id);
        let is_new = !self.visitors.contains_key(&short_id) && stored.is_none();
        let options = MachineOptions {
            permissions: config.permissions.clone(),
            authorization_timeout_seconds: config.authorization_timeout_seconds,
            grace_period_seconds: self.config.grace_period_seconds,
            ..MachineOptions::default()
        };
        if !self.visitors.contains_key(&short_id) {
            let (visitor, secret_hash) =
                stored.unwrap_or_else(|| (self.new_visitor(now, &short_id, &hello.api_key), None));
            self.visitors.insert(
                short_id.clone(),
                Box::new(VisitorEntry {
                    account_id,
                    secret_hash,
                    explicit_email: derive::explicit_email(
                        visitor.email.as_deref(),
                        &visitor.identities,
                    ),
                    visitor,
                    machine: VisitorMachine::new(short_id.clone(), options.clone()),
                    sockets: HashMap::new(),
                    metadata: Map::new(),
                    lookup_expires: Millis(0),
                    last_broadcast: None,
                    broadcast_at: Millis(0),
                    pending_url_only: false,
                    broadcast_flags: (false, false, false),
                    no_drawing: HashSet::new(),
                    console: HashMap::new(),
                }),
            );
        }
        // A code the shell reserved for another visitor (the one this hello claimed to be
        // and did not prove) is not this visitor's.
        let offered = hello.lookup_code.take().filter(|_| {
            hello
                .lookup_code_for
                .as_ref()
                .is_none_or(|f| *f == short_id)
        });
        let new_code = self.take_lookup_code(now, account_id, &short_id, offered);
        let Some(entry) = self.visitors.get_mut(&short_id) else {
            return Err(HubError::UnknownVisitor); // inserted just above
        };
        // A visitor with no tab and no live session starts afresh with this page's options.
        let live = matches!(
            entry.machine.status(),
            SessionStatus::Authorizing | SessionStatus::Active
        );
        if !entry.machine.is_online() && !live {
            entry.machine = VisitorMachine::new(short_id.clone(), options);
        }
        // A tab's id is kept only when it is this visitor's (a tab that reconnects); an
        // id another visitor's tab holds is never taken over.
        let fresh = |ids: &mut super::Ids| format!("c_{}", ids.hex(8));
        let connection_id = match hello
            .connection
            .unique_connection_id
            .clone()
            .filter(|c| valid_id(c))
        {
            Some(c) => match entry.machine.connection(&c) {
                Some(known) if known.status == ConnectionStatus::Disconnected => c,
                None if !is_new && hello.connection_owner.as_deref() == Some(short_id.as_str()) => {
                    c
                }
                _ => fresh(&mut self.ids),
            },
            None => fresh(&mut self.ids),
        };
        let Some(entry) = self.visitors.get_mut(&short_id) else {
            return Err(HubError::UnknownVisitor);
        };
        let was_online = entry.machine.is_online();
        entry.machine.handle_connect(
            now,
            ConnectionInfo {
                unique_connection_id: connection_id.clone(),
                current_url: hello.connection.current_url.clone(),
                screen_width: hello.connection.screen_width,
                screen_height: hello.connection.screen_height,
                audio_supported: hello.connection.audio_supported,
                has_focus: hello.connection.has_focus,
                permissions: config.permissions.clone(),
            },
        )?;
        entry.sockets.insert(connection_id.clone(), conn);
        // This tab's page decides whether agents may draw on it.
        if config.allow_agent_drawing {
            entry.no_drawing.remove(&connection_id);
        } else {
            entry.no_drawing.insert(connection_id.clone());
        }
        if config.permissions.allow_remote_console {
            entry
                .console
                .entry(connection_id.clone())
                .or_insert((now, 0, 0));
        } else {
            entry.console.remove(&connection_id);
        }
        if let Some(code) = new_code {
            entry.visitor.lookup_code = code;
            entry.lookup_expires = now.plus_seconds(derive::LOOKUP_CODE_TTL_SECONDS);
        }
        let v = &mut entry.visitor;
        v.api_key = hello.api_key;
        v.ip_address = hello.ip;
        // "According to their IP address": the address they connected from last.
        let location = hello.location.unwrap_or_default();
        v.location_city = location.locality;
        v.location_country_name = location.country_name;
        v.location_country = location.country;
        v.browser_name = ua.browser_name;
        v.device_name = ua.device_name;
        v.device_type = ua.device_type;
        if hello.connection.current_url.is_some() {
            v.last_url = hello.connection.current_url;
        }
        v.last_seen_at = now.to_iso8601();
        // The page's own report: the chat widget it found (known names only) and what
        // the browser lacks (known capability names only, each once).
        v.integration = hello
            .connection
            .integration
            .filter(|i| INTEGRATIONS.contains(&i.as_str()));
        let missing: Vec<String> = CAPABILITIES
            .iter()
            .filter(|c| hello.connection.missing.iter().any(|m| m == *c))
            .map(|c| c.to_string())
            .collect();
        v.is_supported = missing.is_empty();
        v.missing_capabilities = missing;
        v.js_configuration = config.permissions != Permissions::default()
            || config.authorization_timeout_seconds
                != config::DEFAULT_AUTHORIZATION_TIMEOUT_SECONDS
            || !config.track_page_views
            || !config.allow_agent_drawing;
        entry.apply_identity(config.identity);
        // A new visitor, or one from before secrets, gets its secret now: only its hash
        // is kept, and it is written (after the visitor's record) before the welcome.
        let issued = entry.secret_hash.is_none().then(|| self.ids.secret());
        let Some(entry) = self.visitors.get_mut(&short_id) else {
            return Err(HubError::UnknownVisitor);
        };
        if let Some(secret) = &issued {
            entry.secret_hash = Some(hash_secret(secret));
        }
        let lookup_code = entry.visitor.lookup_code.clone();
        let resumed_session = (was_online && entry.machine.status() == SessionStatus::Active)
            .then(|| entry.machine.session_id().map(str::to_string))
            .flatten();
        self.conns.insert(
            conn,
            Conn::Visitor {
                short_id: short_id.clone(),
                connection_id: connection_id.clone(),
            },
        );
        self.listen(now, conn, false);
        let mark = self.outputs.len();
        if let (Some(hash), Some(entry)) = (
            issued.as_ref().map(|s| hash_secret(s)),
            self.visitors.get_mut(&short_id),
        ) {
            let view = entry.view(now);
            self.persist(Write::Visitor(account_id, Box::new(view)));
            self.persist(Write::VisitorSecret(short_id.clone(), hash));
        }
        self.after_change(&short_id, now);
        // The welcome is this socket's first frame, and it acknowledges the visitor's
        // record: it goes after every write queued so far (Durable), and what the change
        // had for this socket (its state, a prompt) follows it.
        let queued: Vec<super::Output> = self.outputs.drain(mark..).collect();
        let mut later = Vec::new();
        for o in queued {
            match o {
                super::Output::Send { conn: c, .. } if c == conn => later.push(o),
                other => self.outputs.push_back(other),
            }
        }
        let welcome = encode(&ServerToVisitor::Welcome {
            protocol_version: PROTOCOL_VERSION,
            short_id: short_id.clone(),
            unique_connection_id: connection_id.clone(),
            lookup_code: lookup_code.clone(),
            visitor_secret: issued,
        });
        self.send_durable(conn, welcome);
        // The machine resumes a session only when the visitor was gone; a new tab that
        // joins a live session still needs to know it is in one (its indicator).
        if let Some(session_id) = resumed_session {
            self.send_durable(
                conn,
                encode(&ServerToVisitor::SessionContinue { session_id }),
            );
        }
        self.outputs.extend(later);
        Ok(Welcome {
            short_id,
            connection_id,
            lookup_code,
        })
    }

    fn new_visitor(&self, now: Millis, short_id: &str, api_key: &str) -> Visitor {
        Visitor {
            added_at: now.to_iso8601(),
            api_key: api_key.to_string(),
            browser_name: None,
            call_name: None,
            device_name: None,
            device_type: None,
            email: None,
            identities: Vec::new(),
            integration: None,
            ip_address: String::new(),
            is_in_session: false,
            is_online: false,
            is_supported: true,
            missing_capabilities: Vec::new(),
            is_waiting_for_call: false,
            js_configuration: false,
            last_seen_at: now.to_iso8601(),
            last_url: None,
            location_city: None,
            location_country_name: None,
            location_country: None,
            lookup_code: None,
            name: None,
            nickname: short_id.to_string(),
            short_id: short_id.to_string(),
            tags: Vec::new(),
            unique_id: None,
            watch_link: derive::watch_link(&self.config.public_url, short_id),
            sdk: "web".into(),
        }
    }

    /// A new lookup code when the visitor has none or it expired: unique among the
    /// account's online visitors. `None`: keep the current one.
    fn take_lookup_code(
        &mut self,
        now: Millis,
        account_id: i64,
        short_id: &str,
        offered: Option<String>,
    ) -> Option<Option<String>> {
        let needs = self
            .visitors
            .get(short_id)
            .is_none_or(|e| e.lookup_expires <= now || e.visitor.lookup_code.is_none());
        if !needs {
            return None;
        }
        let (ids, visitors, codes) = (&mut self.ids, &self.visitors, &self.lookup_codes);
        let taken = |code: &str| {
            codes
                .get(&(account_id, code.to_string()))
                .filter(|holder| holder.as_str() != short_id)
                .and_then(|holder| visitors.get(holder))
                .is_some_and(|v| {
                    v.account_id == account_id
                        && v.machine.is_online()
                        && v.lookup_expires > now
                        && v.visitor.lookup_code.as_deref() == Some(code)
                })
        };
        if self.owned.is_some() {
            // Reserved across the cluster by the shell (or none was free); one that an
            // online visitor here still shows is refused all the same (the visitor then
            // has none until its next hello: never two people behind one code).
            let offered = offered.filter(|c| !taken(c));
            if let Some(c) = &offered {
                self.lookup_codes
                    .insert((account_id, c.clone()), short_id.to_string());
            }
            return Some(offered);
        }
        let code = derive::lookup_code(|| ids.u32(), taken);
        if let Some(c) = &code {
            self.lookup_codes
                .insert((account_id, c.clone()), short_id.to_string());
        }
        Some(code)
    }

    /// A visitor's tab went away.
    pub fn handle_visitor_disconnect(&mut self, now: Millis, conn: ConnId) {
        self.heard.remove(&conn);
        let Some(Conn::Visitor {
            short_id,
            connection_id,
        }) = self.conns.remove(&conn)
        else {
            return;
        };
        let Some(entry) = self.visitors.get_mut(&short_id) else {
            return;
        };
        if entry.sockets.get(&connection_id) == Some(&conn) {
            entry.sockets.remove(&connection_id);
        }
        // Already closed (e.g. erased) is fine: nothing to do.
        let _ = entry.machine.handle_disconnect(now, &connection_id);
        self.after_change(&short_id, now);
    }

    /// A frame from a visitor's tab. A refused one is answered with an error frame
    /// (and returned); the socket and the session stay as they were.
    pub fn handle_visitor_frame(&mut self, now: Millis, conn: ConnId, msg: VisitorMessage) {
        self.handle_heard(now, conn);
        if let Err(e) = self.visitor_frame(now, conn, msg) {
            self.send_error(conn, &e);
        }
    }

    fn visitor_frame(
        &mut self,
        now: Millis,
        conn: ConnId,
        msg: VisitorMessage,
    ) -> Result<(), HubError> {
        let Some(Conn::Visitor {
            short_id,
            connection_id,
        }) = self.conns.get(&conn)
        else {
            return Err(HubError::UnknownConnection);
        };
        let (short_id, connection_id) = (short_id.clone(), connection_id.clone());
        let Some(entry) = self.visitors.get_mut(&short_id) else {
            return Err(HubError::UnknownVisitor);
        };
        entry.visitor.last_seen_at = now.to_iso8601();
        let m = &mut entry.machine;
        let result: Result<(), HubError> = match msg {
            VisitorMessage::Hello { .. } => Err(HubError::UnexpectedHello),
            VisitorMessage::Heartbeat => {
                self.send(conn, heartbeat_ack(), Delivery::Now);
                // Only `last_seen_at` moved: not worth a broadcast nor a write.
                return Ok(());
            }
            VisitorMessage::Focus { has_focus } => m
                .handle_focus(now, &connection_id, has_focus)
                .map_err(Into::into),
            VisitorMessage::Url { current_url } => {
                page_url_ok("currentUrl", &current_url)?;
                let current_url = url_facts::without_credentials(&current_url);
                m.handle_url(now, &connection_id, current_url.clone())?;
                entry.visitor.last_url = Some(current_url);
                self.url_changed(&short_id, now);
                return Ok(());
            }
            VisitorMessage::ExpectDisconnect {
                return_time_seconds,
                message,
                title,
            } => {
                for t in [&message, &title].into_iter().flatten() {
                    text_ok("message", t)?;
                }
                m.handle_expect_disconnect(now, &connection_id, return_time_seconds, message, title)
                    .map_err(Into::into)
            }
            VisitorMessage::UpdateVisitor { identity } => {
                let update = config::parse_identity_update(&identity)?;
                entry.apply_identity(update);
                Ok(())
            }
            VisitorMessage::Authorize => m.handle_authorize(now).map_err(Into::into),
            VisitorMessage::Deny => m.handle_deny(now).map_err(Into::into),
            VisitorMessage::End => m.handle_visitor_end(now).map_err(Into::into),
            VisitorMessage::ControlGrant => m.handle_control_grant(now).map_err(Into::into),
            VisitorMessage::ControlDeny => m.handle_control_deny(now).map_err(Into::into),
            VisitorMessage::ControlRevoke => m.handle_control_revoke(now).map_err(Into::into),
            VisitorMessage::RequestAgent => {
                entry.visitor.is_waiting_for_call = true;
                Ok(())
            }
            VisitorMessage::CancelRequestAgent => {
                entry.visitor.is_waiting_for_call = false;
                Ok(())
            }
            VisitorMessage::Rate {
                session_id,
                rating,
                feedback,
            } => {
                self.rate(&short_id, &session_id, rating, feedback)?;
                return Ok(());
            }
            // The socket layer hands `track` to the journey module and `call_link` to
            // the directory (both need the store first): they never get here.
            VisitorMessage::Track { .. } | VisitorMessage::CallLink { .. } => return Ok(()),
            VisitorMessage::Mirror { data } => {
                return self.relay_mirror(now, &short_id, &connection_id, data);
            }
            VisitorMessage::Console { entries } => {
                return self.relay_console(now, &short_id, &connection_id, entries);
            }
            VisitorMessage::RemoteApplied { id, ok, reason } => {
                self.remote_applied(&short_id, id, ok, reason)
            }
            VisitorMessage::Call { call } => {
                self.visitor_call(now, &short_id, &connection_id, call)
            }
            VisitorMessage::Unknown => Err(HubError::UnknownMessageType),
        };
        self.after_change(&short_id, now);
        result
    }

    /// The visitor rates its ended session (1–5); a second rating replaces its first.
    fn rate(
        &mut self,
        short_id: &str,
        session_id: &str,
        rating: u8,
        feedback: Option<String>,
    ) -> Result<(), HubError> {
        if !(1..=5).contains(&rating) {
            return Err(HubError::InvalidArgument("rating must be 1 to 5".into()));
        }
        if let Some(f) = &feedback {
            text_ok("feedback", f)?;
        }
        let account_id = self.visitors.get(short_id).map_or(0, |e| e.account_id);
        let s = self
            .sessions
            .get_mut(session_id)
            .filter(|s| s.session.visitor_id == short_id)
            .ok_or(HubError::UnknownSession)?;
        if s.status != SessionStatus::Ended {
            return Err(HubError::RateLiveSession);
        }
        // One rating per visitor: a second replaces the first (as an agent's does), so
        // a page cannot grow the Session by rating again and again.
        let mine = QualityFeedback {
            rating: f64::from(rating),
            feedback: feedback.clone(),
            by: short_id.to_string(),
        };
        match s
            .session
            .quality_feedback
            .iter_mut()
            .find(|q| q.by == short_id)
        {
            Some(q) => *q = mine,
            None => s.session.quality_feedback.push(mine),
        }
        if s.parts.len() == 1 {
            s.session.visitor_agent_rating = Some(f64::from(rating));
            s.session.visitor_agent_feedback = feedback;
        }
        let write = Write::Session(account_id, Box::new(s.session.clone()), "ended".into());
        self.persist(write);
        Ok(())
    }

    /// An agent of the session rates it once it ended (1–5, optional comment): its entry
    /// in `quality_feedback` (`by`: the agent's id), replacing its earlier one.
    pub fn rate_session_by_agent(
        &mut self,
        account_id: i64,
        agent_id: &str,
        session_id: &str,
        rating: u8,
        feedback: Option<String>,
    ) -> Result<(), HubError> {
        if !(1..=5).contains(&rating) {
            return Err(HubError::InvalidArgument("rating must be 1 to 5".into()));
        }
        if let Some(f) = &feedback {
            text_ok("feedback", f)?;
        }
        let s = self
            .sessions
            .get_mut(session_id)
            .filter(|s| s.account_id == account_id)
            .ok_or(HubError::UnknownSession)?;
        if !s.parts.iter().any(|p| p.agent.id == agent_id) {
            return Err(HubError::NotInSession);
        }
        if s.status != SessionStatus::Ended {
            return Err(HubError::RateLiveSession);
        }
        let mine = QualityFeedback {
            rating: f64::from(rating),
            feedback: feedback.filter(|f| !f.trim().is_empty()),
            by: agent_id.to_string(),
        };
        match s
            .session
            .quality_feedback
            .iter_mut()
            .find(|q| q.by == agent_id)
        {
            Some(q) => *q = mine,
            None => s.session.quality_feedback.push(mine),
        }
        let session = s.session.clone();
        let frame = Frame::from(s.update_frame());
        let ids: Vec<String> = s.parts.iter().map(|p| p.agent.id.clone()).collect();
        self.persist(Write::Session(
            account_id,
            Box::new(session),
            "ended".into(),
        ));
        for conn in self.sockets_of(account_id, &ids) {
            self.send(conn, frame.clone(), Delivery::Durable);
        }
        Ok(())
    }

    /// Forgets the visitor's personal data in memory: ends its live session (`system`),
    /// closes its sockets, drops it and nulls the personal fields of its sessions.
    pub fn handle_rest_erase_visitor(
        &mut self,
        now: Millis,
        account_id: i64,
        short_id: &str,
    ) -> bool {
        let known = self
            .visitors
            .get(short_id)
            .is_some_and(|v| v.account_id == account_id);
        if known {
            if let Some(entry) = self.visitors.get_mut(short_id) {
                let _ = entry.machine.handle_server_end(now);
            }
            self.after_change(short_id, now);
            if let Some(entry) = self.visitors.remove(short_id) {
                for conn in entry.sockets.values() {
                    // Behind the session_end frame queued above.
                    self.outputs.push_back(super::Output::Close {
                        conn: *conn,
                        reason: super::CloseReason::Erased,
                    });
                    self.conns.remove(conn);
                }
                // Other nodes drop their copy too.
                self.publish(super::VisitorNews {
                    account_id,
                    visitor: entry.visitor,
                    session_agents: Vec::new(),
                    kind: super::NewsKind::Erased,
                });
            }
            self.schedule(short_id, now);
            self.forget_watch(short_id);
        }
        for s in self
            .sessions
            .values_mut()
            .filter(|s| s.account_id == account_id && s.session.visitor_id == short_id)
        {
            s.session.visitor_ip_address = None;
            s.session.visitor_email = None;
            s.session.visitor_unique_id = None;
            s.session.metadata.retain(|k, _| !k.starts_with("visitor_"));
        }
        // The store holds the (erased) records from here on.
        self.sessions
            .retain(|_, s| !(s.account_id == account_id && s.session.visitor_id == short_id));
        known
    }
}

/// Every heartbeat ack is the same frame.
fn heartbeat_ack() -> Frame {
    static ACK: std::sync::LazyLock<Frame> =
        std::sync::LazyLock::new(|| Frame::from(encode(&ServerToVisitor::HeartbeatAck)));
    ACK.clone()
}
