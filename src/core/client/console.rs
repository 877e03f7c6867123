//! The remote console in the SDK client (`allowRemoteConsole`, default off): the consent
//! gate between the page's console hooks (`src/web/console.js`, loaded on demand) and
//! the wire.
//!
//! The page's console is page content: nothing of it may leave before the visitor
//! allowed a session. So the hooks are not even installed until the session is active
//! in this tab and the config allows it ([`ConsoleCommand`]`(true)`), and they go as soon
//! as it ends or the SDK stops (`false`). Every batch they produce passes through
//! [`VisitorClient::console`], which sends it only under the same conditions and
//! otherwise tells the hooks to go. With `allowRemoteConsole: false` nothing but the
//! removal is ever emitted, so the hooks never load. Nothing is evaluated on the page.

use super::{Link, Output, VisitorClient};
use crate::core::machine::SessionStatus;
use crate::core::protocol::MAX_FRAME_BYTES;

/// Install (`true`) or remove (`false`) the page's console hooks.
pub type ConsoleCommand = bool;

impl VisitorClient {
    /// Whether the page's console may reach the agents now.
    pub fn console_allowed(&self) -> bool {
        self.config.permissions.allow_remote_console
            && self.status == SessionStatus::Active
            && self.link != Link::Stopped
    }

    /// A batch of console entries from the hooks: a JSON array of `ConsoleEntry`
    /// (`docs/PROTOCOL.md`), already cut and rate-limited by the hooks; the server
    /// checks every entry again. Returns false when the hooks must go (not allowed
    /// now). While the socket is down the batch is dropped.
    pub fn console(&mut self, batch: &str) -> bool {
        if !self.console_allowed() {
            return false;
        }
        if self.link == Link::Ready
            && batch.starts_with('[')
            && batch.ends_with(']')
            && batch.len() < MAX_FRAME_BYTES - 64
        {
            self.outputs.push_back(Output::Transmit(
                [r#"{"type":"console","entries":"#, batch, "}"].concat(),
            ));
        }
        true
    }

    /// The session became active in this tab (or resumed): install the hooks if allowed.
    pub(super) fn console_start(&mut self) {
        if self.console_allowed() {
            self.outputs.push_back(Output::Console(true));
        }
    }

    /// The session is over here (or the SDK stops): the hooks go.
    pub(super) fn console_stop(&mut self) {
        if self.config.permissions.allow_remote_console {
            self.outputs.push_back(Output::Console(false));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::core::client::test_support::{drain, frame, welcome, T0};
    use crate::core::client::{Output, PageInfo, StoredIds, VisitorClient};
    use crate::core::protocol::ServerToVisitor;

    fn client(allow: bool) -> VisitorClient {
        let config = serde_json::json!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080",
            "allowRemoteConsole": allow});
        VisitorClient::new(&config.into(), PageInfo::default(), StoredIds::default(), 7).unwrap()
    }

    fn start(c: &mut VisitorClient) -> Vec<Output> {
        c.handle_frame(
            T0,
            &frame(ServerToVisitor::SessionStart {
                session_id: "s1".into(),
            }),
        );
        drain(c)
    }

    /// Off (the default): the hooks never install, and a batch never goes out.
    #[test]
    fn off_means_no_hooks_and_nothing_sent() {
        let mut c = client(false);
        welcome(&mut c, T0);
        let out = start(&mut c);
        assert!(!out.iter().any(|o| matches!(o, Output::Console(_))));
        assert!(!c.console(r#"[{"kind":"log","at":1,"text":"x"}]"#));
        assert!(drain(&mut c).is_empty());
    }

    /// On: hooks only once the session is active, batches only while it is, and the
    /// hooks go when it ends.
    #[test]
    fn on_sends_only_while_active() {
        let mut c = client(true);
        welcome(&mut c, T0);
        drain(&mut c);
        assert!(!c.console("[]"), "before the session: nothing");
        let out = start(&mut c);
        assert!(out.contains(&Output::Console(true)));
        assert!(c.console(r#"[{"kind":"log","at":1,"text":"x"}]"#));
        assert_eq!(
            drain(&mut c),
            vec![Output::Transmit(
                r#"{"type":"console","entries":[{"kind":"log","at":1,"text":"x"}]}"#.into()
            )]
        );
        c.end().unwrap();
        assert!(drain(&mut c).contains(&Output::Console(false)));
        assert!(!c.console("[]"));
    }

    /// The frame the SDK writes by hand is the protocol's `console` message.
    #[test]
    fn the_hand_written_frame_decodes() {
        use crate::core::protocol::{decode, ConsoleKind, VisitorMessage};
        let mut c = client(true);
        welcome(&mut c, T0);
        start(&mut c);
        c.console(r#"[{"kind":"network","at":5,"text":"GET /x 404","method":"GET","url":"https://a.test/x","status":404}]"#);
        let Some(Output::Transmit(text)) = drain(&mut c).pop() else {
            panic!("no frame")
        };
        match decode::<VisitorMessage>(&text) {
            Ok(VisitorMessage::Console { entries }) => {
                assert_eq!(entries.len(), 1);
                assert_eq!(entries[0].kind, ConsoleKind::Network);
                assert_eq!(entries[0].status, Some(404));
                assert!(entries[0].check().is_ok());
            }
            other => panic!("{text} decodes as {other:?}"),
        }
    }
}
