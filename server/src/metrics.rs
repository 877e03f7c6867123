//! The figures `/metrics` exposes (Prometheus/OpenMetrics text, via `prometheus-client`):
//! counters the shell bumps as it goes, gauges read from the hub when scraped.
//! Leaf module: names no other module.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Counters and gauges of one server, registered once.
pub struct Metrics {
    registry: Registry,
    messages_relayed: Counter,
    errors: Counter,
    online_visitors: Gauge,
    live_sessions: Gauge,
    store_commit_seconds: Histogram,
    node: Option<NodeMetrics>,
}

/// What a node of several adds.
struct NodeMetrics {
    owned_visitors: Gauge,
    bridged_sockets: Gauge,
    fenced: Gauge,
    draining: Gauge,
    bus_published: Counter,
    bus_received: Counter,
    bus_publish_failures: Counter,
    bus_publish_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    bus_publish_batches: Counter,
}

/// A node's figures when `/metrics` is read (clustered only).
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeFigures {
    pub owned_visitors: u64,
    pub bridged_sockets: u64,
    pub fenced: bool,
    pub draining: bool,
    pub bus_published: u64,
    pub bus_received: u64,
    pub bus_publish_failures: u64,
    pub bus_publish_micros: u64,
    pub bus_publish_batches: u64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("covisit");
        let (messages_relayed, errors) = (Counter::default(), Counter::default());
        let (online_visitors, live_sessions) = (Gauge::default(), Gauge::default());
        registry.register(
            "online_visitors",
            "Visitors with at least one open connection",
            online_visitors.clone(),
        );
        registry.register(
            "live_sessions",
            "Sessions authorizing or active",
            live_sessions.clone(),
        );
        registry.register(
            "messages_relayed",
            "Frames sent to visitors and agents",
            messages_relayed.clone(),
        );
        registry.register(
            "errors",
            "Error frames and error responses sent",
            errors.clone(),
        );
        // 0.25 ms to about 4 s.
        let store_commit_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 15));
        registry.register(
            "store_commit_seconds",
            "How long the store took to commit a batch of writes",
            store_commit_seconds.clone(),
        );
        Metrics {
            registry,
            messages_relayed,
            errors,
            online_visitors,
            live_sessions,
            store_commit_seconds,
            node: None,
        }
    }
}

impl Metrics {
    /// The metrics of a node of several: also its owned visitors, bridged sockets, the
    /// bus's traffic and latency (`publish`, `receive`: the bus's own histograms), and
    /// whether it is fenced or draining.
    pub fn clustered(publish: Histogram, receive: Histogram) -> Metrics {
        let mut m = Metrics::default();
        let node = NodeMetrics {
            owned_visitors: Gauge::default(),
            bridged_sockets: Gauge::default(),
            fenced: Gauge::default(),
            draining: Gauge::default(),
            bus_published: Counter::default(),
            bus_received: Counter::default(),
            bus_publish_failures: Counter::default(),
            bus_publish_seconds: Counter::default(),
            bus_publish_batches: Counter::default(),
        };
        let r = &mut m.registry;
        r.register(
            "owned_visitors",
            "Online visitors this node owns",
            node.owned_visitors.clone(),
        );
        r.register(
            "bridged_sockets",
            "Visitor sockets this node holds for another node (the visitor's owner)",
            node.bridged_sockets.clone(),
        );
        r.register(
            "node_fenced",
            "1 when this node lost its membership and serves nothing",
            node.fenced.clone(),
        );
        r.register(
            "node_draining",
            "1 while this node hands its visitors over to shut down",
            node.draining.clone(),
        );
        r.register(
            "bus_published",
            "Messages this node published on the bus",
            node.bus_published.clone(),
        );
        r.register(
            "bus_received",
            "Messages this node received from the bus",
            node.bus_received.clone(),
        );
        r.register(
            "bus_publish_failures",
            "Messages the bus could not publish (lost)",
            node.bus_publish_failures.clone(),
        );
        r.register(
            "bus_publish_seconds",
            "Time spent waiting for Redis to take published batches",
            node.bus_publish_seconds.clone(),
        );
        r.register(
            "bus_publish_batches",
            "Batches (pipelines) published",
            node.bus_publish_batches.clone(),
        );
        r.register(
            "bus_publish_latency_seconds",
            "How long Redis took to take each published batch",
            publish,
        );
        r.register(
            "bus_receive_wait_seconds",
            "How long each message from the bus waited, after it arrived, to be handled",
            receive,
        );
        m.node = Some(node);
        m
    }

    /// One batch committed by the store in `seconds`.
    pub fn committed(&self, seconds: f64) {
        self.store_commit_seconds.observe(seconds);
    }

    /// One frame handed to a socket.
    pub fn relayed(&self) {
        self.messages_relayed.inc();
    }

    /// One error frame or error response.
    pub fn error(&self) {
        self.errors.inc();
    }

    /// The exposition text, with the hub's counts as of now (and a node's figures).
    pub fn render(
        &self,
        online_visitors: usize,
        live_sessions: usize,
        node: Option<NodeFigures>,
    ) -> String {
        if let (Some(m), Some(f)) = (&self.node, node) {
            let set = |g: &Gauge, v: u64| {
                g.set(i64::try_from(v).unwrap_or(i64::MAX));
            };
            set(&m.owned_visitors, f.owned_visitors);
            set(&m.bridged_sockets, f.bridged_sockets);
            set(&m.fenced, u64::from(f.fenced));
            set(&m.draining, u64::from(f.draining));
            // The bus keeps its own atomics: the counters follow them.
            let follow = |c: &Counter, v: u64| {
                c.inner().store(v, std::sync::atomic::Ordering::Relaxed);
            };
            follow(&m.bus_published, f.bus_published);
            follow(&m.bus_received, f.bus_received);
            follow(&m.bus_publish_failures, f.bus_publish_failures);
            follow(&m.bus_publish_batches, f.bus_publish_batches);
            m.bus_publish_seconds.inner().store(
                (f.bus_publish_micros as f64 / 1e6).to_bits(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        self.online_visitors
            .set(i64::try_from(online_visitors).unwrap_or(i64::MAX));
        self.live_sessions
            .set(i64::try_from(live_sessions).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_appear_under_their_names() {
        let m = Metrics::default();
        m.relayed();
        m.relayed();
        m.error();
        let text = m.render(3, 1, None);
        for line in [
            "covisit_online_visitors 3",
            "covisit_live_sessions 1",
            "covisit_messages_relayed_total 2",
            "covisit_errors_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn a_node_shows_the_bus_latencies_as_histograms() {
        let buckets = || Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let (publish, receive) = (buckets(), buckets());
        let m = Metrics::clustered(publish.clone(), receive.clone());
        publish.observe(0.002);
        receive.observe(0.000_1);
        receive.observe(0.000_1);
        let text = m.render(0, 0, Some(NodeFigures::default()));
        for line in [
            "covisit_bus_publish_latency_seconds_count 1",
            "covisit_bus_receive_wait_seconds_count 2",
            "covisit_node_fenced 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
