//! What the hub asks its I/O shell to do (`Hub::poll_output`), in order.

use axum::extract::ws::Utf8Bytes;

use crate::store::Write;

/// A frame's text, shared when one frame goes to many sockets.
pub type Frame = Utf8Bytes;

/// Names a socket; the shell assigns it when the socket says hello.
pub type ConnId = u64;

/// How a frame may be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// It announces state: only once every `Persist` before it has committed.
    Durable,
    /// It carries no state (pointer, acks, errors, a url change): at once, in order
    /// with the frames before it on the same socket.
    Now,
    /// Relayed mirror data of one visitor tab (`tab`: a number naming it) for an agent:
    /// at once, and droppable when the console falls behind; once one is dropped, that
    /// tab's data is dropped until it starts a new snapshot (`snapshot`), which the hub
    /// asks for (`Hub::handle_agent_lagged`).
    Relay { tab: u64, snapshot: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CloseReason {
    /// The visitor's personal data was erased.
    Erased,
    /// The user was disabled, changed role or signed out.
    SignedOut,
    /// Nothing was heard from the socket for its whole heartbeat allowance.
    Silent,
    /// Its visitor is owned by another node now: reconnect (and reach that one).
    Moved,
    /// The API key it was opened with was revoked.
    KeyRevoked,
    /// The store refused a change this socket was about to be told of: it was not told,
    /// and reconnects to get what is stored.
    NotStored,
}

#[derive(Debug)]
pub enum Output {
    /// Store this (the writer applies writes in order, committing them in groups).
    Persist(Write),
    /// Send `frame` to `conn`.
    Send {
        conn: ConnId,
        frame: Frame,
        delivery: Delivery,
    },
    /// Close `conn` after the frames before it.
    Close { conn: ConnId, reason: CloseReason },
    /// A visitor's page answered the asset request `id` (a piece, or a refusal): for
    /// whoever waits on it (the asset proxy's request), at once.
    Asset {
        id: u32,
        reply: covisit::core::protocol::AssetReply,
    },
    /// Tell the other nodes (clustered only): a visitor of this node changed. After
    /// the writes before it, like a durable frame.
    Publish(Box<super::VisitorNews>),
    /// News that announces no write (a navigation: its url is written coalesced,
    /// best-effort, and every other field of the visitor is as the news before it
    /// said): at once, like a `Delivery::Now` frame, unless earlier news about the same
    /// visitor still waits for its writes (then behind it, so a visitor's news keeps
    /// the hub's order).
    PublishNow(Box<super::VisitorNews>),
    /// A recording's last writes are queued (`Write::RecordingEnd` of this session):
    /// once they committed, finalise it (`pending` → `ready`).
    RecordingEnded(String),
}
