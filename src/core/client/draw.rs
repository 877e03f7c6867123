//! Agents' laser pointer and ink in the SDK client: the consent gate between the server's
//! `draw` frames and the page's drawing layer (`src/web/draw.js`, loaded on demand).
//!
//! The layer gets anything only while the session is active and the page's config has
//! `allowAgentDrawing` (default true): [`DrawCommand::Start`] when the session becomes
//! active in this tab (the facade fetches the layer then), [`DrawCommand::Ink`] for each
//! frame that passes the gate, and [`DrawCommand::Stop`] when the session ends or the
//! SDK stops (every ink goes). With `allowAgentDrawing: false` no command but `Stop` is
//! ever emitted, so the layer is never even loaded, whatever frame arrives. The server
//! refuses agents' drawing for such a tab too; this gate does not rely on it.

use super::{Link, Output, VisitorClient};
use crate::core::json::Json;
use crate::core::machine::SessionStatus;

/// The longest agent name the layer shows (longer ones are cut, at a char boundary).
pub const MAX_INK_NAME: usize = 64;

/// What the page's drawing layer must do.
#[derive(Debug, Clone, PartialEq)]
pub enum DrawCommand {
    /// A session is active and drawing allowed: get the layer ready.
    Start,
    /// Show this ink (the protocol's `Ink`, as JSON: the layer reads and checks it) of
    /// the agent `agent_id`, tagged `name`, in palette colour `color`.
    Ink {
        agent_id: String,
        name: String,
        color: u32,
        ink: Json,
    },
    /// Take every ink (and the layer) away.
    Stop,
}

impl VisitorClient {
    /// Whether agents' inks may be shown now.
    pub fn drawing_allowed(&self) -> bool {
        self.config.allow_agent_drawing
            && self.status == SessionStatus::Active
            && self.link != Link::Stopped
    }

    /// A `draw` frame from the server (already decoded and range-checked).
    pub(super) fn handle_draw(
        &mut self,
        agent_id: String,
        mut name: String,
        color: u32,
        ink: Json,
    ) {
        if !self.drawing_allowed() {
            return; // not shown, not answered: the agent's console hears nothing back
        }
        if name.len() > MAX_INK_NAME {
            let mut cut = MAX_INK_NAME;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            name.truncate(cut);
        }
        self.outputs.push_back(Output::Draw(DrawCommand::Ink {
            agent_id,
            name,
            color,
            ink,
        }));
    }

    /// The session became active in this tab (or resumed): the layer may be needed.
    pub(super) fn draw_start(&mut self) {
        if self.drawing_allowed() {
            self.outputs.push_back(Output::Draw(DrawCommand::Start));
        }
    }

    /// The session is over here (or the SDK stops): no ink stays.
    pub(super) fn draw_stop(&mut self) {
        self.outputs.push_back(Output::Draw(DrawCommand::Stop));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::client::test_support::{drain, frame, session_request, welcome, T0};
    use crate::core::client::{PageInfo, StoredIds};
    use crate::core::model::Agent;
    use crate::core::protocol::{Ink, InkShape, ServerToVisitor};

    fn client(extra: serde_json::Value) -> VisitorClient {
        let mut config =
            serde_json::json!({"apiKey": "pk_demo", "server": "http://127.0.0.1:8080"});
        if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        VisitorClient::new(&config.into(), PageInfo::default(), StoredIds::default(), 7).unwrap()
    }

    fn draws(outputs: &[Output]) -> Vec<DrawCommand> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Draw(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    fn stroke() -> Json {
        Json::from(&Ink::Stroke {
            id: 1,
            node: 4,
            epoch: 7,
            ox: 10,
            oy: 20,
            shape: InkShape::Free,
            pinned: false,
            done: false,
            points: vec![[0, 0], [5, -3]],
        })
    }

    fn draw(c: &mut VisitorClient, name: &str) -> Vec<DrawCommand> {
        c.handle_frame(
            T0,
            &frame(ServerToVisitor::Draw {
                agent_id: "u_1".into(),
                name: name.into(),
                color: 2,
                ink: stroke(),
            }),
        );
        draws(&drain(c))
    }

    fn start(c: &mut VisitorClient) -> Vec<DrawCommand> {
        c.handle_frame(
            T0,
            &frame(ServerToVisitor::SessionStart {
                session_id: "s1".into(),
            }),
        );
        draws(&drain(c))
    }

    #[test]
    fn inks_reach_the_page_only_while_the_session_is_active() {
        let mut c = client(serde_json::json!({}));
        welcome(&mut c, T0);
        assert!(draw(&mut c, "Sam").is_empty(), "no session: nothing drawn");
        session_request(&mut c, T0, Agent::new("u_1", "Sam", None));
        assert!(draw(&mut c, "Sam").is_empty(), "authorizing: nothing drawn");
        assert_eq!(start(&mut c), vec![DrawCommand::Start]);
        assert_eq!(
            draw(&mut c, "Sam"),
            vec![DrawCommand::Ink {
                agent_id: "u_1".into(),
                name: "Sam".into(),
                color: 2,
                ink: stroke()
            }]
        );
        c.end().unwrap();
        assert!(draws(&drain(&mut c)).contains(&DrawCommand::Stop));
        assert!(draw(&mut c, "Sam").is_empty(), "ended: nothing drawn");
    }

    #[test]
    fn allow_agent_drawing_false_refuses_every_frame_and_never_loads_the_layer() {
        let mut c = client(serde_json::json!({"allowAgentDrawing": false}));
        welcome(&mut c, T0);
        let started = start(&mut c);
        assert!(!started.contains(&DrawCommand::Start), "{started:?}");
        assert!(draw(&mut c, "Sam").is_empty());
        c.handle_frame(T0, &frame(ServerToVisitor::MirrorResync));
        assert!(!draws(&drain(&mut c)).contains(&DrawCommand::Start));
    }

    /// What the SDK's decoder refuses; an ink's own fields are the drawing layer's to
    /// check (src/web/draw.js), so they are not looked at here.
    #[test]
    fn malformed_or_out_of_range_frames_are_errors_not_inks() {
        let mut c = client(serde_json::json!({}));
        welcome(&mut c, T0);
        start(&mut c);
        for bad in [
            r#"{"type":"draw","agent_id":"u","name":"x","color":9,"ink":{"kind":"clear"}}"#,
            r#"{"type":"draw","agent_id":"u","name":"x","color":-1,"ink":{"kind":"clear"}}"#,
            r#"{"type":"draw","agent_id":"u","name":{"html":"<b>"},"color":1,"ink":{"kind":"clear"}}"#,
            r#"{"type":"draw","agent_id":"u","name":"x","color":1,"ink":"<script>alert(1)</script>"}"#,
            r#"{"type":"draw","agent_id":"u","name":"x","color":1,"ink":[1,2]}"#,
            r#"{"type":"draw","agent_id":"u","name":"x","color":1}"#,
            r#"{"type":"draw","name":"x","color":1,"ink":{"kind":"clear"}}"#,
        ] {
            c.handle_frame(T0, bad);
            let out = drain(&mut c);
            assert!(draws(&out).is_empty(), "{bad}");
            assert!(
                out.iter().any(|o| matches!(o, Output::Event(crate::core::client::ClientEvent::Error { code, .. }) if code == "malformed_frame")),
                "{bad}: {out:?}"
            );
        }
        let points = (0..2000)
            .map(|i| format!("[{i},0]"))
            .collect::<Vec<_>>()
            .join(",");
        let long = format!(
            r#"{{"type":"draw","agent_id":"u","name":"x","color":1,"ink":{{"kind":"stroke","id":1,"node":0,"ox":0,"oy":0,"shape":"free","pinned":false,"done":true,"points":[{points}]}}}}"#
        );
        c.handle_frame(T0, &long);
        assert!(
            draws(&drain(&mut c)).is_empty(),
            "an ink over 8 KiB is refused"
        );
    }

    #[test]
    fn long_names_are_cut_at_a_char_boundary() {
        let mut c = client(serde_json::json!({}));
        welcome(&mut c, T0);
        start(&mut c);
        let name = "\u{e9}".repeat(100);
        match draw(&mut c, &name).as_slice() {
            [DrawCommand::Ink { name, .. }] => {
                assert!(name.len() <= MAX_INK_NAME && name.chars().all(|ch| ch == '\u{e9}'));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stop_takes_the_inks_away() {
        let mut c = client(serde_json::json!({}));
        welcome(&mut c, T0);
        start(&mut c);
        c.stop();
        assert!(draws(&drain(&mut c)).contains(&DrawCommand::Stop));
        assert!(draw(&mut c, "Sam").is_empty());
    }
}
