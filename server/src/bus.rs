//! The bus between the nodes of a cluster, on Redis pub/sub: one inbox channel per node
//! (frames bridged to and from a visitor's owner, agent frames for a session's owner,
//! calls and their answers, who is online), one channel per account for news about its
//! visitors, and one for everybody (sign-outs, slot changes). At most once and in order
//! per sender and channel, as Redis pub/sub is: nothing whose loss corrupts state goes
//! over it (state frames carry whole state, mirror streams resync), and what must be
//! right lives in PostgreSQL.
//!
//! A message is a JSON header line, then, for frames, the frame's text as it is (no
//! second JSON escaping of page content on the hot path).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushInfo, PushKind, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::hub::{AgentIdentity, CloseReason, VisitorNews};

/// A node's number in the cluster (from PostgreSQL): the high bits of its `ConnId`s.
pub type NodeIdx = u16;

/// Bits of a `ConnId` below the node's number.
pub const CONN_BITS: u32 = 40;

/// The node whose socket a `ConnId` names.
pub fn home_of(conn: u64) -> NodeIdx {
    (conn >> CONN_BITS) as NodeIdx
}

/// A call one node makes to the owner of a visitor or session (REST on a node that is
/// not the owner), answered with [`BusMsg::Reply`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    RequestSession {
        account_id: i64,
        short_id: String,
        agent: covisit::core::model::Agent,
        source: covisit::core::model::SessionSource,
    },
    EndSession {
        account_id: i64,
        session_id: String,
    },
    AddNote {
        account_id: i64,
        session_id: String,
        by: String,
        text: String,
    },
    /// An agent rates a session it was part of, once it ended.
    RateSession {
        account_id: i64,
        session_id: String,
        agent_id: String,
        rating: u8,
        feedback: Option<String>,
    },
    EraseVisitor {
        account_id: i64,
        short_id: String,
    },
    /// A journey beacon's events (checked where it arrived: key, origin, secret).
    Track(Box<covisit::core::journey::TrackInput>),
    /// An asset of a live session for its agent's mirror (`GET …/assets`, checked where
    /// it arrived: the signed-in user), fetched by the session's owner.
    Asset {
        account_id: i64,
        user_id: String,
        session_id: String,
        tab: String,
        url: String,
    },
}

/// What went over the bus.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum BusMsg {
    // ----- to a visitor's owner ----------------------------------------------------
    /// A visitor's tab connected to node `home`, whose socket is `conn`: its hello
    /// (body), already checked against the key and the page's origin there.
    VisitorOpen {
        conn: u64,
        account_id: i64,
        ip: String,
        origin: Option<String>,
    },
    /// A frame of that tab (body).
    VisitorText {
        conn: u64,
    },
    /// The tab's socket closed.
    VisitorGone {
        conn: u64,
    },
    /// An agent's frame for a session or visitor this node owns (body).
    AgentText {
        conn: u64,
    },
    /// A call; answered to `from`'s inbox.
    Call {
        id: u64,
        from: NodeIdx,
        call: Call,
    },

    // ----- to the node holding a socket -------------------------------------------
    /// Send this frame (body) on socket `conn`; `from` sent it; `relay`: it is mirror
    /// data of a visitor tab (its number, and whether it starts a snapshot), which the
    /// holder may drop when the socket falls behind (then it tells `from`: `Lagged`).
    Deliver {
        conn: u64,
        from: NodeIdx,
        relay: Option<(u64, bool)>,
    },
    /// Close socket `conn` (the hub's reasons).
    Close {
        conn: u64,
        reason: CloseReason,
    },
    /// Close socket `conn` with this WebSocket code and reason (a bridged visitor's
    /// hello refused by its owner, and the like).
    CloseWith {
        conn: u64,
        code: u16,
        reason: String,
    },
    /// The console on socket `conn` lost mirror data this node sent: ask for snapshots.
    Lagged {
        conn: u64,
    },
    /// The answer to call `id`: `Ok` with a JSON value, or an error's status, code and
    /// message.
    Reply {
        id: u64,
        result: Result<serde_json::Value, (u16, String, String)>,
    },

    // ----- to every node's inbox (in order with the frames of the same socket) -----------
    /// An agent's socket on node `home(conn)` said hello.
    AgentOnline {
        conn: u64,
        who: AgentIdentity,
    },
    /// That socket closed.
    AgentGone {
        conn: u64,
    },
    /// Node `from` (re)joined the bus: tell it your agents again. `restored`: it is
    /// back after losing Redis, so what was sent to it meanwhile is lost: resend your
    /// sessions' state to the agents and ask for snapshots (see `BusEvent::Restored`).
    Hello {
        from: NodeIdx,
        #[serde(default)]
        restored: bool,
    },

    // ----- to everybody --------------------------------------------------------------
    /// Close every socket of this user (disabled, role changed).
    CloseUser {
        user_id: String,
    },
    /// Close the sockets opened with this key (revoked).
    CloseKey {
        account_id: i64,
        public_key: String,
    },
    /// Close the sockets of this sign-in session (signed out).
    CloseAuthSession {
        session: String,
    },
    /// Slot ownership changed: read the table now.
    SlotsChanged,

    // ----- to an account's channel ---------------------------------------------------
    News(Box<VisitorNews>),
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To {
    Node(NodeIdx),
    Account(i64),
    All,
}

impl To {
    fn channel(self, prefix: &str) -> String {
        match self {
            To::Node(n) => format!("{prefix}:n:{n}"),
            To::Account(a) => format!("{prefix}:a:{a}"),
            To::All => format!("{prefix}:all"),
        }
    }
}

/// What arrived: a message and its body (a frame's text, or empty).
#[derive(Debug)]
pub struct Received {
    pub msg: BusMsg,
    pub body: String,
    /// When it arrived from Redis (its wait to be handled goes to `/metrics`).
    pub arrived: Instant,
}

/// What the bus tells its listener besides messages.
#[derive(Debug)]
pub enum BusEvent {
    Message(Box<Received>),
    /// The connection to Redis dropped; messages may have been lost until `Restored`.
    Lost,
    /// Subscribed again after a drop: whoever relies on the bus must resend state.
    Restored,
}

/// Counters and latencies for `/metrics` (the histograms are registered there: a clone
/// shares its buckets).
pub struct BusStats {
    pub published: AtomicU64,
    pub received: AtomicU64,
    pub publish_failures: AtomicU64,
    /// Sum and count of publish round trips (µs), for the mean.
    pub publish_micros: AtomicU64,
    pub publish_batches: AtomicU64,
    /// How long each pipeline took Redis to take.
    pub publish_seconds: Histogram,
    /// How long each received message waited between its arrival from Redis and this
    /// node handling it.
    pub receive_seconds: Histogram,
}

impl Default for BusStats {
    fn default() -> BusStats {
        // 50 µs to about 1.6 s.
        let buckets = || Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        BusStats {
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
            publish_failures: AtomicU64::new(0),
            publish_micros: AtomicU64::new(0),
            publish_batches: AtomicU64::new(0),
            publish_seconds: buckets(),
            receive_seconds: buckets(),
        }
    }
}

/// A handle to publish; cheap to clone.
#[derive(Clone)]
pub struct Bus {
    tx: mpsc::UnboundedSender<(String, Vec<u8>)>,
    prefix: Arc<str>,
    pub stats: Arc<BusStats>,
    /// For the shared counters (a connection manager is a cheap handle).
    counters: ConnectionManager,
}

/// Most messages sent in one pipeline.
const MAX_BATCH: usize = 512;

impl Bus {
    /// Connects to Redis at `url` as node `node`: subscribes to its inbox, the
    /// all-nodes channel and every account's channel, and hands what arrives to the
    /// returned receiver. `prefix` separates clusters sharing one Redis.
    pub async fn connect(
        url: &str,
        prefix: &str,
        node: NodeIdx,
    ) -> Result<(Bus, mpsc::UnboundedReceiver<BusEvent>), String> {
        let url = if url.contains("protocol=") {
            url.to_string()
        } else if url.contains('?') {
            format!("{url}&protocol=resp3")
        } else {
            format!("{url}?protocol=resp3")
        };
        let shown = crate::store::redact_url(&url);
        let client =
            redis::Client::open(url.as_str()).map_err(|e| format!("--bus {shown}: {e}"))?;
        let (push_tx, mut push_rx) = mpsc::unbounded_channel::<PushInfo>();
        let sub_config = ConnectionManagerConfig::new()
            .set_push_sender(push_tx)
            .set_automatic_resubscription();
        let mut sub = client
            .get_connection_manager_with_config(sub_config)
            .await
            .map_err(|e| format!("--bus {shown}: cannot reach Redis: {e}"))?;
        let inbox = To::Node(node).channel(prefix);
        let all = To::All.channel(prefix);
        sub.subscribe(&[inbox.as_str(), all.as_str()])
            .await
            .map_err(|e| format!("--bus {shown}: cannot subscribe: {e}"))?;
        sub.psubscribe(format!("{prefix}:a:*"))
            .await
            .map_err(|e| format!("--bus {shown}: cannot subscribe: {e}"))?;
        let publisher = client
            .get_connection_manager()
            .await
            .map_err(|e| format!("--bus {shown}: cannot reach Redis: {e}"))?;
        let stats = Arc::new(BusStats::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let counters = publisher.clone();
        tokio::spawn(publish_loop(publisher, rx, stats.clone()));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let received = stats.clone();
        tokio::spawn(async move {
            // Keeps the subscription alive (it resubscribes after a reconnect).
            let _sub = sub;
            let mut lost = false;
            while let Some(push) = push_rx.recv().await {
                match push.kind {
                    PushKind::Disconnection => {
                        lost = true;
                        if events_tx.send(BusEvent::Lost).is_err() {
                            break;
                        }
                    }
                    PushKind::Subscribe | PushKind::PSubscribe if lost => {
                        lost = false;
                        if events_tx.send(BusEvent::Restored).is_err() {
                            break;
                        }
                    }
                    PushKind::Message | PushKind::PMessage => {
                        // message: [channel, payload]; pmessage: [pattern, channel, payload]
                        let Some(Value::BulkString(payload)) = push.data.last() else {
                            continue;
                        };
                        match decode(payload) {
                            Some(r) => {
                                received.received.fetch_add(1, Ordering::Relaxed);
                                if events_tx.send(BusEvent::Message(Box::new(r))).is_err() {
                                    break;
                                }
                            }
                            None => tracing::warn!("bus: a message that is not ours; ignored"),
                        }
                    }
                    _ => {}
                }
            }
        });
        Ok((
            Bus {
                tx,
                prefix: prefix.into(),
                stats,
                counters,
            },
            events_rx,
        ))
    }

    /// Publishes `msg` (with `body`, a frame's text, or "") to `to`; in order with this
    /// node's earlier messages to the same place.
    pub fn send(&self, to: To, msg: &BusMsg, body: &str) {
        let mut bytes = serde_json::to_vec(msg).unwrap_or_default();
        bytes.push(b'\n');
        bytes.extend_from_slice(body.as_bytes());
        let _ = self.tx.send((to.channel(&self.prefix), bytes));
    }
}

fn decode(payload: &[u8]) -> Option<Received> {
    let split = payload.iter().position(|b| *b == b'\n')?;
    let msg: BusMsg = serde_json::from_slice(&payload[..split]).ok()?;
    let body = std::str::from_utf8(&payload[split + 1..]).ok()?.to_string();
    Some(Received {
        msg,
        body,
        arrived: Instant::now(),
    })
}

/// Sends what is queued, in order, as pipelines of up to [`MAX_BATCH`] messages.
/// How long a shared counter's call may take before the caller decides alone.
const COUNTER_TIMEOUT: Duration = Duration::from_millis(500);

impl Bus {
    /// Adds one to the shared counter `name` for the current window of `window`
    /// (fixed windows on the caller's clock, `now_secs`) and returns its new value:
    /// every node counts into the same one.
    pub async fn count(&self, name: &str, window: Duration, now_secs: u64) -> Result<u64, String> {
        let window = window.as_secs().max(1);
        let key = format!("{}:rl:{name}:{}", self.prefix, now_secs / window);
        let mut con = self.counters.clone();
        let (n,): (u64,) = tokio::time::timeout(
            COUNTER_TIMEOUT,
            redis::pipe()
                .atomic()
                .incr(&key, 1u64)
                .expire(&key, (window * 2) as i64)
                .ignore()
                .query_async(&mut con),
        )
        .await
        .map_err(|_| "Redis did not answer in time".to_string())?
        .map_err(|e| e.to_string())?;
        Ok(n)
    }

    /// Sets the shared flag `name` for `ttl`.
    pub async fn set_flag(&self, name: &str, ttl: Duration) -> Result<(), String> {
        let key = format!("{}:flag:{name}", self.prefix);
        let mut con = self.counters.clone();
        let ms = ttl.as_millis().clamp(1, u128::from(u32::MAX)) as u64;
        tokio::time::timeout(
            COUNTER_TIMEOUT,
            redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut con),
        )
        .await
        .map_err(|_| "Redis did not answer in time".to_string())?
        .map_err(|e| e.to_string())
    }

    /// Whether one of the shared flags `names` is set.
    pub async fn any_flag(&self, names: &[String]) -> Result<bool, String> {
        let keys: Vec<String> = names
            .iter()
            .map(|n| format!("{}:flag:{n}", self.prefix))
            .collect();
        let mut con = self.counters.clone();
        let n: u64 = tokio::time::timeout(
            COUNTER_TIMEOUT,
            redis::cmd("EXISTS").arg(&keys).query_async(&mut con),
        )
        .await
        .map_err(|_| "Redis did not answer in time".to_string())?
        .map_err(|e| e.to_string())?;
        Ok(n > 0)
    }
}

async fn publish_loop(
    mut con: ConnectionManager,
    mut rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    stats: Arc<BusStats>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for (channel, bytes) in batch.drain(..) {
            pipe.publish(channel, bytes).ignore();
        }
        let n = pipe.cmd_iter().count() as u64;
        let started = Instant::now();
        match pipe.query_async::<()>(&mut con).await {
            Ok(()) => {
                stats.published.fetch_add(n, Ordering::Relaxed);
                let took = started.elapsed();
                stats
                    .publish_micros
                    .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
                stats.publish_seconds.observe(took.as_secs_f64());
                stats.publish_batches.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                // At most once: the lost messages are recovered by resyncs (see
                // BusEvent::Restored) and by clients reconnecting.
                stats.publish_failures.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(error = %e, messages = n, "bus: publish failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_and_its_body_survive_the_wire_format() {
        let msg = BusMsg::VisitorText {
            conn: 7 << CONN_BITS | 42,
        };
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(b'\n');
        bytes.extend_from_slice("{\"type\":\"mirror\",\"data\":[[\"T\",1,\"a\\nb\"]]}".as_bytes());
        let r = decode(&bytes).expect("decodes");
        assert!(matches!(r.msg, BusMsg::VisitorText { conn } if home_of(conn) == 7));
        assert_eq!(
            r.body,
            "{\"type\":\"mirror\",\"data\":[[\"T\",1,\"a\\nb\"]]}"
        );
        assert!(decode(b"not json\nbody").is_none());
    }
}
