//! The two WebSocket endpoints. Each socket: a `hello` first (checked against the
//! store), then a loop that forwards the hub's frames out and decodes frames in.
//! A bad frame is answered with an `error` frame and the socket stays open; only a bad
//! hello, silence past the heartbeat timeout, or a frame beyond the transport limit
//! closes it.

use std::net::SocketAddr;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use covisit::core::codes::ErrorCode;
use covisit::core::ids::valid_id;
use covisit::core::model::Agent;
use covisit::core::protocol::{
    decode, encode, AgentMessage, ErrorFrame, ServerToVisitor, VisitorMessage, MAX_FRAME_BYTES,
};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{timeout, Duration};

use crate::hub::{secret_proves, AgentIdentity, CloseReason, ConnId, VisitorHello};
use crate::hub_task::{Out, SocketRx};
use crate::keys;
use crate::state::Shared;

/// How long a socket may take to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames above MAX_FRAME_BYTES are answered with an error frame; frames above this
/// transport limit are not even read (the socket closes).
const TRANSPORT_LIMIT: usize = 4 * MAX_FRAME_BYTES;
/// Each socket's read buffer starts this big (tungstenite's default, 128 KiB, is
/// zero-filled up front: 1.3 GB resident for 10,000 idle visitors). It grows for a
/// larger frame as needed.
const READ_BUFFER: usize = 4 * 1024;
/// Queued frames are written to the socket once this many bytes are waiting (and at
/// each flush). The write buffer keeps its largest size for the socket's life:
/// tungstenite's default, 128 KiB, let a burst of frames grow each console's to that.
const WRITE_BUFFER: usize = 16 * 1024;
/// How often the server pings agent consoles.
const AGENT_PING: Duration = Duration::from_secs(20);

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

async fn send_error(state: &Shared, sink: &mut Sink, code: ErrorCode, message: &str) -> bool {
    state.metrics.error();
    let frame = encode(&ServerToVisitor::Error(ErrorFrame::new(code, message)));
    sink.send(Message::Text(frame.into())).await.is_ok()
}

async fn close(sink: &mut Sink, code: u16, reason: &'static str) {
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

/// The close a socket gets when its peer broke the WebSocket protocol, which the
/// library refuses before any frame reaches us (so no error frame can answer it):
/// `1007` for a text frame that is not UTF-8, `1002` for any other violation. An I/O
/// error (the peer is gone) gets none.
fn protocol_close(e: &axum::Error) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        match err.downcast_ref::<WsError>() {
            Some(WsError::Utf8(_)) => return Some((1007, "a text frame must be UTF-8")),
            Some(WsError::Protocol(_) | WsError::Capacity(_)) => {
                return Some((1002, "WebSocket protocol error"))
            }
            Some(_) => return None,
            None => source = err.source(),
        }
    }
    None
}

/// Ends a socket whose stream failed: with the close the violation calls for, if any.
async fn close_after(sink: &mut Sink, e: &axum::Error) {
    if let Some((code, reason)) = protocol_close(e) {
        close(sink, code, reason).await;
    }
}

/// Most queued frames written before one flush.
const BURST: usize = 64;

/// Writes `first` and the frames queued behind it (up to [`BURST`]) with one flush:
/// one write to the socket instead of one per frame. `Ok(Some(reason))` when a close
/// was asked for (the frames before it are sent), `Err` when the socket is gone.
/// Writes what the hub queued for a socket this node holds (`out`, and whatever else is
/// waiting); false when the socket is done: the hub closed it, or a write failed.
async fn forward(sink: &mut Sink, rx: &mut mpsc::Receiver<Out>, out: Option<Out>) -> bool {
    match out {
        Some(Out::Text(t)) => match send_burst(sink, rx, t).await {
            Ok(None) => true,
            Ok(Some(close)) => {
                close_out(sink, close).await;
                false
            }
            Err(_) => false,
        },
        Some(close) => {
            close_out(sink, close).await;
            false
        }
        None => false,
    }
}

async fn send_burst(
    sink: &mut Sink,
    rx: &mut mpsc::Receiver<Out>,
    first: Utf8Bytes,
) -> Result<Option<Out>, axum::Error> {
    sink.feed(Message::Text(first)).await?;
    let mut close = None;
    for _ in 1..BURST {
        match rx.try_recv() {
            Ok(Out::Text(t)) => sink.feed(Message::Text(t)).await?,
            Ok(other) => {
                close = Some(other);
                break;
            }
            Err(_) => break,
        }
    }
    sink.flush().await?;
    Ok(close)
}

/// The WebSocket close code and reason of a close the hub (or a visitor's owner on
/// another node) asked for: erased visitor, signed-out or disabled agent, silence, a
/// visitor now owned elsewhere.
fn close_code(out: &Out) -> (u16, String) {
    let (code, reason) = match out {
        Out::Close(CloseReason::Erased) => (1000, "visitor data erased"),
        Out::Close(CloseReason::SignedOut) => (1008, "signed out"),
        Out::Close(CloseReason::Silent) => (1001, "heartbeat timeout"),
        // 1012 "service restart": reconnect (the visitor is owned by another node now).
        Out::Close(CloseReason::Moved) => (1012, "visitor moved to another node"),
        Out::Close(CloseReason::KeyRevoked) => (1008, "api key revoked"),
        // 1011 "internal error": a change announced to this socket was not stored; the
        // SDK and the console reconnect and get what is.
        Out::Close(CloseReason::NotStored) => (1011, "a change was not stored"),
        Out::CloseWith(code, reason) => return (*code, reason.chars().take(120).collect()),
        Out::Text(_) => (1000, ""),
    };
    (code, reason.to_string())
}

/// Closes a socket as `out` (a close) says.
async fn close_out(sink: &mut Sink, out: Out) {
    let (code, reason) = close_code(&out);
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason),
        })))
        .await;
}

/// Reads the first text frame (the hello), or None when the peer is gone or silent.
async fn first_text(stream: &mut Stream) -> Option<String> {
    loop {
        match timeout(HELLO_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Some(t.to_string()),
            Ok(Some(Ok(Message::Binary(_)))) => return Some(String::new()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

/// The `Origin` header of a request, if it has one that is text.
fn origin_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::ORIGIN)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
}

pub async fn visitor_ws(
    ws: WebSocketUpgrade,
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let ip = state.client_ip(peer, &headers);
    let origin = origin_header(&headers);
    ws.max_message_size(TRANSPORT_LIMIT)
        .max_frame_size(TRANSPORT_LIMIT)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| visitor_socket(state, socket, ip, origin))
}

/// A visitor's hello that passed the checks every node makes (its key, the page's
/// origin): what the owner needs to connect it.
struct CheckedHello {
    account_id: i64,
    api_key: String,
    short_id: Option<String>,
    visitor_secret: Option<String>,
    connection: covisit::core::protocol::ConnectionHello,
    config: covisit::core::json::Json,
}

/// A refused hello: the error frame's code and message, and the close's code and reason.
type Refusal = (ErrorCode, String, u16, &'static str);

/// Decodes the hello and checks its key and the page's origin. Nothing is created
/// before this passes.
async fn check_hello(
    state: &Shared,
    text: &str,
    origin: Option<&str>,
) -> Result<CheckedHello, Refusal> {
    let (api_key, short_id, visitor_secret, connection, config) =
        match decode::<VisitorMessage>(text) {
            Ok(VisitorMessage::Hello {
                api_key,
                short_id,
                visitor_secret,
                connection,
                config,
                ..
            }) => (api_key, short_id, visitor_secret, connection, config),
            Ok(_) => {
                return Err((
                    ErrorCode::HELLO_REQUIRED,
                    "the first frame must be a hello".into(),
                    1008,
                    "hello required",
                ))
            }
            Err(e) => return Err((e.code(), e.to_string(), 1008, "bad hello")),
        };
    let key = match state.directory.key(&api_key).await {
        Ok(Some(k)) if api_key.starts_with("pk_") && k.revoked_at.is_none() => k,
        Ok(_) => {
            return Err((
                ErrorCode::INVALID_API_KEY,
                "api_key is not a public key of any account".into(),
                1008,
                "invalid api key",
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "key lookup failed");
            return Err((
                ErrorCode::INTERNAL,
                "internal server error".into(),
                1011,
                "internal error",
            ));
        }
    };
    // Before anything is created: the page must be one the key's account allows.
    if !crate::auth::origin_allowed(key.origins.as_deref(), key.allow_loopback, origin) {
        let shown = origin.unwrap_or("(none)");
        return Err((
            ErrorCode::ORIGIN_NOT_ALLOWED,
            format!("pages of the origin {shown} may not use this public key; add the origin to the key's allowed origins"),
            1008,
            "origin not allowed",
        ));
    }
    Ok(CheckedHello {
        account_id: key.account_id,
        api_key,
        short_id,
        visitor_secret,
        connection,
        config,
    })
}

/// Why this node takes no new socket (visitor tab or agent console): it is draining
/// (leaving) or fenced. The socket gets an `unavailable` error and closes with 1013, so
/// the SDK and the console reconnect, through the load balancer, to another node. A
/// visitor tab another node holds for this one (a bridged hello, over the bus) is not
/// a socket of this node's listener: a draining node still serves its own visitors'
/// tabs that way until it hands them over.
fn takes_no_sockets(state: &Shared) -> Option<&'static str> {
    match state.cluster.as_ref()?.state() {
        crate::cluster::NodeState::Up => None,
        crate::cluster::NodeState::Draining => {
            Some("this node is shutting down; reconnect to another")
        }
        crate::cluster::NodeState::Fenced => {
            Some("this node lost its cluster membership; reconnect to another")
        }
    }
}

async fn visitor_socket(state: Shared, socket: WebSocket, ip: String, origin: Option<String>) {
    let (mut sink, mut stream) = socket.split();
    let Some(text) = first_text(&mut stream).await else {
        return;
    };
    // The set-up's futures are boxed (here and below): the socket's task keeps the
    // largest state it ever awaits for as long as it lives.
    let hello = match Box::pin(check_hello(&state, &text, origin.as_deref())).await {
        Ok(h) => h,
        Err((code, message, close_code, reason)) => {
            send_error(&state, &mut sink, code, &message).await;
            return close(&mut sink, close_code, reason).await;
        }
    };
    if let Some(why) = takes_no_sockets(&state) {
        send_error(&state, &mut sink, ErrorCode::UNAVAILABLE, why).await;
        return close(&mut sink, 1013, "try again later").await;
    }
    // On a node of several, the visitor's owner runs its session; this node holds the
    // socket and passes frames both ways.
    if let Some(cluster) = state.cluster.clone() {
        match cluster.visitor_owner(hello.short_id.as_deref()) {
            Some(owner) if owner == cluster.node() => {}
            Some(_) if !cluster.bus_up() => {
                send_error(
                    &state,
                    &mut sink,
                    ErrorCode::UNAVAILABLE,
                    "this visitor's node cannot be reached right now; the SDK retries",
                )
                .await;
                return close(&mut sink, 1013, "try again later").await;
            }
            Some(owner) => {
                return Box::pin(bridge_visitor(
                    state, cluster, owner, sink, stream, hello, text, ip, origin,
                ))
                .await
            }
            None => {
                send_error(
                    &state,
                    &mut sink,
                    ErrorCode::UNAVAILABLE,
                    "no node can take this visitor right now; the SDK retries",
                )
                .await;
                return close(&mut sink, 1013, "try again later").await;
            }
        }
    }
    let (conn, rx) = state.hub.register(false);
    visitor_session(
        state,
        VisitorLink::Socket { sink, stream },
        conn,
        rx,
        hello,
        ip,
    )
    .await;
}

/// A visitor's tab that another node holds, owned by this one: its session runs here
/// like a local one, its frames go to and come from that node over the bus.
pub async fn serve_bridged_visitor(state: Shared, bridged: crate::cluster::BridgedVisitor) {
    let Some(cluster) = state.cluster.clone() else {
        return;
    };
    let conn = bridged.conn;
    let mut link = VisitorLink::Bridged {
        cluster: cluster.clone(),
        conn,
        inbox: bridged.inbox,
    };
    let hello = match check_hello(&state, &bridged.hello, bridged.origin.as_deref()).await {
        Ok(h) if h.account_id == bridged.account_id => h,
        Ok(_) => {
            link.close(1008, "hello refused").await;
            cluster.bridged_done(conn);
            return;
        }
        Err((code, message, close_code, reason)) => {
            link.send_error(&state, code, &message).await;
            link.close(close_code, reason).await;
            cluster.bridged_done(conn);
            return;
        }
    };
    // The visitor moved away while the hello travelled: its new owner takes it.
    let owner = cluster.visitor_owner(hello.short_id.as_deref());
    if owner.is_some_and(|o| o != cluster.node()) {
        link.close(1012, "visitor moved to another node").await;
        cluster.bridged_done(conn);
        return;
    }
    let rx = state.hub.register_as(conn, false);
    visitor_session(state, link, conn, rx.1, hello, bridged.ip).await;
    cluster.bridged_done(conn);
}

/// The node holding a visitor's socket for another node (the owner): the hello goes
/// there, then every frame; what the owner sends comes back through this node's hub
/// shell (`Push`) in order.
#[allow(clippy::too_many_arguments)] // one socket's parts
async fn bridge_visitor(
    state: Shared,
    cluster: crate::cluster::Cluster,
    owner: crate::bus::NodeIdx,
    mut sink: Sink,
    mut stream: Stream,
    hello: CheckedHello,
    text: String,
    ip: String,
    origin: Option<String>,
) {
    let (conn, SocketRx { mut rx, kill }) = state.hub.register(false);
    cluster.open_bridge(owner, conn, hello.account_id, ip, origin, &text);
    loop {
        tokio::select! {
            out = rx.recv() => if !forward(&mut sink, &mut rx, out).await { break },
            _ = kill.notified() => {
                close(&mut sink, 1013, "too slow").await;
                break;
            }
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(t))) => cluster.bridge_text(owner, conn, &t),
                Some(Ok(Message::Binary(_))) => {
                    if !send_error(&state, &mut sink, ErrorCode::MALFORMED_FRAME, "binary frames are not supported").await { break }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Err(e)) => { close_after(&mut sink, &e).await; break }
                Some(Ok(Message::Close(_))) | None => break,
            },
        }
    }
    cluster.bridge_closed(conn);
    state.hub.visitor_gone(conn);
}

/// Where a visitor session's frames go: a socket of this node, or one another node
/// holds for this one (over the bus).
enum VisitorLink {
    Socket {
        sink: Sink,
        stream: Stream,
    },
    Bridged {
        cluster: crate::cluster::Cluster,
        conn: ConnId,
        inbox: mpsc::UnboundedReceiver<Option<String>>,
    },
}

/// What came in on a visitor's link.
enum Incoming {
    Text(Utf8Bytes),
    Binary,
    Gone,
}

impl VisitorLink {
    async fn next(&mut self) -> Incoming {
        match self {
            VisitorLink::Socket { sink, stream } => loop {
                match stream.next().await {
                    Some(Ok(Message::Text(t))) => return Incoming::Text(t),
                    Some(Ok(Message::Binary(_))) => return Incoming::Binary,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Err(e)) => {
                        close_after(sink, &e).await;
                        return Incoming::Gone;
                    }
                    Some(Ok(Message::Close(_))) | None => return Incoming::Gone,
                }
            },
            VisitorLink::Bridged { inbox, .. } => match inbox.recv().await {
                Some(Some(t)) => Incoming::Text(t.into()),
                _ => Incoming::Gone,
            },
        }
    }

    async fn send_error(&mut self, state: &Shared, code: ErrorCode, message: &str) -> bool {
        match self {
            VisitorLink::Socket { sink, .. } => send_error(state, sink, code, message).await,
            VisitorLink::Bridged { cluster, conn, .. } => {
                state.metrics.error();
                cluster.send_to_bridged(*conn, &error_frame(code, message));
                true
            }
        }
    }

    /// Sends `first` and what is queued behind it; `Ok(Some(..))` when a close came.
    /// [`forward`] for either kind of link.
    async fn forward(&mut self, rx: &mut mpsc::Receiver<Out>, out: Option<Out>) -> bool {
        match out {
            Some(Out::Text(t)) => match self.send_burst(rx, t).await {
                Ok(None) => true,
                Ok(Some(close)) => {
                    self.close_out(close).await;
                    false
                }
                Err(()) => false,
            },
            Some(close) => {
                self.close_out(close).await;
                false
            }
            None => false,
        }
    }

    async fn send_burst(
        &mut self,
        rx: &mut mpsc::Receiver<Out>,
        first: Utf8Bytes,
    ) -> Result<Option<Out>, ()> {
        match self {
            VisitorLink::Socket { sink, .. } => send_burst(sink, rx, first).await.map_err(drop),
            VisitorLink::Bridged { cluster, conn, .. } => {
                cluster.send_to_bridged(*conn, &first);
                loop {
                    match rx.try_recv() {
                        Ok(Out::Text(t)) => cluster.send_to_bridged(*conn, &t),
                        Ok(close) => return Ok(Some(close)),
                        Err(_) => return Ok(None),
                    }
                }
            }
        }
    }

    async fn close(&mut self, code: u16, reason: &'static str) {
        match self {
            VisitorLink::Socket { sink, .. } => close(sink, code, reason).await,
            VisitorLink::Bridged { cluster, conn, .. } => {
                cluster.close_bridged(*conn, code, reason)
            }
        }
    }

    async fn close_out(&mut self, out: Out) {
        let (code, reason) = close_code(&out);
        match self {
            VisitorLink::Socket { sink, .. } => close_out(sink, out).await,
            VisitorLink::Bridged { cluster, conn, .. } => {
                cluster.close_bridged(*conn, code, &reason)
            }
        }
    }
}

/// An `error` frame's text.
fn error_frame(code: ErrorCode, message: &str) -> String {
    encode(&ServerToVisitor::Error(ErrorFrame::new(code, message)))
}

/// A visitor tab's session on the node that owns the visitor: the store lookups the
/// hello needs, the hub's welcome, then frames both ways until the tab goes.
async fn visitor_session(
    state: Shared,
    mut link: VisitorLink,
    conn: ConnId,
    SocketRx { mut rx, kill }: SocketRx,
    hello: CheckedHello,
    ip: String,
) {
    // Boxed: the task of each of the (many) sockets then keeps, for its lifetime, only
    // the state of the loop below, not that of the set-up's lookups too.
    let welcomed = Box::pin(welcome_visitor(&state, &mut link, conn, hello, ip)).await;
    let Some(Welcomed {
        account_id,
        short_id,
        connection_id,
        track_ip,
        track_ua,
    }) = welcomed
    else {
        return;
    };
    // The welcome is the first frame of the hub's queue for this socket (it goes once
    // the visitor's record is stored). The hub closes the socket when it stays silent
    // (frames it handles count; the others are reported with `heard`).
    loop {
        tokio::select! {
            out = rx.recv() => if !link.forward(&mut rx, out).await { break },
            _ = kill.notified() => {
                tracing::info!(visitor = %short_id, "visitor socket fell behind its queue; closing");
                link.close(1013, "too slow").await;
                break;
            }
            frame = link.next() => {
                let text = match frame {
                    Incoming::Text(t) => t,
                    Incoming::Binary => {
                        state.hub.heard(conn);
                        if !link.send_error(&state, ErrorCode::MALFORMED_FRAME, "binary frames are not supported").await { break }
                        continue;
                    }
                    Incoming::Gone => break,
                };
                let result = match decode::<VisitorMessage>(&text) {
                    Ok(VisitorMessage::Track { sent_at, events }) => {
                        state.hub.heard(conn);
                        let id = short_id.clone();
                        let authenticated = state
                            .hub
                            .call(move |h, now| h.visitor(now, account_id, &id).is_some_and(|v| v.unique_id.is_some()))
                            .await
                            .unwrap_or(false);
                        let input = crate::journey::TrackInput {
                            account_id,
                            short_id: short_id.clone(),
                            ip: track_ip.clone(),
                            user_agent: track_ua.clone(),
                            authenticated,
                            sent_at,
                            events,
                        };
                        // Boxed, as the rare frames' work below: see `welcome_visitor`.
                        Box::pin(state.journeys.track(&state.hub, input)).await.map(|_| ()).map_err(track_error)
                    }
                    Ok(VisitorMessage::CallLink { token }) => {
                        state.hub.heard(conn);
                        Box::pin(call_link(&state, account_id, &short_id, &token)).await
                    }
                    Ok(msg) => {
                        state.hub.visitor_frame(conn, msg);
                        Ok(())
                    }
                    Err(e) => {
                        state.hub.heard(conn);
                        Err((e.code(), e.to_string()))
                    }
                };
                if let Err((code, message)) = result {
                    if !link.send_error(&state, code, &message).await { break }
                }
            }
        }
    }
    state.hub.visitor_gone(conn);
    tracing::info!(visitor = %short_id, connection = %connection_id, "visitor disconnected");
}

/// A visitor tab the hub welcomed: what its socket's loop needs.
struct Welcomed {
    account_id: i64,
    short_id: String,
    connection_id: String,
    /// Journey tracking enriches this socket's `track` batches with both.
    track_ip: String,
    track_ua: Option<String>,
}

/// The hello's store lookups (on a node of several, its lookup code's reservation too)
/// and the hub's welcome. None: refused (the tab was told, and its link closed).
async fn welcome_visitor(
    state: &Shared,
    link: &mut VisitorLink,
    conn: ConnId,
    hello: CheckedHello,
    ip: String,
) -> Option<Welcomed> {
    let CheckedHello {
        account_id,
        api_key,
        short_id,
        visitor_secret,
        connection,
        config,
    } = hello;
    // The hash of the claimed visitor's secret when it is in memory here.
    let in_memory = match short_id.clone() {
        Some(sid) => state
            .hub
            .call(move |h, _| h.visitor_secret_hash(account_id, &sid))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let stored = match short_id.as_deref() {
        Some(sid) if in_memory.is_none() && valid_id(sid) => {
            let visitor = state
                .store
                .get_visitor(account_id, sid)
                .await
                .ok()
                .flatten();
            let hash = state
                .store
                .visitor_secret_hash(account_id, sid)
                .await
                .ok()
                .flatten()
                .flatten();
            visitor.map(|v| (v, hash))
        }
        _ => None,
    };
    let connection_owner = match connection.unique_connection_id.as_deref() {
        Some(c) if valid_id(c) => state.store.connection_visitor(c).await.ok().flatten(),
        _ => None,
    };
    // On a node of several, lookup codes are reserved across the cluster first: for the
    // visitor the hello names only when its secret proves it (then it keeps the code it
    // holds), else for this socket until the hub names the visitor. A short_id is shown
    // to agents and in links: naming one must never get its code.
    let proven = short_id.clone().filter(|sid| {
        let hash = match (&in_memory, &stored) {
            (Some(hash), _) => hash.as_deref(),
            (None, Some((v, hash))) if v.short_id == *sid => hash.as_deref(),
            _ => return false,
        };
        sid.len() <= 64 && secret_proves(visitor_secret.as_deref(), hash)
    });
    let holder = proven.clone().unwrap_or_else(|| format!("conn:{conn}"));
    let codes = state.cluster.as_ref().map(|c| c.codes());
    let reserved = match &codes {
        Some(codes) => codes.reserve(account_id, &holder).await,
        None => None,
    };
    let (track_ip, track_ua) = (ip.clone(), connection.user_agent.clone());
    let hello = VisitorHello {
        account_id,
        api_key,
        short_id,
        visitor_secret,
        stored,
        connection_owner,
        connection,
        config: config.into(),
        // An mmdb lookup takes microseconds: fine on the runtime.
        location: state.journeys.geo(&ip).geolocation,
        ip,
        lookup_code: reserved.clone(),
        lookup_code_for: proven.clone(),
        record_sessions: state.account_records(account_id).await,
    };
    let welcome = match state.hub.visitor_connect(conn, hello).await {
        Ok(w) => w,
        Err(e) => {
            state.hub.visitor_gone(conn);
            if let (Some(codes), Some(code), None) = (&codes, &reserved, &proven) {
                codes.confirm(account_id, code, &holder, None).await;
            }
            link.send_error(state, e.code(), &e.message()).await;
            link.close(1008, "hello refused").await;
            return None;
        }
    };
    // A socket's reservation goes to the visitor the hub named, or goes. A proven
    // visitor's own reservation stays its own, whatever the hub made of the hello (had
    // it proven otherwise, the code still belongs to that visitor), unless it kept
    // another code.
    if let (Some(codes), Some(code)) = (&codes, &reserved) {
        let used = welcome.lookup_code.as_deref() == Some(code.as_str());
        let settle = match &proven {
            None => true,
            Some(p) => *p == welcome.short_id && !used,
        };
        if settle {
            codes
                .confirm(
                    account_id,
                    code,
                    &holder,
                    used.then_some(welcome.short_id.as_str()),
                )
                .await;
        }
    }
    tracing::info!(visitor = %welcome.short_id, connection = %welcome.connection_id, "visitor connected");
    Some(Welcomed {
        account_id,
        short_id: welcome.short_id,
        connection_id: welcome.connection_id,
        track_ip,
        track_ua,
    })
}

/// A refused `track` batch as an error frame's (code, message).
fn track_error(e: crate::journey::JourneyError) -> (ErrorCode, String) {
    match e {
        crate::journey::JourneyError::Invalid(e) => (e.code(), e.to_string()),
        // Erased while this socket was still open: it is being closed.
        crate::journey::JourneyError::UnknownVisitor => (
            ErrorCode::UNKNOWN_VISITOR,
            "the visitor was erased".to_string(),
        ),
        crate::journey::JourneyError::Store(e) => {
            tracing::error!(error = %e, "journey read failed");
            (ErrorCode::INTERNAL, "internal server error".to_string())
        }
    }
}

/// A personal link's token from a visitor's page: one use, unexpired, of an agent of
/// the visitor's own account; that agent then asks for a session.
async fn call_link(
    state: &Shared,
    account_id: i64,
    short_id: &str,
    token: &str,
) -> Result<(), (ErrorCode, String)> {
    let invalid = || {
        (
            ErrorCode::INVALID_CALL_TOKEN,
            "this personal link is unknown, used or expired".to_string(),
        )
    };
    if token.len() > 128 {
        return Err(invalid());
    }
    let now = crate::clock::now().to_iso8601();
    let user_id = state
        .directory
        .take_token(
            &crate::auth::hash_secret(token),
            crate::directory::TokenKind::Call,
            &now,
        )
        .await
        .ok()
        .flatten()
        .ok_or_else(invalid)?;
    let user = state
        .directory
        .user(&user_id)
        .await
        .ok()
        .flatten()
        .filter(|u| u.account_id == account_id && !u.disabled)
        .ok_or_else(invalid)?;
    let (id, agent, username) = (
        short_id.to_string(),
        crate::access::user_agent(&user),
        user.username.clone(),
    );
    state
        .hub
        .call(move |h, now| h.handle_rest_personal_link(now, account_id, &id, agent, &username))
        .await
        .and_then(|r| r)
        .map(|_| ())
        .map_err(|e| (e.code(), e.message()))
}

pub async fn agent_ws(
    ws: WebSocketUpgrade,
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let ip = state.client_ip(peer, &headers);
    let cookie = headers
        .get(axum::http::header::COOKIE)
        .and_then(|h| h.to_str().ok())
        .and_then(crate::auth::session_token);
    // A console's socket must come from a page of this server (no other site may open
    // one with the agent's cookie): its Origin's host is the Host it asked.
    let same_origin =
        crate::access::origin_is_this_server(&state.public_url, &headers) == Some(true);
    ws.max_message_size(TRANSPORT_LIMIT)
        .max_frame_size(TRANSPORT_LIMIT)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| agent_socket(state, socket, ip, cookie, same_origin))
}

/// Who an agent socket's hello proves it is: an integration (the secret key, with its
/// own `external_id`), or a console user (the sign-in cookie, from this server's page).
async fn agent_identity(
    state: &Shared,
    ip: &str,
    cookie: Option<String>,
    same_origin: bool,
    secret_key: Option<String>,
    name: Option<String>,
    external_id: Option<String>,
) -> Result<AgentIdentity, (ErrorCode, String)> {
    if let Some(secret_key) = secret_key {
        let name = name.map(|n| n.trim().to_string()).unwrap_or_default();
        let external_id = external_id
            .map(|e| e.trim().to_string())
            .unwrap_or_default();
        if name.is_empty() || name.len() > 200 || external_id.is_empty() || external_id.len() > 200
        {
            return Err((
                ErrorCode::INVALID_ARGUMENT,
                "an integration's agent needs `name` and `external_id` (1 to 200 characters each): the agent's id comes from `external_id`".into(),
            ));
        }
        return match state
            .directory
            .account_by_secret(&crate::auth::hash_secret(&secret_key))
            .await
        {
            Ok(Some((account_id, public_key))) => Ok(AgentIdentity {
                account_id,
                api_key: Some(public_key),
                agent: Agent::new(
                    keys::agent_id(account_id, &external_id),
                    name,
                    Some(external_id),
                ),
                ip: ip.to_string(),
                user_id: None,
                auth_session: None,
                may_join_any: true,
            }),
            Ok(None) => Err((
                ErrorCode::INVALID_SECRET_KEY,
                "secret_key is not a secret key of any account".into(),
            )),
            Err(e) => {
                tracing::error!(error = %e, "key lookup failed");
                Err((ErrorCode::INTERNAL, "internal server error".into()))
            }
        };
    }
    let Some(token) = cookie.filter(|_| same_origin) else {
        return Err((
            ErrorCode::UNAUTHORIZED,
            "sign in to the console first (or send the account's secret_key as an integration)"
                .into(),
        ));
    };
    match crate::access::cookie_user(state, &token).await {
        Ok((principal, user)) => {
            let crate::auth::Principal::User { session, .. } = &principal else {
                return Err((ErrorCode::INTERNAL, "internal server error".into()));
            };
            Ok(AgentIdentity {
                account_id: user.account_id,
                agent: crate::access::user_agent(&user),
                ip: ip.to_string(),
                user_id: Some(user.id.clone()),
                api_key: None,
                auth_session: Some(session.clone()),
                may_join_any: principal.may(crate::auth::Act::JoinAnySession),
            })
        }
        Err(e) => Err((ErrorCode::UNAUTHORIZED, e.message)),
    }
}

async fn agent_socket(
    state: Shared,
    socket: WebSocket,
    ip: String,
    cookie: Option<String>,
    same_origin: bool,
) {
    let (mut sink, mut stream) = socket.split();
    let Some(text) = first_text(&mut stream).await else {
        return;
    };
    let (secret_key, name, external_id) = match decode::<AgentMessage>(&text) {
        Ok(AgentMessage::Hello {
            secret_key,
            name,
            external_id,
            ..
        }) => (secret_key, name, external_id),
        Ok(_) => {
            send_error(
                &state,
                &mut sink,
                ErrorCode::HELLO_REQUIRED,
                "the first frame must be a hello",
            )
            .await;
            return close(&mut sink, 1008, "hello required").await;
        }
        Err(e) => {
            send_error(&state, &mut sink, e.code(), &e.to_string()).await;
            return close(&mut sink, 1008, "bad hello").await;
        }
    };
    let who = match agent_identity(
        &state,
        &ip,
        cookie,
        same_origin,
        secret_key,
        name,
        external_id,
    )
    .await
    {
        Ok(w) => w,
        Err((code, message)) => {
            send_error(&state, &mut sink, code, &message).await;
            let internal = code == ErrorCode::INTERNAL;
            return close(
                &mut sink,
                if internal { 1011 } else { 1008 },
                if internal {
                    "internal error"
                } else {
                    "hello refused"
                },
            )
            .await;
        }
    };
    if let Some(why) = takes_no_sockets(&state) {
        send_error(&state, &mut sink, ErrorCode::UNAVAILABLE, why).await;
        return close(&mut sink, 1013, "try again later").await;
    }
    let agent_id = who.agent.id.clone();
    let account_id = who.account_id;
    let (conn, SocketRx { mut rx, kill }) = state.hub.register(true);
    if let Some(cluster) = &state.cluster {
        // Every node's hub learns of this console before any frame of it reaches them.
        cluster.agent_online(conn, &who);
    }
    state.hub.agent_connect(conn, who);
    tracing::info!(agent = %agent_id, "agent connected");
    // The hub closes a silent socket; pings keep a healthy console talking (its pongs
    // are reported with `heard`).
    let mut ping = tokio::time::interval(AGENT_PING);
    loop {
        tokio::select! {
            out = rx.recv() => if !forward(&mut sink, &mut rx, out).await { break },
            _ = kill.notified() => {
                tracing::info!(agent = %agent_id, "agent socket fell behind its queue; closing");
                close(&mut sink, 1013, "too slow").await;
                break;
            }
            _ = ping.tick() => if sink.send(Message::Ping(Default::default())).await.is_err() { break },
            frame = stream.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(_))) => {
                        state.hub.heard(conn);
                        if !send_error(&state, &mut sink, ErrorCode::MALFORMED_FRAME, "binary frames are not supported").await { break }
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        state.hub.heard(conn);
                        continue;
                    }
                    Some(Err(e)) => { close_after(&mut sink, &e).await; break }
                    Some(Ok(Message::Close(_))) | None => break,
                };
                let decoded = decode::<AgentMessage>(&text);
                // The REST search's budget (shared by a cluster's nodes): guessing codes
                // must not be cheaper here.
                let limited = match &decoded {
                    Ok(AgentMessage::Search { q }) if crate::auth::is_lookup_code(q.trim()) => {
                        !crate::limits::lookup_allowed(&state, account_id).await
                    }
                    _ => false,
                };
                match decoded {
                    Ok(_) if limited => {
                        state.hub.heard(conn);
                        if !send_error(&state, &mut sink, ErrorCode::RATE_LIMITED, "too many lookup-code searches; retry in a minute").await { break }
                    }
                    // About a visitor or session another node owns: it handles it (and
                    // answers this socket over the bus).
                    Ok(msg) => match state.cluster.as_ref().and_then(|c| c.agent_frame_owner(&msg).map(|o| (c, o))) {
                        Some((cluster, _)) if !cluster.bus_up() => {
                            state.hub.heard(conn);
                            if !send_error(&state, &mut sink, ErrorCode::UNAVAILABLE, "the node that holds this visitor cannot be reached right now; nothing was done: retry").await { break }
                        }
                        Some((cluster, owner)) => {
                            state.hub.heard(conn);
                            cluster.forward_agent_frame(owner, conn, &text);
                        }
                        None => state.hub.agent_frame(conn, msg),
                    },
                    Err(e) => {
                        state.hub.heard(conn);
                        if !send_error(&state, &mut sink, e.code(), &e.to_string()).await { break }
                    }
                }
            }
        }
    }
    if let Some(cluster) = &state.cluster {
        cluster.agent_offline(conn);
    }
    state.hub.agent_gone(conn);
    tracing::info!(agent = %agent_id, "agent disconnected");
}
