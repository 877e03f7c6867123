//! What the client's unit tests (`tests`, `track_tests`, `mirror`) share: a fixed
//! clock, draining outputs and picking them apart, server frames and the welcome.

use super::{ClientEvent, Output, VisitorClient};
use crate::core::model::Agent;
use crate::core::protocol::{decode, encode, ServerToVisitor, VisitorMessage};
use crate::core::Millis;

/// `serde_json::json!`, as the SDK's [`crate::core::json::Json`].
macro_rules! jv {
    ($($t:tt)+) => {
        $crate::core::json::Json::from(serde_json::json!($($t)+))
    };
}
pub(crate) use jv;

pub const T0: Millis = Millis(1_795_255_445_000);

pub fn drain(c: &mut VisitorClient) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

/// The frames among the outputs, as text.
pub fn transmitted(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Transmit(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// The frames among the outputs, decoded as the server decodes them.
pub fn sent(outputs: &[Output]) -> Vec<VisitorMessage> {
    transmitted(outputs)
        .iter()
        .filter_map(|t| decode::<VisitorMessage>(t).ok())
        .collect()
}

pub fn events(outputs: &[Output]) -> Vec<ClientEvent> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

pub fn frame(m: ServerToVisitor) -> String {
    encode(&m)
}

/// The socket opens and the server welcomes visitor `v1` on connection `c1`.
pub fn welcome(c: &mut VisitorClient, now: Millis) -> Vec<Output> {
    c.handle_socket_open(now);
    c.handle_frame(
        now,
        &frame(ServerToVisitor::Welcome {
            protocol_version: 1,
            short_id: "v1".into(),
            unique_connection_id: "c1".into(),
            lookup_code: Some("0042".into()),
            visitor_secret: Some("s1".into()),
        }),
    );
    drain(c)
}

/// Agent `agent` asks for session `s1` (not recorded); the outputs it caused.
pub fn session_request(c: &mut VisitorClient, now: Millis, agent: Agent) -> Vec<Output> {
    c.handle_frame(
        now,
        &frame(ServerToVisitor::SessionRequest {
            session_id: "s1".into(),
            agent,
            recorded: false,
        }),
    );
    drain(c)
}
