//! The figures `/metrics` exposes (Prometheus/OpenMetrics text, via `prometheus-client`):
//! counters the shell bumps as it goes, gauges read from the hub when scraped.
//! Leaf module: names no other module.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters and gauges of one server, registered once.
pub struct Metrics {
    registry: Registry,
    messages_relayed: Counter,
    errors: Counter,
    online_visitors: Gauge,
    live_sessions: Gauge,
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
        Metrics {
            registry,
            messages_relayed,
            errors,
            online_visitors,
            live_sessions,
        }
    }
}

impl Metrics {
    /// One frame handed to a socket.
    pub fn relayed(&self) {
        self.messages_relayed.inc();
    }

    /// One error frame or error response.
    pub fn error(&self) {
        self.errors.inc();
    }

    /// The exposition text, with the hub's counts as of now.
    pub fn render(&self, online_visitors: usize, live_sessions: usize) -> String {
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
        let text = m.render(3, 1);
        for line in [
            "covisit_online_visitors 3",
            "covisit_live_sessions 1",
            "covisit_messages_relayed_total 2",
            "covisit_errors_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
