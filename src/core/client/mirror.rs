//! Co-browsing in the SDK client: the consent gate between the page's mirror capture
//! (`src/web/mirror.js`) and the wire, and between agents' remote actions and the page.
//!
//! The capture runs only between [`MirrorCommand::Start`] and [`MirrorCommand::Stop`],
//! which the client emits when its session becomes active and when it ends (or the SDK
//! stops). Every batch the capture produces goes through [`VisitorClient::mirror`], which
//! sends it only while the session is active; otherwise it drops the batch and tells the
//! capture to stop. A remote action from the server reaches the page
//! ([`MirrorCommand::Apply`]) only while the session is active, control is granted to
//! the agent who sent it, and the config allows that kind of action; the page then checks
//! the target (never a masked element) and answers with [`VisitorClient::remote_applied`].

use super::{Control, Link, Output, VisitorClient};
use crate::core::machine::SessionStatus;
use crate::core::protocol::{RemoteAction, RemoteKind, RemoteRefusal, VisitorMessage};

/// What the page's mirror capture must do.
#[derive(Debug, Clone, PartialEq)]
pub enum MirrorCommand {
    /// Start capturing with a fresh snapshot (a new epoch); restarts a running capture.
    Start,
    /// Stop capturing and forget every node id.
    Stop,
    /// Apply this remote action to the page (already allowed by the client), then answer
    /// with [`VisitorClient::remote_applied`] (pointer moves need no answer).
    Apply { id: u32, action: RemoteAction },
    /// Control was granted (show the agent's pointer) or ended (hide it).
    Control { granted: bool },
    /// Send the page's asset `url` (the server's request `id`) through the mirror's
    /// frames, if the page's own checks allow it (docs/MIRROR.md, "Assets through
    /// covisit"); its answer goes through [`VisitorClient::mirror`] like every record.
    Asset { id: u32, url: String },
}

impl VisitorClient {
    /// A batch of mirror records from the capture, a JSON array (docs/MIRROR.md).
    /// Returns false when the capture must stop: the session is not active (or the SDK
    /// stopped), so nothing of the page may leave. While the socket is down the batch is
    /// dropped and true returned: the reconnect starts a new snapshot.
    pub fn mirror(&mut self, batch: &str) -> bool {
        if self.status != SessionStatus::Active || self.link == Link::Stopped {
            return false;
        }
        if self.link == Link::Ready && batch.starts_with('[') && batch.ends_with(']') {
            // The capture's JSON goes out as is: decoding it here would cost the page a
            // parse of every batch for nothing (the server checks its shape).
            self.outputs.push_back(Output::Transmit(
                [r#"{"type":"mirror","data":"#, batch, "}"].concat(),
            ));
        }
        true
    }

    /// The page applied (`ok`) or refused (`reason`) the remote action `id`.
    pub fn remote_applied(&mut self, id: u32, ok: bool, reason: Option<RemoteRefusal>) {
        self.send(VisitorMessage::RemoteApplied { id, ok, reason });
    }

    /// Whether the config lets an agent in control do this kind of action.
    pub fn remote_allowed(&self, kind: RemoteKind) -> bool {
        kind.allowed_by(&self.config.permissions)
    }

    pub(super) fn mirror_command(&mut self, command: MirrorCommand) {
        self.outputs.push_back(Output::Mirror(command));
    }

    /// The session became active in this tab (or resumed, or the socket came back).
    pub(super) fn mirror_start(&mut self) {
        if self.status == SessionStatus::Active && self.link != Link::Stopped {
            self.mirror_command(MirrorCommand::Start);
            self.draw_start();
            self.console_start();
        }
    }

    /// The server asks for one of the page's assets (it could not fetch it itself).
    /// Passed to the page only while the session is active and the page's config says
    /// `assetsProxyConfigured`; otherwise nothing of the page is read and nothing is
    /// answered (the server gives up after its own timeout).
    pub(super) fn handle_asset_request(&mut self, id: u32, url: String) {
        if self.status == SessionStatus::Active
            && self.link != Link::Stopped
            && self.config.permissions.assets_proxy_configured
        {
            self.mirror_command(MirrorCommand::Asset { id, url });
        }
    }

    /// A remote action from the server: checked here, then applied by the page.
    pub(super) fn handle_remote_action(&mut self, id: u32, agent_id: String, action: RemoteAction) {
        let kind = action.kind();
        let refusal = if self.status != SessionStatus::Active {
            Some(RemoteRefusal::SessionNotActive)
        } else if self.control != Control::Granted(agent_id) {
            Some(RemoteRefusal::ControlNotGranted)
        } else if !self.remote_allowed(kind) {
            Some(RemoteRefusal::PermissionDenied)
        } else {
            None
        };
        match refusal {
            None => self.mirror_command(MirrorCommand::Apply { id, action }),
            Some(_) if kind == RemoteKind::Pointer => {}
            Some(reason) => self.remote_applied(id, false, Some(reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::client::test_support::{
        drain, frame, session_request, transmitted, welcome, T0,
    };
    use crate::core::client::{PageInfo, StoredIds};
    use crate::core::model::Agent;
    use crate::core::protocol::{decode, ServerToVisitor};

    fn client() -> VisitorClient {
        let config = serde_json::json!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080"});
        VisitorClient::new(&config.into(), PageInfo::default(), StoredIds::default(), 7).unwrap()
    }

    fn agent() -> Agent {
        Agent::new("ea_1", "Sam", None)
    }

    fn active(c: &mut VisitorClient) {
        c.handle_frame(
            T0,
            &frame(ServerToVisitor::SessionStart {
                session_id: "s1".into(),
            }),
        );
        drain(c);
    }

    fn mirror_commands(outputs: &[Output]) -> Vec<MirrorCommand> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Mirror(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn action(c: &mut VisitorClient, id: u32, agent: &str, action: RemoteAction) -> Vec<Output> {
        c.handle_frame(
            T0,
            &frame(ServerToVisitor::RemoteAction {
                id,
                agent_id: agent.into(),
                action,
            }),
        );
        drain(c)
    }

    fn click() -> RemoteAction {
        RemoteAction::Click {
            node: 4,
            x: 1,
            y: 1,
        }
    }

    #[test]
    fn nothing_leaves_before_the_session_is_active_nor_after_it_ends() {
        let mut c = client();
        welcome(&mut c, T0);
        assert!(
            !c.mirror(r#"[["p",1,2]]"#),
            "no session: the capture must stop"
        );
        session_request(&mut c, T0, agent());
        assert!(!c.mirror(r#"[["p",1,2]]"#), "authorizing: nothing leaves");
        assert!(transmitted(&drain(&mut c)).is_empty());

        c.handle_frame(
            T0,
            &frame(ServerToVisitor::SessionStart {
                session_id: "s1".into(),
            }),
        );
        assert_eq!(mirror_commands(&drain(&mut c)), vec![MirrorCommand::Start]);
        assert!(c.mirror(r#"[["p",1,2]]"#));
        let out = transmitted(&drain(&mut c));
        assert_eq!(
            out,
            vec![r#"{"type":"mirror","data":[["p",1,2]]}"#.to_string()]
        );
        assert!(matches!(
            decode::<VisitorMessage>(&out[0]),
            Ok(VisitorMessage::Mirror { .. })
        ));

        c.end().unwrap();
        assert!(mirror_commands(&drain(&mut c)).contains(&MirrorCommand::Stop));
        assert!(!c.mirror(r#"[["p",1,2]]"#), "ended: the capture must stop");
        assert!(transmitted(&drain(&mut c)).is_empty());
    }

    #[test]
    fn a_reconnect_during_a_session_restarts_the_snapshot_and_stop_stops_it() {
        let mut c = client();
        welcome(&mut c, T0);
        active(&mut c);
        c.handle_socket_close(T0);
        assert!(c.mirror("[]"), "offline: dropped, but keep capturing");
        assert!(transmitted(&drain(&mut c)).is_empty());
        let out = welcome(&mut c, T0);
        assert_eq!(mirror_commands(&out), vec![MirrorCommand::Start]);
        c.handle_frame(T0, &frame(ServerToVisitor::MirrorResync));
        assert_eq!(mirror_commands(&drain(&mut c)), vec![MirrorCommand::Start]);
        c.stop();
        assert_eq!(mirror_commands(&drain(&mut c)), vec![MirrorCommand::Stop]);
        assert!(!c.mirror("[]"));
    }

    #[test]
    fn remote_actions_apply_only_with_control_granted_to_that_agent_and_permission() {
        let mut c = client();
        welcome(&mut c, T0);
        active(&mut c);
        // Not granted: refused with an answer, never applied.
        let out = action(&mut c, 1, "ea_1", click());
        assert!(mirror_commands(&out).is_empty());
        assert!(transmitted(&out)[0].contains(r#""reason":"control_not_granted""#));

        c.handle_frame(
            T0,
            &frame(ServerToVisitor::ControlStart {
                agent_id: "ea_1".into(),
            }),
        );
        assert!(mirror_commands(&drain(&mut c)).contains(&MirrorCommand::Control { granted: true }));
        let out = action(&mut c, 2, "ea_1", click());
        assert_eq!(
            mirror_commands(&out),
            vec![MirrorCommand::Apply {
                id: 2,
                action: click()
            }]
        );
        // Another agent of the session is not the one in control.
        let out = action(&mut c, 3, "ea_2", click());
        assert!(mirror_commands(&out).is_empty());
        // Redirect is off by default (SPEC.md section 3).
        let out = action(
            &mut c,
            4,
            "ea_1",
            RemoteAction::Redirect { url: "/".into() },
        );
        assert!(mirror_commands(&out).is_empty());
        assert!(transmitted(&out)[0].contains(r#""reason":"permission_denied""#));

        c.revoke_control().unwrap();
        assert!(
            mirror_commands(&drain(&mut c)).contains(&MirrorCommand::Control { granted: false })
        );
        let out = action(&mut c, 5, "ea_1", click());
        assert!(mirror_commands(&out).is_empty());
    }

    #[test]
    fn a_permission_that_is_off_refuses_that_kind() {
        let mut c = VisitorClient::new(
            &serde_json::json!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080", "allowRemoteType": false}).into(),
            PageInfo::default(),
            StoredIds::default(),
            1,
        )
        .unwrap();
        welcome(&mut c, T0);
        active(&mut c);
        c.handle_frame(
            T0,
            &frame(ServerToVisitor::ControlStart {
                agent_id: "ea_1".into(),
            }),
        );
        drain(&mut c);
        let typed = RemoteAction::Type {
            node: 3,
            value: "x".into(),
        };
        let out = action(&mut c, 1, "ea_1", typed);
        assert!(mirror_commands(&out).is_empty());
        assert!(transmitted(&out)[0].contains("permission_denied"));
        let out = action(&mut c, 2, "ea_1", click());
        assert_eq!(mirror_commands(&out).len(), 1);
    }

    fn asset_ask(c: &mut VisitorClient, id: u32) -> Vec<MirrorCommand> {
        c.handle_frame(
            T0,
            &frame(ServerToVisitor::AssetRequest {
                id,
                url: "https://shop.example/img/a.png".into(),
            }),
        );
        mirror_commands(&drain(c))
    }

    #[test]
    fn an_asset_request_reaches_the_page_only_during_an_active_session_of_a_page_that_opted_in() {
        let opted_in = serde_json::json!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080", "assetsProxyConfigured": true});
        let mut c = VisitorClient::new(
            &opted_in.into(),
            PageInfo::default(),
            StoredIds::default(),
            1,
        )
        .unwrap();
        welcome(&mut c, T0);
        assert!(
            asset_ask(&mut c, 1).is_empty(),
            "no session: the page is not read"
        );
        session_request(&mut c, T0, agent());
        assert!(asset_ask(&mut c, 2).is_empty(), "authorizing: not yet");
        active(&mut c);
        assert_eq!(
            asset_ask(&mut c, 3),
            vec![MirrorCommand::Asset {
                id: 3,
                url: "https://shop.example/img/a.png".into()
            }]
        );
        // The page's answer goes through the one gate: only while active.
        assert!(c.mirror(r#"[["a",3,"image/png","iVBO",1]]"#));
        c.end().unwrap();
        drain(&mut c);
        assert!(asset_ask(&mut c, 4).is_empty(), "ended: nothing more");
        assert!(!c.mirror(r#"[["a",4,"image/png","iVBO",1]]"#));
        assert!(transmitted(&drain(&mut c)).is_empty());

        // A page that did not set assetsProxyConfigured is never asked.
        let mut c = client();
        welcome(&mut c, T0);
        active(&mut c);
        assert!(asset_ask(&mut c, 5).is_empty());
    }
}
