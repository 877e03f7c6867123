//! The TypeScript of the wire messages, generated from their Rust definitions (this
//! module's types derive `ts_rs::TS` under `cfg(test)` only: neither the SDK's wasm nor
//! the server carries any of it). The generated file is committed, for the console's and
//! the SDK's JSDoc (`tsc --noEmit` in `npm test`); the test below fails when it is stale.

use std::any::TypeId;
use std::collections::HashSet;

use ts_rs::{Config, TypeVisitor, TS};

use crate::core::codes::ErrorCode;
use crate::core::config::{Permissions, VideoAudioRelationship, VideoEnabled};
use crate::core::journey::{PageFacts, TrackEvent};
use crate::core::machine::{ControlEndReason, PromptKind, SessionStatus};
use crate::core::model::{
    Address, AfterCallWork, Agent, AgentNote, CobrowseRole, Cobrowsesession, CommunicationState,
    Connection, ConnectionStatus, DeviceType, DisconnectType, ExpectedDisconnect, FullTabStatus,
    QualityFeedback, Segment, SegmentType, Session, SessionSource, Visitor, Wrapup,
};
use crate::core::protocol::{
    AgentMessage, ConnectionHello, ConsoleEntry, ConsoleKind, ControlPhase, ErrorFrame, FoundBy,
    Ink, InkShape, MirrorData, RemoteAction, RemoteKind, RemoteRefusal, ServerToAgent,
    ServerToVisitor, SessionControl, TrackBeacon, VisitorMessage, VisitorState,
};
use crate::core::protocol::{
    CallEndReason, CallFromAgent, CallFromVisitor, CallPhase, CallRules, CallSignal, CallToAgent,
    CallToVisitor, IceCandidate, IceServer, MediaChannel, MediaState, SdpType, SessionCall,
    SessionDescription, VisitorCallEnd,
};

/// Where the generated file lives (from the crate's root).
const PATH: &str = "www/agent/wire.d.ts";

const HEADER: &str = "\
// GENERATED from src/core/protocol.rs and the types it carries (src/core/wire_ts.rs):
// do not edit. Refresh with `UPDATE_WIRE_TS=1 cargo test -p covisit --lib wire_ts`.
// The wire protocol (docs/PROTOCOL.md) as TypeScript, for JSDoc in the console and the
// SDK's JS: `/** @typedef {import('./wire').ServerToAgent} ServerToAgent */`.

/** One co-browsing record (docs/MIRROR.md): a one-letter kind, then its fields. */
export type MirrorRecord = [string, ...unknown[]];
";

/// Writes declarations: the listed types in their order, then every type they carry
/// that the list left out (so a new field's type cannot go undeclared).
struct Declarations {
    cfg: Config,
    out: String,
    declared: HashSet<TypeId>,
    roots: Vec<fn(&mut Declarations)>,
}

impl Declarations {
    fn declare<T: TS + 'static + ?Sized>(&mut self) {
        // Built-in types (numbers, strings, arrays, options) have no declaration.
        if T::output_path().is_none() || !self.declared.insert(TypeId::of::<T>()) {
            return;
        }
        self.out.push('\n');
        if let Some(docs) = T::docs() {
            self.out.push_str(&docs);
        }
        self.out.push_str("export ");
        self.out.push_str(&T::decl(&self.cfg));
        self.out.push('\n');
    }
}

/// Visits what a type carries, declaring what is not declared yet.
impl TypeVisitor for Declarations {
    fn visit<T: TS + 'static + ?Sized>(&mut self) {
        if T::output_path().is_some() && !self.declared.contains(&TypeId::of::<T>()) {
            self.declare::<T>();
            T::visit_dependencies(self);
        }
    }
}

fn generate() -> String {
    let mut d = Declarations {
        cfg: Config::new().with_large_int("number"),
        out: String::from(HEADER),
        declared: HashSet::new(),
        roots: Vec::new(),
    };
    macro_rules! declare {
        ($($t:ty),* $(,)?) => {
            $(
                d.declare::<$t>();
                d.roots.push(|d: &mut Declarations| <$t>::visit_dependencies(d));
            )*
        };
    }
    declare!(
        // Visitor (SDK) ⇄ server
        VisitorMessage,
        ConnectionHello,
        TrackBeacon,
        TrackEvent,
        PageFacts,
        ServerToVisitor,
        VisitorState,
        // Agent console ⇄ server
        AgentMessage,
        FoundBy,
        ServerToAgent,
        SessionControl,
        ControlPhase,
        // Both
        ErrorFrame,
        MirrorData,
        ConsoleEntry,
        ConsoleKind,
        RemoteAction,
        RemoteKind,
        RemoteRefusal,
        SessionStatus,
        PromptKind,
        ControlEndReason,
        // The seed objects they carry
        Agent,
        Visitor,
        DeviceType,
        Session,
        SessionSource,
        AgentNote,
        QualityFeedback,
        Cobrowsesession,
        CommunicationState,
        DisconnectType,
        CobrowseRole,
        Address,
        Segment,
        SegmentType,
        Wrapup,
        AfterCallWork,
        Connection,
        ConnectionStatus,
        FullTabStatus,
        ExpectedDisconnect,
        Permissions,
        VideoEnabled,
        VideoAudioRelationship,
        Ink,
        InkShape,
        // Calls and sharing (issue 17), each listed so that the file's order does not
        // depend on how ts-rs walks optional fields
        CallToVisitor,
        CallFromVisitor,
        CallFromAgent,
        CallToAgent,
        SessionCall,
        CallRules,
        CallPhase,
        CallSignal,
        MediaChannel,
        SessionDescription,
        SdpType,
        IceCandidate,
        MediaState,
        IceServer,
        CallEndReason,
        VisitorCallEnd,
    );
    for visit in std::mem::take(&mut d.roots) {
        visit(&mut d);
    }
    let mut out = d.out;
    out.push_str(
        "\n/** Every error `code` (src/core/codes.rs; docs/PROTOCOL.md, \"Error codes\"). */\n",
    );
    out.push_str("export type ErrorCode =");
    for code in ErrorCode::ALL {
        out.push_str(&format!("\n  | \"{code}\""));
    }
    out.push_str(";\n");
    out
}

#[test]
fn the_committed_wire_types_are_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(PATH);
    let fresh = generate();
    if std::env::var_os("UPDATE_WIRE_TS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{PATH} is stale (the wire types changed): refresh it with\n\n    \
         UPDATE_WIRE_TS=1 cargo test -p covisit --lib wire_ts\n\nand commit it"
    );
}
