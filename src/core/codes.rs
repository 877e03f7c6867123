//! Every error `code` covisit sends or throws, in one registry: the socket error frames
//! (`{"type": "error", "code"}`), the REST errors (`{"error": {"code"}}`), the codes of
//! the `Error`s the SDK throws and of its `error` event. Each error type of the core, the
//! hub and the REST layer names its code from here, so a code cannot be made up at a
//! call site. `docs/PROTOCOL.md` ("Error codes") lists each one; `tests/facts.rs` fails
//! when the two lists differ, or when the SDK's JS throws a code that is not here.
//!
//! A code is a constant, not an enum variant: the SDK's wasm then carries only the
//! codes it can produce, not the table of every one.

use core::fmt;

/// A stable error code (snake_case text on the wire and in JS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(&'static str);

impl ErrorCode {
    /// The code as it goes out.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl ErrorCode {
    /// The registered code spelled `text` (a code another node sent), if any.
    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.0 == text)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<ErrorCode> for &str {
    fn eq(&self, other: &ErrorCode) -> bool {
        *self == other.0
    }
}

macro_rules! codes {
    ($($(#[doc = $doc:literal])* $name:ident = $text:literal;)*) => {
        impl ErrorCode {
            $($(#[doc = $doc])* pub const $name: ErrorCode = ErrorCode($text);)*

            /// Every code, in the order below (the tests compare it with PROTOCOL.md).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name),*];
        }
    };
}

codes! {
    // ----- frames (ProtocolError) --------------------------------------------------
    /// A frame over 64 KiB.
    FRAME_TOO_LARGE = "frame_too_large";
    /// Not JSON, or not the shape of any message (also a binary frame).
    MALFORMED_FRAME = "malformed_frame";
    /// A `type` this side does not know.
    UNKNOWN_MESSAGE_TYPE = "unknown_message_type";
    /// A `hello` with another protocol version.
    UNSUPPORTED_PROTOCOL_VERSION = "unsupported_protocol_version";
    /// A message could not be written as JSON (a bug of the sender).
    ENCODE_FAILED = "encode_failed";

    // ----- the socket's hello ------------------------------------------------------
    /// A first frame other than `hello`.
    HELLO_REQUIRED = "hello_required";
    /// A second `hello` on the same socket.
    UNEXPECTED_HELLO = "unexpected_hello";
    /// Not a public key of an account (or revoked).
    INVALID_API_KEY = "invalid_api_key";
    /// Not a secret key of an account (or revoked).
    INVALID_SECRET_KEY = "invalid_secret_key";
    /// The page's origin is not one the public key allows.
    ORIGIN_NOT_ALLOWED = "origin_not_allowed";
    /// No valid sign-in (console socket, REST).
    UNAUTHORIZED = "unauthorized";
    /// The role does not allow it.
    FORBIDDEN = "forbidden";
    /// A personal link's token that is unknown, used, expired or of another account.
    INVALID_CALL_TOKEN = "invalid_call_token";
    /// Too many lookup-code searches.
    RATE_LIMITED = "rate_limited";
    /// A failure of the server's own; logged there.
    INTERNAL = "internal";
    /// Clustered: no node can serve this visitor right now (its slot is moving between
    /// nodes, or this node is draining or fenced); retry.
    UNAVAILABLE = "unavailable";

    // ----- the session (MachineError, HubError) --------------------------------------
    /// Not valid in the session's current state; nothing changed.
    WRONG_SESSION_STATE = "wrong_session_state";
    /// Not valid in the current state of remote control; nothing changed.
    WRONG_CONTROL_STATE = "wrong_control_state";
    /// No such tab (or socket).
    UNKNOWN_CONNECTION = "unknown_connection";
    /// That tab is already connected.
    DUPLICATE_CONNECTION = "duplicate_connection";
    /// That agent is not in the session.
    UNKNOWN_AGENT = "unknown_agent";
    /// That agent is already in the session.
    DUPLICATE_AGENT = "duplicate_agent";
    /// The visitor (or its controlled tab) is not online.
    VISITOR_OFFLINE = "visitor_offline";
    /// The visitor's browser lacks what co-browsing needs (`is_supported: false`): a
    /// session cannot start; the message names what is missing.
    VISITOR_UNSUPPORTED = "visitor_unsupported";
    /// An argument is out of its range or of the wrong kind; the message names it.
    INVALID_ARGUMENT = "invalid_argument";
    /// No such visitor (or it was erased).
    UNKNOWN_VISITOR = "unknown_visitor";
    /// No such session for this agent's account.
    UNKNOWN_SESSION = "unknown_session";
    /// This agent is not in that session.
    NOT_IN_SESSION = "not_in_session";
    /// A `mirror` frame whose records are not records.
    INVALID_MIRROR_FRAME = "invalid_mirror_frame";
    /// A remote action from an agent without control.
    CONTROL_NOT_GRANTED = "control_not_granted";
    /// A remote action the visitor's config does not allow.
    PERMISSION_DENIED = "permission_denied";
    /// A remote action for a tab other than the controlled one.
    WRONG_TAB = "wrong_tab";
    /// A `remote_applied` for an id the server is not waiting for.
    UNKNOWN_ACTION = "unknown_action";

    // ----- calls and sharing (issue 17) -----------------------------------------------
    /// A call or share message not valid in the call's (or share's) current state.
    WRONG_CALL_STATE = "wrong_call_state";
    /// A microphone or camera the call's rules do not allow
    /// (`cobrowsingVideoEnabled`, `cobrowsingVideoAudioRelationship`).
    MEDIA_NOT_ALLOWED = "media_not_allowed";
    /// A `signal` of the wrong shape or role, too large, or sending video against the rules.
    INVALID_CALL_SIGNAL = "invalid_call_signal";
    /// A call to a tab whose browser cannot do calls (its `audioSupported` is false).
    CALL_UNSUPPORTED = "call_unsupported";
    /// The browser gave no microphone, camera or capture (the visitor refused at its
    /// prompt, or there is none): thrown by the SDK's call methods.
    MEDIA_DENIED = "media_denied";

    // ----- config and identity (ConfigError) ---------------------------------------
    /// The config (or `updateVisitor`'s argument) is not an object.
    CONFIG_NOT_OBJECT = "config_not_object";
    /// A key the config does not have.
    CONFIG_UNKNOWN_KEY = "config_unknown_key";
    /// A value of the wrong type.
    CONFIG_WRONG_TYPE = "config_wrong_type";
    /// `apiKey` or `server` is missing.
    CONFIG_MISSING_KEY = "config_missing_key";
    /// A value of the right type outside its range.
    CONFIG_INVALID_VALUE = "config_invalid_value";

    // ----- journey tracking (TrackError) -------------------------------------------
    /// More than 100 events in one batch.
    TOO_MANY_EVENTS = "too_many_events";
    /// A custom event's name is empty, too long or has other characters.
    INVALID_EVENT_NAME = "invalid_event_name";
    /// A custom event's attributes break a limit.
    INVALID_ATTRIBUTES = "invalid_attributes";
    /// A page view without a valid URL, or with a field too long.
    INVALID_PAGE_VIEW = "invalid_page_view";

    // ----- REST --------------------------------------------------------------------
    /// The body is not JSON, or not the expected shape.
    BAD_JSON = "bad_json";
    /// No such route or object.
    NOT_FOUND = "not_found";
    /// The route does not take this method.
    METHOD_NOT_ALLOWED = "method_not_allowed";
    /// The body is too large.
    PAYLOAD_TOO_LARGE = "payload_too_large";
    /// A beacon without this visitor's secret.
    INVALID_VISITOR_SECRET = "invalid_visitor_secret";
    /// A change made with the console's cookie lacks its CSRF header.
    CSRF_TOKEN_INVALID = "csrf_token_invalid";
    /// Wrong email or password.
    INVALID_CREDENTIALS = "invalid_credentials";
    /// Too many failed sign-ins for this email.
    TOO_MANY_ATTEMPTS = "too_many_attempts";
    /// The user is disabled.
    USER_DISABLED = "user_disabled";
    /// An invite or reset link that is unknown, used or expired.
    LINK_INVALID = "link_invalid";
    /// A password that is too short or too common.
    WEAK_PASSWORD = "weak_password";
    /// A user with this email exists.
    EMAIL_TAKEN = "email_taken";
    /// A user with this username exists.
    USERNAME_TAKEN = "username_taken";
    /// The account's only admin cannot lose the role or be disabled.
    LAST_ADMIN = "last_admin";
    /// The key is already revoked.
    ALREADY_REVOKED = "already_revoked";
    /// The session has no recording to read: none was made, or it is still being made
    /// or finalised, or it expired or was removed.
    RECORDING_NOT_AVAILABLE = "recording_not_available";
    /// A recording's download link whose signature is not this server's.
    RECORDING_LINK_INVALID = "recording_link_invalid";
    /// A recording's download link whose time is over.
    RECORDING_LINK_EXPIRED = "recording_link_expired";

    // ----- assets through covisit (REST: the asset proxy) ---------------------------
    /// The tab's page did not set `assetsProxyConfigured`: its assets do not go through covisit.
    ASSETS_NOT_ENABLED = "assets_not_enabled";
    /// An asset URL whose origin is neither the page's, one of the account's keys' nor
    /// one the operator listed (`--asset-origins`); or not an `http(s)` URL.
    ASSET_ORIGIN_NOT_ALLOWED = "asset_origin_not_allowed";
    /// The asset's host is (or redirects to, or resolves to) a loopback, private,
    /// link-local or reserved address, which the operator did not allow.
    ASSET_ADDRESS_REFUSED = "asset_address_refused";
    /// Not a style sheet, a font or an image.
    ASSET_TYPE_NOT_ALLOWED = "asset_type_not_allowed";
    /// Larger than the proxy takes.
    ASSET_TOO_LARGE = "asset_too_large";
    /// Neither the server nor the visitor's page could get it (in time).
    ASSET_UNAVAILABLE = "asset_unavailable";

    // ----- thrown by the SDK in the page -------------------------------------------
    /// `on`/`off` with an event name the SDK does not have.
    UNKNOWN_EVENT = "unknown_event";
    /// A call on an SDK object after `stop()`.
    STOPPED = "stopped";
    /// `lookupCode()` before the server welcomed this tab.
    NOT_CONNECTED = "not_connected";
    /// `Covisit('init')` a second time (script tag).
    ALREADY_INITIALIZED = "already_initialized";
    /// A `Covisit(command)` the script tag does not know.
    UNKNOWN_COMMAND = "unknown_command";
    /// `version()` before `load()` finished (npm).
    NOT_LOADED = "not_loaded";
    /// A build without the session client.
    UNSUPPORTED = "unsupported";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{c}"
            );
        }
        assert_eq!(ErrorCode::FORBIDDEN, "forbidden");
        assert_eq!(
            serde_json::to_string(&ErrorCode::BAD_JSON).unwrap(),
            r#""bad_json""#
        );
    }
}
