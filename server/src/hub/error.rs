//! The hub's typed errors: every refusal a socket or REST caller can get, with the
//! stable code the wire and the REST API carry (docs/PROTOCOL.md lists them all).

use covisit::core::codes::ErrorCode;
use covisit::core::config::ConfigError;
use covisit::core::machine::call::CallError;
use covisit::core::machine::MachineError;

/// Why the hub refused an input. `code()` is the stable wire/REST code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// The state machine refused it (wrong state for that input).
    #[error("{message}")]
    Machine { code: ErrorCode, message: String },
    /// The hello's or `update_visitor`'s config failed validation (`config_*`).
    #[error("{message}")]
    Config { code: ErrorCode, message: String },
    #[error("hello was already received on this socket")]
    UnexpectedHello,
    #[error("unknown message type")]
    UnknownMessageType,
    #[error("{0}")]
    InvalidArgument(String),
    #[error("this visitor is no longer known; reconnect")]
    UnknownVisitor,
    #[error("no online visitor with this id")]
    VisitorOffline,
    #[error("no such session")]
    UnknownSession,
    #[error("the session is over")]
    SessionOver,
    #[error("the session is not active")]
    SessionNotActive,
    #[error("this agent is not in the session")]
    NotInSession,
    #[error("only a supervisor or an admin joins another agent's session")]
    Forbidden,
    #[error("the visitor has not granted control of the page to this agent")]
    ControlNotGranted,
    #[error("control is granted in another tab of the visitor")]
    WrongTab,
    #[error("the site's covisit config does not allow this (`{0}` is false)")]
    PermissionDenied(&'static str),
    #[error("the controlled tab is not connected")]
    TabOffline,
    #[error("no remote action with this id is waiting for an answer")]
    UnknownAction,
    #[error("mirror data {0}")]
    InvalidMirrorFrame(&'static str),
    #[error("only an ended session can be rated")]
    RateLiveSession,
    #[error("this socket is not connected")]
    UnknownConnection,
    #[error("the visitor's browser cannot make calls (its `audioSupported` is false)")]
    CallUnsupported,
    #[error("the visitor's browser cannot co-browse: it lacks {0}")]
    VisitorUnsupported(String),
    #[error("the visitor's page does not send its assets through covisit (`assetsProxyConfigured` is false)")]
    AssetsNotEnabled,
    #[error(
        "the session's pages have sent as many assets as a session may (or too many are waiting)"
    )]
    AssetBudgetSpent,
}

impl HubError {
    /// The stable code (docs/PROTOCOL.md, "Error codes").
    pub fn code(&self) -> ErrorCode {
        match self {
            HubError::Machine { code, .. } | HubError::Config { code, .. } => *code,
            HubError::UnexpectedHello => ErrorCode::UNEXPECTED_HELLO,
            HubError::UnknownMessageType => ErrorCode::UNKNOWN_MESSAGE_TYPE,
            HubError::InvalidArgument(_) => ErrorCode::INVALID_ARGUMENT,
            HubError::UnknownVisitor => ErrorCode::UNKNOWN_VISITOR,
            HubError::VisitorOffline | HubError::TabOffline => ErrorCode::VISITOR_OFFLINE,
            HubError::UnknownSession => ErrorCode::UNKNOWN_SESSION,
            HubError::SessionOver | HubError::SessionNotActive | HubError::RateLiveSession => {
                ErrorCode::WRONG_SESSION_STATE
            }
            HubError::NotInSession => ErrorCode::NOT_IN_SESSION,
            HubError::Forbidden => ErrorCode::FORBIDDEN,
            HubError::ControlNotGranted => ErrorCode::CONTROL_NOT_GRANTED,
            HubError::WrongTab => ErrorCode::WRONG_TAB,
            HubError::PermissionDenied(_) => ErrorCode::PERMISSION_DENIED,
            HubError::UnknownAction => ErrorCode::UNKNOWN_ACTION,
            HubError::InvalidMirrorFrame(_) => ErrorCode::INVALID_MIRROR_FRAME,
            HubError::UnknownConnection => ErrorCode::UNKNOWN_CONNECTION,
            HubError::CallUnsupported => ErrorCode::CALL_UNSUPPORTED,
            HubError::VisitorUnsupported(_) => ErrorCode::VISITOR_UNSUPPORTED,
            HubError::AssetsNotEnabled => ErrorCode::ASSETS_NOT_ENABLED,
            HubError::AssetBudgetSpent => ErrorCode::ASSET_TOO_LARGE,
        }
    }

    pub fn message(&self) -> String {
        self.to_string()
    }
}

impl From<MachineError> for HubError {
    fn from(e: MachineError) -> HubError {
        HubError::Machine {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<CallError> for HubError {
    fn from(e: CallError) -> HubError {
        HubError::Machine {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

impl From<ConfigError> for HubError {
    fn from(e: ConfigError) -> HubError {
        HubError::Config {
            code: e.code(),
            message: e.to_string(),
        }
    }
}
