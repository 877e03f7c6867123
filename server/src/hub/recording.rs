//! Session recordings (issue 18), sans-IO: for a session of an account that records,
//! the hub keeps the records the agents were relayed (and the session's audit events)
//! as JSON lines with their times, and hands them to the writer in chunks
//! (`Write::RecordingChunk`, after the recording's `Write::RecordingStart`). The page
//! does no work for it: what is recorded is what the server relayed, so masked content,
//! which never leaves the page, is never in a recording either.
//!
//! A chunk goes out when [`CHUNK_BYTES`] are buffered, or [`CHUNK_MS`] after the first
//! line it holds (the `Recording` timer). When the session ends, the last chunk and
//! `Write::RecordingEnd` go out at the next timeout (after the input that ended it, whose
//! audit entries belong in the recording too), followed by
//! `Output::RecordingEnded`: the shell finalises the recording once those writes
//! committed (`pending` → `ready`). The line format is in `store::recording`.

use covisit::core::machine::SessionStatus;
use covisit::core::protocol::MirrorData;
use covisit::core::Millis;

use super::timers::Timer;
use super::{Hub, Output};
use crate::store::{RecordingChunk, RecordingStart, Write};

/// A chunk goes to the writer once this much is buffered…
pub(super) const CHUNK_BYTES: usize = 256 * 1024;
/// …or this long after its first line.
pub(super) const CHUNK_MS: u64 = 5_000;

/// The part of a recorded session's recording still in memory.
#[derive(Debug, Clone, Default)]
pub(super) struct Recording {
    /// Whether `Write::RecordingStart` went out (with the first line).
    pub started: bool,
    pub next_seq: i64,
    /// JSON lines not yet handed to the writer.
    pub buf: String,
    /// The session ended: the rest goes out at the next timeout.
    pub ending: bool,
}

impl Hub {
    /// The shell says whether an account records sessions (at a visitor's hello, and
    /// when an admin changes the setting). Sessions already requested keep their choice.
    pub fn set_account_recording(&mut self, account_id: i64, on: bool) {
        self.recording_accounts.insert(account_id, on);
    }

    /// A mirror frame that was relayed to the session's agents.
    pub(super) fn record_mirror(
        &mut self,
        now: Millis,
        session_id: &str,
        tab: &str,
        data: &MirrorData,
    ) {
        let tab = serde_json::to_string(tab).unwrap_or_else(|_| "\"\"".into());
        let line = format!("[{},\"m\",{tab},{}]\n", now.0, data.text());
        self.record_line(now, session_id, line);
    }

    /// An event of the session's audit trail (authorize, control, redirect, note, end),
    /// once the session went live.
    pub(super) fn record_event(
        &mut self,
        now: Millis,
        session_id: &str,
        action: &str,
        actor: &str,
        result: &str,
    ) {
        let Some(s) = self.sessions.get(session_id) else {
            return;
        };
        let Some(rec) = &s.recording else {
            return;
        };
        let live = self.visitors.get(&s.session.visitor_id).is_some_and(|v| {
            v.machine.session_id() == Some(session_id)
                && v.machine.status() == SessionStatus::Active
        });
        if !rec.started && !live {
            return; // nothing was shown yet: a request, a denial
        }
        if action == "note.added" {
            return; // `record_note` has it, with its text, whoever added it
        }
        // Serializing strings cannot fail.
        let line = serde_json::to_string(&(now.0, "e", action, actor, result)).unwrap_or_default();
        self.record_line(now, session_id, line + "\n");
    }

    /// A note on a recorded session (from the console or REST): `[t, "n", by, text]`.
    pub(super) fn record_note(&mut self, now: Millis, session_id: &str, by: &str, text: &str) {
        let started = self
            .sessions
            .get(session_id)
            .and_then(|s| s.recording.as_ref())
            .is_some_and(|r| r.started);
        if started {
            // Serializing strings cannot fail.
            let line = serde_json::to_string(&(now.0, "n", by, text)).unwrap_or_default();
            self.record_line(now, session_id, line + "\n");
        }
    }

    fn record_line(&mut self, now: Millis, session_id: &str, line: String) {
        let Some(s) = self.sessions.get_mut(session_id) else {
            return;
        };
        let (account_id, visitor_id) = (s.account_id, s.session.visitor_id.clone());
        let Some(rec) = s.recording.as_mut() else {
            return;
        };
        let first = !rec.started;
        rec.started = true;
        let was_empty = rec.buf.is_empty();
        rec.buf.push_str(&line);
        let full = rec.buf.len() >= CHUNK_BYTES;
        if first {
            self.persist(Write::RecordingStart(Box::new(RecordingStart {
                account_id,
                session_id: session_id.to_string(),
                visitor_id,
                started_at: now.to_iso8601(),
            })));
        }
        if full {
            self.flush_recording(session_id);
        } else if was_empty {
            let ending = self
                .sessions
                .get(session_id)
                .and_then(|s| s.recording.as_ref())
                .is_some_and(|r| r.ending);
            if !ending {
                self.timers.set(
                    Timer::Recording(session_id.to_string()),
                    Some(Millis(now.0 + CHUNK_MS)),
                );
            }
        }
    }

    /// Hands the buffered lines to the writer as the next chunk.
    fn flush_recording(&mut self, session_id: &str) {
        let Some(rec) = self
            .sessions
            .get_mut(session_id)
            .and_then(|s| s.recording.as_mut())
        else {
            return;
        };
        if rec.buf.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut rec.buf);
        let seq = rec.next_seq;
        rec.next_seq += 1;
        self.persist(Write::RecordingChunk(Box::new(RecordingChunk {
            session_id: session_id.to_string(),
            seq,
            lines,
        })));
    }

    /// The session ended: what is left goes out at the next timeout (now).
    pub(super) fn end_recording_soon(&mut self, now: Millis, session_id: &str) {
        self.timers
            .set(Timer::Recording(session_id.to_string()), Some(now));
    }

    /// The `Recording` timer: the buffered chunk goes out; after the session's end, the
    /// recording's end too.
    pub(super) fn recording_due(&mut self, now: Millis, session_id: &str) {
        self.flush_recording(session_id);
        let Some(s) = self.sessions.get_mut(session_id) else {
            return;
        };
        let Some(rec) = s.recording.as_ref() else {
            return;
        };
        if !rec.ending {
            return;
        }
        let started = rec.started;
        s.recording = None;
        if started {
            let end = s
                .session
                .ended_at
                .clone()
                .unwrap_or_else(|| now.to_iso8601());
            self.persist(Write::RecordingEnd(session_id.to_string(), end));
            self.outputs
                .push_back(Output::RecordingEnded(session_id.to_string()));
        }
    }
}
