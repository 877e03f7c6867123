//! The wire protocol between the SDK, the server and the agent console: one definition
//! of every message, used by all three and by the tests. `docs/PROTOCOL.md` describes it.
//!
//! Frames are JSON text, one message each, tagged by `type`. The first frame of either
//! socket is a `hello` whose `protocol_version` the server checks. A message type this
//! side does not know decodes to `Unknown` so an older peer degrades instead of failing.
//! Field names that appear in the seeds keep the seeds' casing: snake_case for the REST
//! objects (Visitor, Session, Agent), camelCase for Connection and Cobrowsesession.

use crate::core::codes::ErrorCode;
use crate::core::config::Permissions;
use crate::core::json::{Json, Object};
use serde::{Deserialize, Serialize};

use crate::core::journey::TrackEvent;
use crate::core::machine::{ControlEndReason, PromptKind, SessionStatus};
use crate::core::model::{Agent, Cobrowsesession, Connection, DisconnectType, Session, Visitor};

mod call;
pub use call::{
    sends_video, CallEndReason, CallFromAgent, CallFromVisitor, CallPhase, CallRules, CallSignal,
    CallToAgent, CallToVisitor, IceCandidate, IceServer, MediaChannel, MediaState, SdpType,
    SessionCall, SessionDescription, VisitorCallEnd, MAX_CANDIDATE_BYTES, MAX_SDP_BYTES,
};

/// The protocol version this build speaks. A `hello` with another version is refused.
pub const PROTOCOL_VERSION: u32 = 1;
/// The largest frame either side accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// What a tab reports about itself in its hello (camelCase, as the seed Connection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", default)]
pub struct ConnectionHello {
    /// Set when the tab reconnects (reload, network blip); new tabs send none.
    pub unique_connection_id: Option<String>,
    pub current_url: Option<String>,
    pub screen_width: u32,
    pub screen_height: u32,
    pub audio_supported: bool,
    pub has_focus: bool,
    pub user_agent: Option<String>,
    /// The live-chat widget the SDK found on the page (one of [`INTEGRATIONS`]); the
    /// Visitor's `integration`.
    pub integration: Option<String>,
    /// The capabilities co-browsing needs that this browser lacks (names from
    /// [`CAPABILITIES`]); any makes the Visitor `is_supported: false`.
    pub missing: Vec<String>,
}

/// The live-chat widgets the SDK recognises on a page (their public globals or script
/// hosts, `src/web/glue.js` `integration()`): the Visitor's `integration`, and what
/// `session_requests` accepts as `integration`.
pub const INTEGRATIONS: [&str; 10] = [
    "intercom",
    "zendesk",
    "drift",
    "livechat",
    "crisp",
    "hubspot",
    "freshchat",
    "tawk.to",
    "olark",
    "gorgias",
];

/// What the SDK checks the browser for before it connects (`src/web/glue.js`
/// `missing()`, and `src/js/index.js` for `WebAssembly` itself, which the SDK needs to
/// run at all). A browser without one gets a Visitor with `is_supported: false`.
pub const CAPABILITIES: [&str; 6] = [
    "WebAssembly",
    "WebSocket",
    "MutationObserver",
    "ShadowRoot",
    "WeakSet",
    "CSSStyleSheet",
];

/// Most entries in one `console` frame.
pub const MAX_CONSOLE_ENTRIES: usize = 50;
/// Longest `text` (and `url`) of a console entry, in bytes; the SDK cuts longer ones.
pub const MAX_CONSOLE_TEXT: usize = 1024;

/// The remote console's kinds: the page's console calls, its uncaught errors and
/// unhandled rejections, and its failed network requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ConsoleKind {
    Log,
    Info,
    Warn,
    Error,
    /// An uncaught error (`window` `error`).
    Exception,
    /// An unhandled promise rejection.
    Rejection,
    /// A fetch or XHR that failed (network) or answered with a status of 400 or more.
    Network,
}

/// One line of the visitor page's console as the agent sees it (`allowRemoteConsole`).
/// Read-only: nothing is ever evaluated on the page. `network` lines carry `method`,
/// `url` (without query, fragment or credentials) and `status` (0: no answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ConsoleEntry {
    pub kind: ConsoleKind,
    /// The page's clock (ms since the epoch) when it happened.
    pub at: u64,
    pub text: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
}

impl ConsoleEntry {
    /// Within the limits: `text` and `url` at most [`MAX_CONSOLE_TEXT`] bytes, `method`
    /// at most 16, and a `url` with no query, fragment or credentials.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.text.len() > MAX_CONSOLE_TEXT {
            return Err("a console entry's `text` is too long (at most 1 KiB)");
        }
        if self.method.as_ref().is_some_and(|m| m.len() > 16) {
            return Err("a console entry's `method` is too long");
        }
        if let Some(url) = &self.url {
            if url.len() > MAX_CONSOLE_TEXT {
                return Err("a console entry's `url` is too long (at most 1 KiB)");
            }
            // A request's address, http(s) or ws(s), or only the scheme of another kind
            // (`data:`, `blob:`: the SDK sends no more of those): nothing a console
            // could run or load.
            let bare_scheme = url.strip_suffix(':').is_some_and(|s| {
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            });
            let after_scheme = match url.split_once("://") {
                Some((scheme, rest))
                    if ["http", "https", "ws", "wss"]
                        .contains(&scheme.to_ascii_lowercase().as_str()) =>
                {
                    rest
                }
                _ if url.is_empty() || bare_scheme => "",
                _ => return Err("a console entry's `url` must be an http(s) or ws(s) address"),
            };
            let authority = after_scheme.split('/').next().unwrap_or_default();
            if url.contains('?') || url.contains('#') || authority.contains('@') {
                return Err("a console entry's `url` must have no query, fragment or credentials");
            }
        }
        Ok(())
    }
}

/// Visitor (SDK) → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum VisitorMessage {
    /// First frame: who this is. `config` is the SDK's validated config object
    /// (camelCase keys, without `apiKey`/`server`).
    Hello {
        protocol_version: u32,
        api_key: String,
        /// The visitor's stable id from a previous visit, if any.
        short_id: Option<String>,
        /// The secret the server gave this visitor with its first welcome: without it
        /// (or with a wrong one) `short_id` is not this visitor's, and a new one is made.
        #[serde(default)]
        visitor_secret: Option<String>,
        connection: ConnectionHello,
        #[serde(default)]
        #[cfg_attr(test, ts(type = "Record<string, unknown> | null"))]
        config: Json,
    },
    Heartbeat,
    Focus {
        #[serde(rename = "hasFocus")]
        has_focus: bool,
    },
    Url {
        #[serde(rename = "currentUrl")]
        current_url: String,
    },
    ExpectDisconnect {
        #[serde(rename = "returnTimeSeconds")]
        return_time_seconds: Option<u64>,
        message: Option<String>,
        title: Option<String>,
    },
    /// `identity` has the keys of `updateVisitor` (camelCase); `null` clears a value.
    UpdateVisitor {
        #[cfg_attr(test, ts(type = "Record<string, unknown>"))]
        identity: Json,
    },
    Authorize,
    Deny,
    End,
    ControlGrant,
    ControlDeny,
    ControlRevoke,
    RequestAgent,
    CancelRequestAgent,
    Rate {
        session_id: String,
        rating: u8,
        feedback: Option<String>,
    },
    /// A batch of journey events (page views, custom events), oldest first. `sent_at`
    /// is the page's clock when it was sent, so the server can place each event's `at`
    /// on its own clock. The SDK writes this frame by hand (see `client.rs`), so the
    /// derived serializer skips it: its code stays out of the wasm bundle.
    #[serde(skip_serializing)]
    Track {
        sent_at: u64,
        events: Vec<TrackEvent>,
    },
    /// Co-browsing: a batch of mirror records (docs/MIRROR.md), sent only while the
    /// session is active; the server relays it to the session's agents. The SDK writes
    /// this frame by hand around the capture's JSON (`client/mirror.rs`), so the derived
    /// serializer skips it: serializing raw JSON stays out of the wasm bundle.
    #[serde(skip_serializing)]
    Mirror {
        data: MirrorData,
    },
    /// The remote console (`allowRemoteConsole`): the page's console lines, uncaught
    /// errors and failed requests since the last frame, only while the session is
    /// active. The SDK writes this frame by hand around its console module's JSON
    /// (`client/console.rs`), so the derived serializer skips it.
    #[serde(skip_serializing)]
    Console {
        entries: Vec<ConsoleEntry>,
    },
    /// Co-browsing: the page applied (`ok`) or refused the remote action `id`.
    RemoteApplied {
        id: u32,
        ok: bool,
        reason: Option<RemoteRefusal>,
    },
    /// The page was opened through an agent's personal link: the one-time token the
    /// visitor's confirmation gave (`#covisit_call=…` in the URL). That agent asks for
    /// a session; the visitor authorizes as usual.
    CallLink {
        token: String,
    },
    /// Calls and sharing (issue 17): the visitor's side of the signalling. The SDK's
    /// call file writes it as JSON and the wasm wraps it by hand (`client.rs`
    /// `call_send`), so the derived serializer skips it.
    #[serde(skip_serializing)]
    Call {
        call: CallFromVisitor,
    },
    #[serde(other)]
    #[cfg_attr(test, ts(skip))]
    Unknown,
}

/// The records of a `mirror` frame (docs/MIRROR.md), kept as the JSON text they came
/// in: the server checks their shape ([`MirrorData::check`]) and relays the text
/// without building a tree of it; the console re-sanitises everything it renders.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(transparent)]
#[cfg_attr(test, ts(type = "MirrorRecord[]"))]
pub struct MirrorData(Box<RawJson>);

/// JSON kept as its text: serde_json's `RawValue` natively. The SDK's wasm never reads
/// or writes a mirror frame through serde (it writes them by hand, `client/mirror.rs`),
/// so there it is a plain `str` and serde_json's raw-value support (its error
/// formatting with it) stays out of the bundle.
#[cfg(not(target_arch = "wasm32"))]
type RawJson = serde_json::value::RawValue;
#[cfg(target_arch = "wasm32")]
type RawJson = str;

#[cfg(not(target_arch = "wasm32"))]
fn raw_text(raw: &RawJson) -> &str {
    raw.get()
}
#[cfg(target_arch = "wasm32")]
fn raw_text(raw: &RawJson) -> &str {
    raw
}

/// The most records one `mirror` frame may carry.
pub const MAX_MIRROR_RECORDS: usize = 20_000;

impl PartialEq for MirrorData {
    fn eq(&self, other: &MirrorData) -> bool {
        raw_text(&self.0) == raw_text(&other.0)
    }
}

impl MirrorData {
    /// Records from their JSON text (which must be valid JSON).
    pub fn from_text(text: String) -> Result<MirrorData, ProtocolError> {
        #[cfg(not(target_arch = "wasm32"))]
        return serde_json::value::RawValue::from_string(text)
            .map(MirrorData)
            .map_err(|e| ProtocolError::Malformed {
                detail: e.to_string(),
            });
        #[cfg(target_arch = "wasm32")]
        Json::parse(&text)
            .map(|_| MirrorData(text.into_boxed_str()))
            .ok_or(ProtocolError::Malformed {
                detail: "not JSON".into(),
            })
    }

    pub fn text(&self) -> &str {
        raw_text(&self.0)
    }

    /// Whether the first record starts a snapshot (`["S", …]`: a new epoch). Reads
    /// only as far as the first record's kind.
    pub fn starts_snapshot(&self) -> bool {
        self.first_kind() == Some(b'S')
    }

    /// The first record's kind letter, reading only as far as it.
    pub fn first_kind(&self) -> Option<u8> {
        let t = self
            .text()
            .trim_start()
            .strip_prefix('[')
            .unwrap_or_default();
        let t = t.trim_start().strip_prefix('[').unwrap_or_default();
        // The kind is read as JSON, not matched as text: `"\u0053"` is an `S` too.
        let mut values = serde_json::Deserializer::from_str(t).into_iter::<RecordKind>();
        match values.next() {
            Some(Ok(RecordKind(k))) => Some(k),
            _ => None,
        }
    }

    /// The asset reply this frame carries, when its first record is one (`a`): such a
    /// frame carries that one record and nothing else (the capture sends each piece in
    /// a frame of its own), and is not relayed as mirror data. `None`: not an asset
    /// frame; `Some(Err)`: an asset frame of the wrong shape.
    pub fn asset_reply(&self) -> Option<Result<AssetReply, &'static str>> {
        (self.first_kind() == Some(b'a')).then(|| AssetReply::from_records(self.text()))
    }
}

/// The largest piece of an asset one `a` record carries, in base64 characters (a frame
/// of its own stays well under [`MAX_FRAME_BYTES`]).
pub const MAX_ASSET_PIECE: usize = 48_000;

/// Assets through covisit: the page's answer to an [`ServerToVisitor::AssetRequest`],
/// carried as a mirror record of a frame of its own, so that it passes the SDK's one
/// consent gate (`VisitorClient::mirror`: only while the session is active) and costs
/// the first-load bundle nothing (the on-demand capture writes it):
///
/// - `["a", id, contentType, base64, last]`: a piece of the body (at most
///   [`MAX_ASSET_PIECE`] characters; `last` 1 on the final one, 0 before it);
/// - `["a", id, 0, reason]`: the page will not send it (`masked`, `not_sent`,
///   `cross_origin`, `type`, `too_large`, `failed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetReply {
    Piece {
        id: u32,
        content_type: String,
        data: String,
        last: bool,
    },
    Refused {
        id: u32,
        reason: String,
    },
}

impl AssetReply {
    pub fn id(&self) -> u32 {
        match self {
            AssetReply::Piece { id, .. } | AssetReply::Refused { id, .. } => *id,
        }
    }

    /// Whether no piece follows this one.
    pub fn is_last(&self) -> bool {
        match self {
            AssetReply::Piece { last, .. } => *last,
            AssetReply::Refused { .. } => true,
        }
    }

    /// The one record of an asset frame: `[["a", …]]`.
    fn from_records(text: &str) -> Result<AssetReply, &'static str> {
        use serde_json::Value;
        let records: Vec<Vec<Value>> =
            serde_json::from_str(text).map_err(|_| "an asset frame holds one `a` record")?;
        let [record] = records.as_slice() else {
            return Err("an asset frame holds one `a` record");
        };
        let id = record
            .get(1)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("an asset record's id is a 32-bit number")?;
        match (record.get(2), record.get(3), record.get(4), record.len()) {
            (Some(Value::String(t)), Some(Value::String(d)), Some(last), 5) => {
                if t.len() > 255 || d.len() > MAX_ASSET_PIECE {
                    return Err("an asset piece is too large");
                }
                let last = match last {
                    Value::Bool(b) => *b,
                    Value::Number(n) => n.as_u64() == Some(1),
                    _ => return Err("an asset piece's `last` is 0 or 1"),
                };
                Ok(AssetReply::Piece {
                    id,
                    content_type: t.clone(),
                    data: d.clone(),
                    last,
                })
            }
            (Some(Value::Number(z)), Some(Value::String(r)), None, 4)
                if z.as_u64() == Some(0) && r.len() <= 64 =>
            {
                Ok(AssetReply::Refused {
                    id,
                    reason: r.clone(),
                })
            }
            _ => Err("an asset record is [\"a\", id, type, data, last] or [\"a\", id, 0, reason]"),
        }
    }
}

impl MirrorData {
    /// An array of at most [`MAX_MIRROR_RECORDS`] records, each an array whose first
    /// element is a one-letter kind. Read as a stream: nothing of it is kept.
    pub fn check(&self) -> Result<(), &'static str> {
        use serde::de::{Deserializer as _, IgnoredAny, SeqAccess, Visitor};
        struct Records;
        struct Record;
        impl<'de> Visitor<'de> for Records {
            type Value = ();
            fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                f.write_str("an array of records")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                let mut n = 0usize;
                while seq.next_element_seed(RecordSeed)?.is_some() {
                    n += 1;
                    if n > MAX_MIRROR_RECORDS {
                        return Err(serde::de::Error::custom("too many records"));
                    }
                }
                Ok(())
            }
        }
        struct RecordSeed;
        impl<'de> serde::de::DeserializeSeed<'de> for RecordSeed {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_seq(Record)
            }
        }
        impl<'de> Visitor<'de> for Record {
            type Value = ();
            fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                f.write_str("a record")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                if seq.next_element::<RecordKind>()?.is_none() {
                    return Err(serde::de::Error::custom("bad kind"));
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(())
            }
        }
        let mut d = serde_json::Deserializer::from_str(self.text());
        match d.deserialize_seq(Records) {
            Ok(()) => Ok(()),
            Err(e) if e.to_string().starts_with("too many records") => Err("has too many records"),
            Err(e)
                if e.to_string().starts_with("invalid type")
                    && !self.text().trim_start().starts_with('[') =>
            {
                Err("must be an array of records")
            }
            Err(_) => Err("records must be arrays starting with a one-letter kind"),
        }
    }
}

/// A mirror record's kind: a string of one ASCII letter, however the JSON writes it
/// (`"S"`, or `"\u0053"`: a borrowed `&str` would refuse the escaped form).
struct RecordKind(u8);

impl<'de> Deserialize<'de> for RecordKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RecordKind, D::Error> {
        struct Letter;
        impl serde::de::Visitor<'_> for Letter {
            type Value = RecordKind;
            fn expecting(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
                f.write_str("a one-letter kind")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RecordKind, E> {
                match s.as_bytes() {
                    [b] if b.is_ascii_alphabetic() => Ok(RecordKind(*b)),
                    _ => Err(E::custom("bad kind")),
                }
            }
        }
        d.deserialize_str(Letter)
    }
}

/// The body of `POST /api/v1/journey/beacon` (`navigator.sendBeacon` on `pagehide`):
/// a `track` batch that carries its own identification, since no socket does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct TrackBeacon {
    /// The account's public key.
    pub api_key: String,
    /// The visitor's stable id.
    pub short_id: String,
    /// The tab's connection, when it had one.
    #[serde(rename = "uniqueConnectionId", default)]
    pub unique_connection_id: Option<String>,
    /// The visitor's secret: a beacon without it (or with a wrong one) stores nothing.
    #[serde(default)]
    pub visitor_secret: Option<String>,
    pub sent_at: u64,
    pub events: Vec<TrackEvent>,
}

/// Server → visitor (SDK). `Deserialize` is written by hand below: it is the one
/// decoder in the wasm bundle, and the derived one for a `type`-tagged enum costs ~40 KB.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerToVisitor {
    Welcome {
        protocol_version: u32,
        short_id: String,
        #[serde(rename = "uniqueConnectionId")]
        unique_connection_id: String,
        lookup_code: Option<String>,
        /// Only in a new visitor's welcome (or the first since secrets existed): the
        /// secret the SDK keeps next to `short_id` and sends in every hello and beacon.
        visitor_secret: Option<String>,
    },
    SessionRequest {
        session_id: String,
        agent: Agent,
        /// The account records this session (issue 18): the prompt says so.
        #[serde(default)]
        recorded: bool,
    },
    SessionStart {
        session_id: String,
    },
    SessionContinue {
        session_id: String,
    },
    SessionEnd {
        session_id: String,
        #[serde(rename = "disconnectType")]
        disconnect_type: DisconnectType,
    },
    ControlRequest {
        agent: Agent,
    },
    ControlStart {
        agent_id: String,
    },
    ControlEnd {
        agent_id: String,
        reason: ControlEndReason,
    },
    /// The prompt this tab shows moved to another tab of the visitor: hide it.
    PromptWithdrawn {
        prompt: PromptKind,
    },
    /// The visitor-side view of everything, sent after each change.
    State {
        state: Box<VisitorState>,
    },
    HeartbeatAck,
    Error(ErrorFrame),
    /// Co-browsing: the agent `agent_id`, in control, asks the page to do `action`.
    RemoteAction {
        id: u32,
        agent_id: String,
        action: RemoteAction,
    },
    /// Co-browsing: an agent needs a fresh snapshot of the page (new epoch).
    MirrorResync,
    /// Assets through covisit (issue 15 item 5): the server could not fetch `url`, an
    /// absolute `http(s)` URL, itself (behind the visitor's login, on the visitor's
    /// machine, a font without CORS): the page's capture may send it from the visitor's
    /// browser, as [`AssetReply`] records of its `mirror` frames. Sent only while the
    /// session is active; the capture answers only for a URL of the page's own origin
    /// that it sent in this session's records itself (never a masked element's), and only
    /// a style sheet, a font or an image.
    AssetRequest {
        id: u32,
        url: String,
    },
    /// Co-browsing: the agent `agent_id` (`name`, ink colour `color`: an index into the
    /// palette of [`INK_COLORS`]) points or draws on this tab. Shown only while the
    /// session is active and the page's `allowAgentDrawing` is true.
    ///
    /// `ink` is an [`Ink`] (the server writes only checked ones) carried as JSON: the SDK
    /// checks that it is an object and hands it to the page's drawing layer, which reads
    /// it number by number and trusts none of it. Decoding it field by field in Rust
    /// cost the first-load bundle 3 KB of its 60 (issue 16).
    Draw {
        agent_id: String,
        name: String,
        color: u32,
        #[cfg_attr(test, ts(type = "Ink"))]
        ink: Json,
    },
    /// Calls and sharing (issue 17): a [`CallToVisitor`] (the server writes only
    /// those), carried as JSON for the SDK's on-demand call file, which reads it;
    /// the wasm checks only that it is an object, and passes it on while the session
    /// is active.
    Call {
        #[cfg_attr(test, ts(type = "CallToVisitor"))]
        call: Json,
    },
    #[serde(other)]
    #[cfg_attr(test, ts(skip))]
    Unknown,
}

impl<'de> Deserialize<'de> for ServerToVisitor {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Json::deserialize(deserializer)?;
        server_to_visitor_from_value(value).map_err(serde::de::Error::custom)
    }
}

/// Reads fields out of a decoded frame by hand: no serde-derived deserializer (and none
/// of serde's error formatting) reaches the SDK's wasm.
struct Fields(Object);

impl Fields {
    fn text(&mut self, key: &'static str) -> Result<String, String> {
        match self.0.remove(key) {
            Some(Json::String(s)) => Ok(s),
            _ => Err(["field `", key, "` must be a string"].concat()),
        }
    }

    fn opt_text(&mut self, key: &'static str) -> Result<Option<String>, String> {
        match self.0.remove(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(_) => Err(["field `", key, "` must be a string or null"].concat()),
        }
    }

    fn flag(&mut self, key: &'static str) -> Result<bool, String> {
        match self.0.remove(key) {
            Some(Json::Bool(b)) => Ok(b),
            _ => Err(["field `", key, "` must be a boolean"].concat()),
        }
    }

    /// A boolean that may be absent (false), as `#[serde(default)]` reads it.
    fn opt_flag(&mut self, key: &'static str) -> Result<bool, String> {
        match self.0.remove(key) {
            None => Ok(false),
            Some(Json::Bool(b)) => Ok(b),
            Some(_) => Err(["field `", key, "` must be a boolean"].concat()),
        }
    }

    fn number(&mut self, key: &'static str) -> Result<u32, String> {
        self.0
            .remove(key)
            .and_then(|v| v.as_u64())
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ["field `", key, "` must be a whole number"].concat())
    }

    fn object(&mut self, key: &'static str) -> Result<Fields, String> {
        match self.0.remove(key) {
            Some(Json::Object(m)) => Ok(Fields(m)),
            _ => Err(["field `", key, "` must be an object"].concat()),
        }
    }

    fn opt_object(&mut self, key: &'static str) -> Result<Option<Json>, String> {
        match self.0.remove(key) {
            None | Some(Json::Null) => Ok(None),
            Some(v @ Json::Object(_)) => Ok(Some(v)),
            Some(_) => Err(["field `", key, "` must be an object or null"].concat()),
        }
    }

    fn agent(&mut self, key: &'static str) -> Result<Agent, String> {
        let mut a = self.object(key)?;
        Ok(Agent {
            agent_nickname: a.text("agent_nickname")?,
            email: a.opt_text("email")?,
            external_id: a.opt_text("external_id")?,
            id: a.text("id")?,
            name: a.text("name")?,
            on_premise: a.flag("on_premise")?,
        })
    }

    fn one_of<T: Copy>(&mut self, key: &'static str, values: &[(&str, T)]) -> Result<T, String> {
        let text = self.text(key)?;
        values
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, v)| *v)
            .ok_or_else(|| ["field `", key, "` has an unknown value"].concat())
    }
}

fn server_to_visitor_from_value(value: Json) -> Result<ServerToVisitor, String> {
    use ControlEndReason as R;
    use DisconnectType as D;
    let Json::Object(map) = value else {
        return Err("a frame must be a JSON object".into());
    };
    let mut f = Fields(map);
    let kind = f.text("type")?;
    Ok(match kind.as_str() {
        "welcome" => ServerToVisitor::Welcome {
            protocol_version: f.number("protocol_version")?,
            short_id: f.text("short_id")?,
            unique_connection_id: f.text("uniqueConnectionId")?,
            lookup_code: f.opt_text("lookup_code")?,
            visitor_secret: f.opt_text("visitor_secret")?,
        },
        "session_request" => ServerToVisitor::SessionRequest {
            session_id: f.text("session_id")?,
            agent: f.agent("agent")?,
            recorded: f.opt_flag("recorded")?,
        },
        "session_start" => ServerToVisitor::SessionStart {
            session_id: f.text("session_id")?,
        },
        "session_continue" => ServerToVisitor::SessionContinue {
            session_id: f.text("session_id")?,
        },
        "session_end" => ServerToVisitor::SessionEnd {
            session_id: f.text("session_id")?,
            disconnect_type: f.one_of(
                "disconnectType",
                &[
                    ("client", D::Client),
                    ("peer", D::Peer),
                    ("system", D::System),
                    ("transport.failure", D::TransportFailure),
                    ("timeout", D::Timeout),
                ],
            )?,
        },
        "control_request" => ServerToVisitor::ControlRequest {
            agent: f.agent("agent")?,
        },
        "control_start" => ServerToVisitor::ControlStart {
            agent_id: f.text("agent_id")?,
        },
        "control_end" => ServerToVisitor::ControlEnd {
            agent_id: f.text("agent_id")?,
            reason: f.one_of(
                "reason",
                &[
                    ("denied", R::Denied),
                    ("revoked_by_visitor", R::RevokedByVisitor),
                    ("revoked_by_agent", R::RevokedByAgent),
                    ("focus_lost", R::FocusLost),
                    ("session_ended", R::SessionEnded),
                ],
            )?,
        },
        "prompt_withdrawn" => ServerToVisitor::PromptWithdrawn {
            prompt: f.one_of(
                "prompt",
                &[
                    ("session", PromptKind::Session),
                    ("control", PromptKind::Control),
                ],
            )?,
        },
        "state" => {
            let mut state = f.object("state")?;
            ServerToVisitor::State {
                state: Box::new(VisitorState {
                    status: state.one_of(
                        "status",
                        &[
                            ("none", SessionStatus::None),
                            ("authorizing", SessionStatus::Authorizing),
                            ("active", SessionStatus::Active),
                            ("ended", SessionStatus::Ended),
                        ],
                    )?,
                    connection: state.opt_object("connection")?,
                    communication: state.opt_object("communication")?,
                }),
            }
        }
        "heartbeat_ack" => ServerToVisitor::HeartbeatAck,
        "error" => ServerToVisitor::Error(ErrorFrame {
            code: f.text("code")?,
            message: f.text("message")?,
        }),
        "remote_action" | "mirror_resync" => mirror_frame_from_fields(&kind, f)?,
        "asset_request" => ServerToVisitor::AssetRequest {
            id: f.number("id")?,
            url: f.text("url")?,
        },
        "draw" => draw_frame_from_fields(f)?,
        "call" => ServerToVisitor::Call {
            call: f
                .opt_object("call")?
                .ok_or("field `call` must be an object")?,
        },
        _ => ServerToVisitor::Unknown,
    })
}

/// Agent console → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// First frame. A console signs in with its session cookie and sends only
    /// `protocol_version`; an integration sends the account's `secret_key` with the
    /// agent's `name` and its own `external_id` (required: it makes the `ea_…` id).
    Hello {
        protocol_version: u32,
        #[serde(default)]
        secret_key: Option<String>,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        external_id: Option<String>,
    },
    Heartbeat,
    /// Ask a visitor for a session; `lookup_code` when the agent found it by code.
    RequestSession {
        short_id: String,
        found_by: FoundBy,
    },
    /// Join an existing session as another viewer.
    JoinSession {
        session_id: String,
    },
    EndSession {
        session_id: String,
    },
    LeaveSession {
        session_id: String,
    },
    Note {
        session_id: String,
        text: String,
    },
    RequestControl {
        session_id: String,
    },
    ReleaseControl {
        session_id: String,
    },
    /// Co-browsing: act on the visitor's page (only while this agent controls it).
    /// `tab`: the mirror tab the agent acted in; refused when it is not the controlled one.
    RemoteAction {
        session_id: String,
        #[serde(default)]
        tab: Option<String>,
        action: RemoteAction,
    },
    /// Co-browsing: point or draw on the visitor's tab `tab` (its `uniqueConnectionId`),
    /// without control. Relayed to that tab and to the session's other agents.
    Draw {
        session_id: String,
        tab: String,
        ink: Ink,
    },
    /// The seed's `setActiveConnection`: the tab (`uniqueConnectionId`) this agent
    /// watches; null to follow the tab the visitor is in. Recorded in
    /// `session_update.watching`; the tab is asked for a fresh snapshot.
    SetActiveConnection {
        session_id: String,
        #[serde(rename = "uniqueConnectionId")]
        unique_connection_id: Option<String>,
    },
    /// Co-browsing: ask the visitor's tabs for a fresh snapshot (e.g. after joining).
    MirrorResync {
        session_id: String,
    },
    /// This agent rates an ended session it was part of (1–5, optional comment); a
    /// second rating replaces its first. Goes into the Session's `quality_feedback`.
    RateSession {
        session_id: String,
        rating: u8,
        #[serde(default)]
        feedback: Option<String>,
    },
    /// Search the account's online visitors (a lookup code, unique id, id, identity,
    /// tag, name or email: the REST search's rule); answered with `search_result`.
    Search {
        q: String,
    },
    /// This agent shows this visitor (it opened it): its updates come here too.
    Watch {
        short_id: String,
    },
    /// Calls and sharing (issue 17): the agent's side of the signalling, for the
    /// active session `session_id`.
    Call {
        session_id: String,
        call: CallFromAgent,
    },
    #[serde(other)]
    #[cfg_attr(test, ts(skip))]
    Unknown,
}

/// How the agent found the visitor (decides the seed Session `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum FoundBy {
    LookupCode,
    Search,
}

/// Where remote control of a session stands (`session_update.control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum ControlPhase {
    #[default]
    None,
    Requested,
    Granted,
}

/// `session_update.control`: `agent_id` is the agent asking or controlling (with
/// `none`, the agent whose request or control last ended, if any); `reason` is why
/// control last ended in this session (`denied` when the visitor declined), or null.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct SessionControl {
    pub state: ControlPhase,
    pub agent_id: Option<String>,
    pub reason: Option<ControlEndReason>,
    /// Co-browsing: the tab (`uniqueConnectionId`, the `tab` of `mirror` frames) that
    /// is controlled while `state` is `granted`; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tab: Option<String>,
}

/// Server → agent console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerToAgent {
    Welcome {
        protocol_version: u32,
        agent: Agent,
    },
    /// The online visitors, sent after hello in pages (a page is a small frame, which
    /// the socket's write buffer is not left holding): `more` on all but the last.
    Visitors {
        visitors: Vec<Visitor>,
        #[serde(default)]
        more: bool,
    },
    VisitorUpdate {
        visitor: Visitor,
    },
    /// Held-back changes of several watched visitors, each one's latest state, sent
    /// together at most once a broadcast tick (docs/PROTOCOL.md says which go this way).
    VisitorUpdates {
        visitors: Vec<Visitor>,
    },
    SessionUpdate {
        session: Session,
        status: SessionStatus,
        controlling_agent_id: Option<String>,
        communications: Vec<Cobrowsesession>,
        /// Remote control in this session: whether a request is pending, granted, or
        /// neither, and why it last ended (e.g. the visitor declined).
        #[serde(default)]
        control: SessionControl,
        /// What the visitor's page tells agents (its `agentPrompt` config), if anything.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent_prompt: Option<String>,
        /// The visitor's open tabs (seed Connection objects), while the session is live.
        #[serde(default)]
        connections: Vec<Connection>,
        /// The tab each agent chose to watch (`set_active_connection`): agent id →
        /// `uniqueConnectionId`. An agent not named follows the tab the visitor is in.
        #[serde(default)]
        watching: std::collections::BTreeMap<String, String>,
        /// The session's call and share (issue 17); boxed: the frame is large enough.
        #[serde(default)]
        call: Box<SessionCall>,
    },
    HeartbeatAck,
    Error(ErrorFrame),
    /// Co-browsing: mirror records of the visitor's tab `tab` (its `uniqueConnectionId`).
    Mirror {
        session_id: String,
        tab: String,
        data: MirrorData,
    },
    /// The answer to this agent's `search`: the account's online visitors that match
    /// `q` (at most 50), which this agent's list now shows.
    SearchResult {
        q: String,
        visitors: Vec<Visitor>,
    },
    /// Co-browsing: what became of this agent's remote action `id`.
    RemoteResult {
        session_id: String,
        id: u32,
        kind: RemoteKind,
        ok: bool,
        reason: Option<RemoteRefusal>,
    },
    /// Co-browsing: another agent of the session points or draws on the visitor's tab
    /// `tab` (as the visitor's tab gets it, see [`ServerToVisitor::Draw`]).
    Draw {
        session_id: String,
        tab: String,
        agent_id: String,
        name: String,
        color: u32,
        ink: Ink,
    },
    /// Calls and sharing (issue 17): to the console that has the call or asked for
    /// the share.
    Call {
        session_id: String,
        call: CallToAgent,
    },
    /// The remote console: lines of the visitor's tab `tab`, to the session's agents,
    /// only while the session is active and that page allows it (`allowRemoteConsole`).
    Console {
        session_id: String,
        tab: String,
        entries: Vec<ConsoleEntry>,
    },
    #[serde(other)]
    #[cfg_attr(test, ts(skip))]
    Unknown,
}

/// The embedded state the SDK exposes as `state()`: the seed's objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct VisitorState {
    pub status: SessionStatus,
    /// The tab's seed Connection object (camelCase, every field).
    #[cfg_attr(test, ts(type = "Connection | null"))]
    pub connection: Option<Json>,
    /// The visitor's seed Cobrowsesession (camelCase, every field that applies).
    #[cfg_attr(test, ts(type = "Cobrowsesession | null"))]
    pub communication: Option<Json>,
}

impl VisitorState {
    /// Builds the frame from the typed seed objects. The tab mirrors them without
    /// decoding their fields, which keeps their deserializers out of the wasm bundle.
    pub fn new(
        status: SessionStatus,
        connection: Option<&Connection>,
        communication: Option<&Cobrowsesession>,
    ) -> Self {
        VisitorState {
            status,
            connection: connection
                .and_then(|c| serde_json::to_value(c).ok())
                .map(Json::from),
            communication: communication
                .and_then(|c| serde_json::to_value(c).ok())
                .map(Json::from),
        }
    }
}

/// Co-browsing: what an agent in control asks the visitor's page to do. `node` is a
/// mirror node id (docs/MIRROR.md); `x`/`y` of a click are CSS pixels inside the node's
/// box, of a scroll the node's (0: the page's) scroll position, of a pointer the
/// viewport position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RemoteAction {
    Click {
        node: u32,
        x: u32,
        y: u32,
    },
    Scroll {
        node: u32,
        x: u32,
        y: u32,
    },
    Type {
        node: u32,
        value: String,
    },
    /// Same-origin navigation (`allowAgentRedirect`).
    Redirect {
        url: String,
    },
    /// Where the agent's pointer is: shown to the visitor, changes nothing.
    Pointer {
        x: u32,
        y: u32,
    },
}

/// The kinds of [`RemoteAction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum RemoteKind {
    Click,
    Scroll,
    Type,
    Redirect,
    Pointer,
}

/// Why the visitor's page did not apply a remote action (`remote_applied.reason`, passed
/// on to the agent as `remote_result.reason`). The SDK's client refuses with the first
/// three before the page sees the action; the page's capture (`src/web/mirror.js`)
/// refuses with the others.
// `Serialize` is written by hand (through `as_str`, an index into one table): the SDK's
// wasm then carries the names once, for both directions it needs (`from_page` and the
// frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum RemoteRefusal {
    /// The target is masked, or is not an element.
    MaskedTarget,
    /// The agent who sent it does not control the page.
    ControlNotGranted,
    /// The config does not allow this kind ([`RemoteKind::permission`]).
    PermissionDenied,
    /// The session is not active in this tab.
    SessionNotActive,
    /// A `type` into something that takes no typing (disabled, read-only, not a field).
    NotEditable,
    /// No node with this id (it is gone, or never was).
    UnknownNode,
    /// A `redirect` to another origin.
    CrossOrigin,
    /// The page is still being captured, or the capture has not loaded yet.
    NotReady,
    /// A kind this SDK does not know.
    UnknownAction,
    /// Applying it threw. A reason this side does not know reads as this one too (a
    /// newer SDK's), so an agent always hears an answer.
    #[serde(other)]
    Failed,
}

impl RemoteRefusal {
    /// Every reason, in the order PROTOCOL.md lists them.
    pub const ALL: [RemoteRefusal; 10] = [
        RemoteRefusal::MaskedTarget,
        RemoteRefusal::ControlNotGranted,
        RemoteRefusal::PermissionDenied,
        RemoteRefusal::SessionNotActive,
        RemoteRefusal::NotEditable,
        RemoteRefusal::UnknownNode,
        RemoteRefusal::CrossOrigin,
        RemoteRefusal::NotReady,
        RemoteRefusal::UnknownAction,
        RemoteRefusal::Failed,
    ];

    /// The wire spellings, in the order of the variants (and of [`Self::ALL`]).
    const NAMES: [&'static str; 10] = [
        "masked_target",
        "control_not_granted",
        "permission_denied",
        "session_not_active",
        "not_editable",
        "unknown_node",
        "cross_origin",
        "not_ready",
        "unknown_action",
        "failed",
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        RemoteRefusal::NAMES[self as usize]
    }

    /// What the page's capture answered (its `apply()`); text that is none of these
    /// (a bug in the capture) reads as [`RemoteRefusal::Failed`].
    pub fn from_page(text: &str) -> RemoteRefusal {
        RemoteRefusal::NAMES
            .iter()
            .position(|n| *n == text)
            .map_or(RemoteRefusal::Failed, |i| RemoteRefusal::ALL[i])
    }
}

impl Serialize for RemoteRefusal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The longest `value` a remote `type` action may carry.
pub const MAX_REMOTE_VALUE_LEN: usize = 16 * 1024;

impl RemoteAction {
    pub fn kind(&self) -> RemoteKind {
        match self {
            RemoteAction::Click { .. } => RemoteKind::Click,
            RemoteAction::Scroll { .. } => RemoteKind::Scroll,
            RemoteAction::Type { .. } => RemoteKind::Type,
            RemoteAction::Redirect { .. } => RemoteKind::Redirect,
            RemoteAction::Pointer { .. } => RemoteKind::Pointer,
        }
    }
}

impl RemoteKind {
    /// The config permission (its seed Connection key) an agent in control needs for
    /// this kind of action; pointer moves need none. The SDK checks it before the page
    /// acts, the server before it relays (`permission_denied`).
    pub fn permission(self) -> Option<&'static str> {
        match self {
            RemoteKind::Click => Some("allowRemoteClick"),
            RemoteKind::Scroll => Some("allowRemoteScroll"),
            RemoteKind::Type => Some("allowRemoteType"),
            RemoteKind::Redirect => Some("allowAgentRedirect"),
            RemoteKind::Pointer => None,
        }
    }

    /// Whether `p` lets an agent in control do this kind of action ([`Self::permission`]).
    pub fn allowed_by(self, p: &Permissions) -> bool {
        match self {
            RemoteKind::Click => p.allow_remote_click,
            RemoteKind::Scroll => p.allow_remote_scroll,
            RemoteKind::Type => p.allow_remote_type,
            RemoteKind::Redirect => p.allow_agent_redirect,
            RemoteKind::Pointer => true,
        }
    }

    /// The Session `features_used` entry an applied action of this kind records.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            RemoteKind::Click => Some("remote_click"),
            RemoteKind::Scroll => Some("remote_scroll"),
            RemoteKind::Type => Some("remote_typing"),
            RemoteKind::Redirect => Some("agent_redirect"),
            RemoteKind::Pointer => None,
        }
    }
}

/// How many ink colours there are: an agent's colour is its index in the session's
/// `agents` (the seed Session's, in the order they joined) modulo this. The SDK and the
/// console map the index to the same palette, so no colour string crosses the wire.
pub const INK_COLORS: u32 = 8;
/// Ink coordinates are CSS pixels within ±this.
pub const MAX_INK_COORD: i32 = 1_000_000;
/// The most points one `stroke` frame carries (a longer stroke comes in several frames).
pub const MAX_INK_POINTS: usize = 256;
/// The largest `ink` the SDK takes, as JSON text (256 points of ±1000000 fit in 5 KiB).
pub const MAX_INK_JSON: usize = 8 * 1024;

/// Co-browsing: what an agent shows on the visitor's page without control, anchored to
/// the page's content. `node` is a mirror node id of the tab (docs/MIRROR.md; 0: the
/// document) and `ox`/`oy` where that node's box began in the page (document pixels)
/// when the agent drew: the page places the ink relative to the node wherever it is
/// now, and at `ox`/`oy` when it no longer has the node (or `epoch`, the mirror epoch
/// the id belongs to, is not the page's current one: ids are per epoch). Points are CSS
/// pixels from that origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Ink {
    /// The agent's laser dot; it fades unless it moves again.
    Laser {
        node: u32,
        #[serde(default)]
        epoch: u32,
        ox: i32,
        oy: i32,
        x: i32,
        y: i32,
    },
    /// Freehand ink or an arrow (from its first point to its last). A frame with a new
    /// `id` starts the stroke; more frames with that `id` add `points`; `done` when the
    /// agent let go, after which it fades in a few seconds unless `pinned`.
    Stroke {
        id: u32,
        node: u32,
        /// The mirror epoch `node` belongs to (0: unknown, the node is taken as it is).
        #[serde(default)]
        epoch: u32,
        ox: i32,
        oy: i32,
        shape: InkShape,
        pinned: bool,
        done: bool,
        points: Vec<[i32; 2]>,
    },
    /// Take away every ink of this agent.
    Clear,
}

/// The shapes of an [`Ink::Stroke`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum InkShape {
    Free,
    Arrow,
}

/// An ink as `ServerToVisitor::Draw` carries it (the server's side; the SDK never
/// writes one).
impl From<&Ink> for Json {
    fn from(ink: &Ink) -> Json {
        serde_json::to_value(ink)
            .map(Json::from)
            .unwrap_or(Json::Null)
    }
}

impl Ink {
    /// The Session `features_used` entry this ink records.
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            Ink::Laser { .. } => Some("laser"),
            Ink::Stroke { .. } => Some("drawing"),
            Ink::Clear => None,
        }
    }

    /// Checks the limits a decoder cannot: coordinates within ±[`MAX_INK_COORD`], at
    /// most [`MAX_INK_POINTS`] points (at least one).
    pub fn check(&self) -> Result<(), &'static str> {
        let ok = |v: i32| v.unsigned_abs() <= MAX_INK_COORD as u32;
        match self {
            Ink::Laser { ox, oy, x, y, .. } => {
                if [*ox, *oy, *x, *y].into_iter().all(ok) {
                    Ok(())
                } else {
                    Err("ink coordinates must be within ±1000000")
                }
            }
            Ink::Stroke { ox, oy, points, .. } => {
                if points.is_empty() || points.len() > MAX_INK_POINTS {
                    Err("a stroke frame carries 1 to 256 points")
                } else if [*ox, *oy]
                    .into_iter()
                    .chain(points.iter().flatten().copied())
                    .all(ok)
                {
                    Ok(())
                } else {
                    Err("ink coordinates must be within ±1000000")
                }
            }
            Ink::Clear => Ok(()),
        }
    }
}

/// The `draw` frame of the hand-written `ServerToVisitor` decoder: the colour within the
/// palette, the ink an object of at most [`MAX_INK_JSON`] bytes; its fields are the
/// drawing layer's to read (see [`ServerToVisitor::Draw`]).
fn draw_frame_from_fields(mut f: Fields) -> Result<ServerToVisitor, String> {
    let agent_id = f.text("agent_id")?;
    let name = f.text("name")?;
    let color = f.number("color")?;
    if color >= INK_COLORS {
        return Err("field `color` must be below 8".into());
    }
    let ink = f
        .opt_object("ink")?
        .ok_or("field `ink` must be an object")?;
    if ink.to_text().len() > MAX_INK_JSON {
        return Err("field `ink` is too large".into());
    }
    Ok(ServerToVisitor::Draw {
        agent_id,
        name,
        color,
        ink,
    })
}

/// The co-browsing frames of the hand-written `ServerToVisitor` decoder.
fn mirror_frame_from_fields(kind: &str, mut f: Fields) -> Result<ServerToVisitor, String> {
    if kind == "mirror_resync" {
        return Ok(ServerToVisitor::MirrorResync);
    }
    let id = f.number("id")?;
    let agent_id = f.text("agent_id")?;
    let mut a = f.object("action")?;
    let action = match a.text("kind")?.as_str() {
        "click" => RemoteAction::Click {
            node: a.number("node")?,
            x: a.number("x")?,
            y: a.number("y")?,
        },
        "scroll" => RemoteAction::Scroll {
            node: a.number("node")?,
            x: a.number("x")?,
            y: a.number("y")?,
        },
        "type" => RemoteAction::Type {
            node: a.number("node")?,
            value: a.text("value")?,
        },
        "redirect" => RemoteAction::Redirect {
            url: a.text("url")?,
        },
        "pointer" => RemoteAction::Pointer {
            x: a.number("x")?,
            y: a.number("y")?,
        },
        _ => return Err("field `action.kind` has an unknown value".into()),
    };
    Ok(ServerToVisitor::RemoteAction {
        id,
        agent_id,
        action,
    })
}

/// An error answered on a socket; the socket and the session survive it. `code` is
/// text, not an [`ErrorCode`], so that a newer peer's code still decodes; what this side
/// sends comes from the registry through [`ErrorFrame::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ErrorFrame {
    pub code: String,
    pub message: String,
}

impl ErrorFrame {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorFrame {
        ErrorFrame {
            code: code.as_str().to_string(),
            message: message.into(),
        }
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    FrameTooLarge { size: usize, limit: usize },
    Malformed { detail: String },
    UnknownType { type_name: String },
    UnsupportedVersion { got: u32, expected: u32 },
}

crate::core::text::message_display!(ProtocolError);

impl ProtocolError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::FrameTooLarge { .. } => ErrorCode::FRAME_TOO_LARGE,
            ProtocolError::Malformed { .. } => ErrorCode::MALFORMED_FRAME,
            ProtocolError::UnknownType { .. } => ErrorCode::UNKNOWN_MESSAGE_TYPE,
            ProtocolError::UnsupportedVersion { .. } => ErrorCode::UNSUPPORTED_PROTOCOL_VERSION,
        }
    }

    pub fn to_frame(&self) -> ErrorFrame {
        ErrorFrame::new(self.code(), self.message())
    }

    /// The message for people (no `core::fmt`: see [`crate::core::text`]).
    pub fn message(&self) -> String {
        use crate::core::text::decimal;
        let n = |v: u64| decimal(v, 0);
        match self {
            ProtocolError::FrameTooLarge { size, limit } => [
                "frame of ",
                &n(*size as u64),
                " bytes is larger than the limit of ",
                &n(*limit as u64),
            ]
            .concat(),
            ProtocolError::Malformed { detail } => {
                ["frame is not valid JSON for this protocol: ", detail].concat()
            }
            ProtocolError::UnknownType { type_name } => {
                ["unknown message type `", type_name, "`"].concat()
            }
            ProtocolError::UnsupportedVersion { got, expected } => [
                "protocol version ",
                &n(u64::from(*got)),
                " is not supported (this side speaks ",
                &n(u64::from(*expected)),
                ")",
            ]
            .concat(),
        }
    }
}

/// Messages that carry a catch-all `Unknown` variant and a versioned `Hello`.
pub trait WireMessage: Serialize + for<'de> Deserialize<'de> {
    fn is_unknown(&self) -> bool;
    /// The protocol version a hello announces; `None` for other messages.
    fn hello_version(&self) -> Option<u32> {
        None
    }
    /// Builds a `mirror` message from its parts, for the types that have one. Serde
    /// cannot read a [`MirrorData`] through an internally tagged enum (it buffers the
    /// frame first), so [`decode`] reads mirror frames through [`MirrorFrame`].
    fn from_mirror(_frame: MirrorFrame<'_>) -> Option<Self> {
        None
    }
}

/// The fields of a `mirror` frame, borrowed from its text: one pass over the frame,
/// the records kept as text.
#[derive(Deserialize)]
pub struct MirrorFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawJson,
    #[serde(default)]
    session_id: Option<String>,
    #[serde(default)]
    tab: Option<String>,
}

impl MirrorFrame<'_> {
    fn data(&self) -> MirrorData {
        // Box<RawValue> natively, Box<str> from a &str in the wasm.
        #[allow(clippy::useless_conversion)]
        MirrorData(self.data.to_owned().into())
    }
}

impl VisitorMessage {
    fn mirror_of(frame: MirrorFrame<'_>) -> Option<VisitorMessage> {
        Some(VisitorMessage::Mirror { data: frame.data() })
    }
}

impl ServerToAgent {
    fn mirror_of(frame: MirrorFrame<'_>) -> Option<ServerToAgent> {
        let data = frame.data();
        Some(ServerToAgent::Mirror {
            session_id: frame.session_id?,
            tab: frame.tab?,
            data,
        })
    }
}

macro_rules! wire_message {
    ($t:ident) => {
        impl WireMessage for $t {
            fn is_unknown(&self) -> bool {
                matches!(self, $t::Unknown)
            }
        }
    };
    ($t:ident, mirror) => {
        impl WireMessage for $t {
            fn is_unknown(&self) -> bool {
                matches!(self, $t::Unknown)
            }
            fn from_mirror(frame: MirrorFrame<'_>) -> Option<Self> {
                $t::mirror_of(frame)
            }
        }
    };
    ($t:ident, hello, mirror) => {
        impl WireMessage for $t {
            fn is_unknown(&self) -> bool {
                matches!(self, $t::Unknown)
            }
            fn hello_version(&self) -> Option<u32> {
                match self {
                    $t::Hello {
                        protocol_version, ..
                    } => Some(*protocol_version),
                    _ => None,
                }
            }
            fn from_mirror(frame: MirrorFrame<'_>) -> Option<Self> {
                $t::mirror_of(frame)
            }
        }
    };
    ($t:ident, hello) => {
        impl WireMessage for $t {
            fn is_unknown(&self) -> bool {
                matches!(self, $t::Unknown)
            }
            fn hello_version(&self) -> Option<u32> {
                match self {
                    $t::Hello {
                        protocol_version, ..
                    } => Some(*protocol_version),
                    _ => None,
                }
            }
        }
    };
}

wire_message!(VisitorMessage, hello, mirror);
wire_message!(AgentMessage, hello);
wire_message!(ServerToVisitor);
wire_message!(ServerToAgent, mirror);

/// Decodes one frame: size limit first, then JSON, then the message type, then the
/// hello's protocol version. Unknown types are an error the caller answers with an
/// error frame while keeping the socket open.
pub fn decode<M: WireMessage>(frame: &str) -> Result<M, ProtocolError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::FrameTooLarge {
            size: frame.len(),
            limit: MAX_FRAME_BYTES,
        });
    }
    if let Ok(mirror) = serde_json::from_str::<MirrorFrame>(frame) {
        if mirror.kind == "mirror" {
            if let Some(message) = M::from_mirror(mirror) {
                return Ok(message);
            }
        }
    }
    let message: M = serde_json::from_str(frame).map_err(|e| ProtocolError::Malformed {
        detail: e.to_string(),
    })?;
    if message.is_unknown() {
        let type_name = serde_json::from_str::<Json>(frame)
            .ok()
            .and_then(|v| {
                v.get("type")
                    .and_then(Json::as_str)
                    .map(|s| s.chars().take(64).collect())
            })
            .unwrap_or_default();
        return Err(ProtocolError::UnknownType { type_name });
    }
    if let Some(got) = message.hello_version() {
        if got != PROTOCOL_VERSION {
            return Err(ProtocolError::UnsupportedVersion {
                got,
                expected: PROTOCOL_VERSION,
            });
        }
    }
    Ok(message)
}

/// Decodes a server frame the SDK already holds as a JSON value (the browser parsed
/// it): the same checks as [`decode`] after the JSON step, without a JSON parser.
pub fn decode_server_to_visitor(frame: Json) -> Result<ServerToVisitor, ProtocolError> {
    let type_name = frame
        .get("type")
        .and_then(Json::as_str)
        .map(|s| s.chars().take(64).collect());
    match server_to_visitor_from_value(frame) {
        Ok(ServerToVisitor::Unknown) => Err(ProtocolError::UnknownType {
            type_name: type_name.unwrap_or_default(),
        }),
        Ok(message) => Ok(message),
        Err(detail) => Err(ProtocolError::Malformed { detail }),
    }
}

/// Encodes one message as a JSON text frame.
pub fn encode<M: Serialize>(message: &M) -> String {
    // Cannot fail for these types (string keys only; serde_json writes non-finite
    // floats as null). Fall back to an error frame rather than panic all the same.
    serde_json::to_string(message).unwrap_or_else(|_e| {
        // The SDK's wasm leaves serde_json's message out: formatting it would bring
        // core::fmt into the bundle for a case that does not happen.
        #[cfg(target_arch = "wasm32")]
        let message = Json::from("the message could not be written as JSON").to_text();
        #[cfg(not(target_arch = "wasm32"))]
        let message = Json::String(_e.to_string()).to_text();
        [
            r#"{"type":"error","code":""#,
            ErrorCode::ENCODE_FAILED.as_str(),
            r#"","message":"#,
            &message,
            "}",
        ]
        .concat()
    })
}

// proptest needs OS randomness, so these run natively only.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod props;

#[cfg(test)]
mod tests {
    #[test]
    fn a_console_entrys_url_is_a_request_address_or_a_bare_scheme() {
        let entry = |url: &str| ConsoleEntry {
            kind: ConsoleKind::Network,
            at: 0,
            text: "GET x failed".into(),
            method: Some("GET".into()),
            url: Some(url.into()),
            status: None,
        };
        for ok in [
            "https://shop.example/api",
            "HTTP://x.example/",
            "wss://x.example/ws",
            "data:",
            "blob:",
            "",
        ] {
            assert!(entry(ok).check().is_ok(), "{ok}");
        }
        for bad in [
            "javascript:alert(1)",
            "data:text/html,<b>x</b>",
            "file:///etc/passwd",
            "https://u:p@x.example/",
            "https://x.example/?q=1",
            "/relative",
        ] {
            assert!(entry(bad).check().is_err(), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn hello_round_trips_and_checks_the_version() {
        let hello = VisitorMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            api_key: "pk_demo".into(),
            short_id: None,
            visitor_secret: Some("s3cret".into()),
            connection: ConnectionHello {
                has_focus: true,
                ..Default::default()
            },
            config: Json::Null,
        };
        let text = encode(&hello);
        assert!(text.contains(r#""type":"hello""#) && text.contains(r#""hasFocus":true"#));
        assert_eq!(decode::<VisitorMessage>(&text).unwrap(), hello);
        let future = text.replace(r#""protocol_version":1"#, r#""protocol_version":9"#);
        assert_eq!(
            decode::<VisitorMessage>(&future).unwrap_err(),
            ProtocolError::UnsupportedVersion {
                got: 9,
                expected: 1
            }
        );
    }

    #[test]
    fn unknown_types_and_garbage_are_errors_not_panics() {
        let e = decode::<VisitorMessage>(r#"{"type":"teleport","x":1}"#).unwrap_err();
        assert_eq!(e.code(), "unknown_message_type");
        assert_eq!(
            decode::<AgentMessage>("{not json").unwrap_err().code(),
            "malformed_frame"
        );
        assert_eq!(
            decode::<AgentMessage>(r#"{"no_type":1}"#)
                .unwrap_err()
                .code(),
            "malformed_frame"
        );
        let big = format!(
            r#"{{"type":"url","currentUrl":"{}"}}"#,
            "a".repeat(MAX_FRAME_BYTES)
        );
        assert_eq!(
            decode::<VisitorMessage>(&big).unwrap_err().code(),
            "frame_too_large"
        );
    }

    #[test]
    fn asset_records_decode_only_in_a_frame_of_their_own() {
        let data = |t: &str| MirrorData::from_text(t.to_string()).unwrap();
        assert_eq!(data(r#"[["S",1,"u",1,1,1]]"#).asset_reply(), None);
        assert_eq!(
            data(r#"[["a",7,"font/woff2","d09GMg==",0]]"#).asset_reply(),
            Some(Ok(AssetReply::Piece {
                id: 7,
                content_type: "font/woff2".into(),
                data: "d09GMg==".into(),
                last: false
            }))
        );
        let refused = data(r#"[["\u0061",8,0,"masked"]]"#).asset_reply();
        assert_eq!(
            refused,
            Some(Ok(AssetReply::Refused {
                id: 8,
                reason: "masked".into()
            }))
        );
        assert!(refused.unwrap().unwrap().is_last());
        for bad in [
            r#"[["a",7,"image/png","AA==",1],["p",1,2]]"#,
            r#"[["a",-1,"image/png","AA==",1]]"#,
            r#"[["a",7,"image/png","AA=="]]"#,
            r#"[["a",7,0,"masked",1]]"#,
            r#"[["a",7,"image/png",5,1]]"#,
        ] {
            assert!(matches!(data(bad).asset_reply(), Some(Err(_))), "{bad}");
        }
        let long = format!(
            r#"[["a",1,"image/png","{}",1]]"#,
            "A".repeat(MAX_ASSET_PIECE + 1)
        );
        assert!(matches!(data(&long).asset_reply(), Some(Err(_))));
    }

    #[test]
    fn error_frames_are_flat() {
        let text = encode(&ServerToVisitor::Error(ErrorFrame {
            code: "x".into(),
            message: "y".into(),
        }));
        assert_eq!(text, r#"{"type":"error","code":"x","message":"y"}"#);
        assert!(matches!(
            decode::<ServerToVisitor>(&text),
            Ok(ServerToVisitor::Error(_))
        ));
    }

    #[test]
    fn co_browsing_frames_round_trip_through_the_hand_written_decoder() {
        let frames = [
            ServerToVisitor::MirrorResync,
            ServerToVisitor::AssetRequest {
                id: 4_000_000_000,
                url: "https://shop.example/a b.png?x=\"1\"".into(),
            },
            ServerToVisitor::RemoteAction {
                id: 7,
                agent_id: "a_1".into(),
                action: RemoteAction::Click {
                    node: 12,
                    x: 3,
                    y: 4,
                },
            },
            ServerToVisitor::RemoteAction {
                id: 8,
                agent_id: "a_1".into(),
                action: RemoteAction::Type {
                    node: 5,
                    value: "h\u{e9}llo \"x\"".into(),
                },
            },
            ServerToVisitor::RemoteAction {
                id: 9,
                agent_id: "a_1".into(),
                action: RemoteAction::Redirect { url: "/x".into() },
            },
            ServerToVisitor::RemoteAction {
                id: 10,
                agent_id: "a_1".into(),
                action: RemoteAction::Scroll {
                    node: 0,
                    x: 0,
                    y: 900,
                },
            },
            ServerToVisitor::RemoteAction {
                id: 11,
                agent_id: "a_1".into(),
                action: RemoteAction::Pointer { x: 1, y: 2 },
            },
            ServerToVisitor::Draw {
                agent_id: "u_1".into(),
                name: "Ada <img src=x onerror=alert(1)>".into(),
                color: 7,
                ink: Json::from(&Ink::Stroke {
                    id: 3,
                    node: 0,
                    epoch: 0,
                    ox: -5,
                    oy: 900,
                    shape: InkShape::Arrow,
                    pinned: true,
                    done: true,
                    points: vec![[0, 0], [-MAX_INK_COORD, MAX_INK_COORD]],
                }),
            },
            ServerToVisitor::Draw {
                agent_id: "u_1".into(),
                name: String::new(),
                color: 0,
                ink: Json::from(&Ink::Laser {
                    node: 12,
                    epoch: 991_234,
                    ox: 0,
                    oy: 0,
                    x: 3,
                    y: -4,
                }),
            },
            ServerToVisitor::Draw {
                agent_id: "u_1".into(),
                name: "x".into(),
                color: 0,
                ink: Json::from(&Ink::Clear),
            },
        ];
        for frame in frames {
            let text = encode(&frame);
            assert_eq!(decode::<ServerToVisitor>(&text).unwrap(), frame, "{text}");
        }
        let bad =
            r#"{"type":"remote_action","id":1,"agent_id":"a","action":{"kind":"eval","code":"x"}}"#;
        assert_eq!(
            decode::<ServerToVisitor>(bad).unwrap_err().code(),
            "malformed_frame"
        );
        let negative = r#"{"type":"remote_action","id":1,"agent_id":"a","action":{"kind":"click","node":-1,"x":0,"y":0}}"#;
        assert_eq!(
            decode::<ServerToVisitor>(negative).unwrap_err().code(),
            "malformed_frame"
        );
    }

    #[test]
    fn agent_remote_actions_decode_with_and_without_a_tab() {
        let m = decode::<AgentMessage>(
            r#"{"type":"remote_action","session_id":"s","action":{"kind":"type","node":3,"value":"v"}}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            AgentMessage::RemoteAction {
                session_id: "s".into(),
                tab: None,
                action: RemoteAction::Type {
                    node: 3,
                    value: "v".into()
                }
            }
        );
        assert_eq!(RemoteKind::Type.feature(), Some("remote_typing"));
        assert_eq!(RemoteKind::Pointer.feature(), None);
    }

    #[test]
    fn refusal_reasons_are_snake_case_and_unknown_ones_read_as_failed() {
        for (i, r) in RemoteRefusal::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i, "ALL is in the variants' order");
            let text = encode(&r);
            assert_eq!(text, format!("\"{}\"", r.as_str()));
            // The derived decoder (serde's snake_case names) agrees with the table.
            assert_eq!(serde_json::from_str::<RemoteRefusal>(&text).unwrap(), r);
            assert_eq!(RemoteRefusal::from_page(r.as_str()), r);
        }
        assert_eq!(
            RemoteRefusal::from_page("teleported"),
            RemoteRefusal::Failed
        );
        let m = decode::<VisitorMessage>(
            r#"{"type":"remote_applied","id":3,"ok":false,"reason":"from_the_future"}"#,
        )
        .unwrap();
        assert_eq!(
            m,
            VisitorMessage::RemoteApplied {
                id: 3,
                ok: false,
                reason: Some(RemoteRefusal::Failed)
            }
        );
    }

    #[test]
    fn each_kind_needs_the_permission_it_names() {
        let kinds = [
            RemoteKind::Click,
            RemoteKind::Scroll,
            RemoteKind::Type,
            RemoteKind::Redirect,
            RemoteKind::Pointer,
        ];
        let all_off: Permissions = serde_json::from_value(serde_json::json!({
            "requireAuthorizationForSession": true, "requireControlRequest": true,
            "allowRemoteConsole": false, "allowAgentRedirect": false, "allowRemoteClick": false,
            "allowRemoteScroll": false, "allowRemoteType": false, "allowFullScreen": false,
            "allowRequestFullTab": false, "cobrowsingVideoEnabled": "disabled",
            "cobrowsingVideoAudioRelationship": "independent", "enableSessionRating": false,
            "agentPrompt": null, "assetsProxyConfigured": false
        }))
        .unwrap();
        for kind in kinds {
            let Some(key) = kind.permission() else {
                assert!(kind.allowed_by(&all_off), "{kind:?} needs no permission");
                continue;
            };
            assert!(!kind.allowed_by(&all_off), "{kind:?} with {key} off");
            let mut on = serde_json::to_value(&all_off).unwrap();
            on[key] = true.into();
            let on: Permissions = serde_json::from_value(on).unwrap();
            assert!(kind.allowed_by(&on), "{kind:?} with {key} on");
        }
    }

    #[test]
    fn mirror_records_are_checked_for_shape_and_kept_as_text() {
        let ok = MirrorData::from_text(
            r#"[["S", 1, "http://x", 800, 600, 1], ["N", 1, 0, [0, "html"], [1, 0, "t"]]]"#.into(),
        )
        .unwrap();
        assert_eq!(ok.check(), Ok(()));
        assert!(ok.starts_snapshot());
        let bad = MirrorData::from_text(r#"{"not":"an array"}"#.into()).unwrap();
        assert_eq!(bad.check(), Err("must be an array of records"));
        let bad = MirrorData::from_text(r#"[[1,2]]"#.into()).unwrap();
        assert_eq!(
            bad.check(),
            Err("records must be arrays starting with a one-letter kind")
        );
        assert!(!bad.starts_snapshot());
    }

    /// Regression: a kind written with a JSON escape (`"\u0053"` is `"S"`) was refused,
    /// and not seen as a snapshot, because it was read as borrowed text.
    #[test]
    fn mirror_kinds_are_read_as_json_strings_escapes_and_all() {
        let escaped = MirrorData::from_text(r#"[ ["\u0053", 1], ["\u0070"] ]"#.into()).unwrap();
        assert_eq!(escaped.check(), Ok(()));
        assert!(escaped.starts_snapshot());
        let not_a_letter = MirrorData::from_text(r#"[["\u00e9"]]"#.into()).unwrap();
        assert!(not_a_letter.check().is_err());
        assert!(!not_a_letter.starts_snapshot());
        let not_s = MirrorData::from_text(r#"[["\u0054"],["S"]]"#.into()).unwrap();
        assert_eq!(not_s.check(), Ok(()));
        assert!(!not_s.starts_snapshot());
    }

    #[test]
    fn mirror_frames_decode_with_their_records_untouched() {
        let text = r#"{"type":"mirror","data":[["T", 4, "caf\u00e9"]]}"#;
        let VisitorMessage::Mirror { data } = decode::<VisitorMessage>(text).unwrap() else {
            panic!("not a mirror frame");
        };
        assert_eq!(data.text(), r#"[["T", 4, "caf\u00e9"]]"#);
        let relayed = encode(&ServerToAgent::Mirror {
            session_id: "s1".into(),
            tab: "t1".into(),
            data: data.clone(),
        });
        assert_eq!(
            decode::<ServerToAgent>(&relayed).unwrap(),
            ServerToAgent::Mirror {
                session_id: "s1".into(),
                tab: "t1".into(),
                data
            }
        );
        // A mirror frame without its records, or an agent frame without its tab, is
        // malformed, not a panic and not some other message.
        for bad in [
            r#"{"type":"mirror"}"#,
            r#"{"type":"mirror","data":[}"#,
            r#"{"type":"mirror","data":[],"data":[]}"#,
        ] {
            assert_eq!(
                decode::<VisitorMessage>(bad).unwrap_err().code(),
                "malformed_frame",
                "{bad}"
            );
        }
        assert!(
            decode::<ServerToAgent>(r#"{"type":"mirror","session_id":"s","data":[]}"#).is_err()
        );
    }
}
