//! A session's call and share (issue 17), sans-IO: who has the call, where it stands,
//! each end's microphone and camera, the time it was connected, and the visitor's tab
//! or screen share. The server's hub holds one per session and routes what it decides;
//! the media never passes through the server.
//!
//! Contract as [`super::VisitorMachine`]: inputs take `now`, an input wrong for the
//! state is a [`CallError`] and changes nothing, getters take `&self`. Consent: nothing
//! of a call is relayed before the visitor accepted it ([`CallMachine::signal`] refuses
//! until then), and nothing of a share before the visitor allowed it.

use crate::core::codes::ErrorCode;
use crate::core::model::FullTabStatus;
use crate::core::protocol::{
    CallEndReason, CallPhase, CallRules, CallSignal, MediaChannel, MediaState, SessionCall,
};
use crate::core::Millis;

/// A call that is ringing or live.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Live {
    agent_id: String,
    tab: String,
    video: bool,
    rules: CallRules,
    visitor: MediaState,
    agent: MediaState,
    /// Set once the peer connection is up.
    connected_since: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Idle,
    Ringing(Live),
    /// Accepted: negotiating, then connected (`connected_since`).
    Accepted(Live),
}

/// The visitor's share of its tab or a screen.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Share {
    agent_id: String,
    tab: String,
    screen: bool,
    /// The visitor allowed it (its stream is being set up, or runs).
    accepted: bool,
    running: bool,
}

/// A call or share input that does not fit. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("`{input}` is not valid now: expected {expected}")]
    WrongState {
        input: &'static str,
        expected: &'static str,
    },
    #[error("{0}")]
    MediaNotAllowed(&'static str),
    #[error("invalid signal: {0}")]
    InvalidSignal(&'static str),
}

impl CallError {
    pub fn code(&self) -> ErrorCode {
        match self {
            CallError::WrongState { .. } => ErrorCode::WRONG_CALL_STATE,
            CallError::MediaNotAllowed(_) => ErrorCode::MEDIA_NOT_ALLOWED,
            CallError::InvalidSignal(_) => ErrorCode::INVALID_CALL_SIGNAL,
        }
    }
}

/// Which end of a call an input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Visitor,
    Agent,
}

/// A call or share that just ended: whom to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    pub agent_id: String,
    pub tab: String,
    pub reason: CallEndReason,
}

/// One session's call and share. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallMachine {
    phase: Phase,
    share: Option<Share>,
    /// Connected time of the calls that ended, in milliseconds.
    connected_ms: u64,
    last_reason: Option<CallEndReason>,
    last_agent: Option<String>,
    last_share_reason: Option<CallEndReason>,
    /// `features_used` entries this session earned: `audio_call`, `video_call`,
    /// `full_tab`, `full_screen`.
    features: Vec<&'static str>,
}

impl Default for CallMachine {
    fn default() -> Self {
        CallMachine::new()
    }
}

impl CallMachine {
    pub fn new() -> CallMachine {
        CallMachine {
            phase: Phase::Idle,
            share: None,
            connected_ms: 0,
            last_reason: None,
            last_agent: None,
            last_share_reason: None,
            features: Vec::new(),
        }
    }

    // ----- getters -------------------------------------------------------------------

    pub fn phase(&self) -> CallPhase {
        match &self.phase {
            Phase::Idle => CallPhase::None,
            Phase::Ringing(_) => CallPhase::Ringing,
            Phase::Accepted(l) if l.connected_since.is_some() => CallPhase::Connected,
            Phase::Accepted(_) => CallPhase::Connecting,
        }
    }

    fn live(&self) -> Option<&Live> {
        match &self.phase {
            Phase::Idle => None,
            Phase::Ringing(l) | Phase::Accepted(l) => Some(l),
        }
    }

    /// The agent and the visitor's tab of the call, ringing or live.
    pub fn parties(&self) -> Option<(&str, &str)> {
        self.live().map(|l| (l.agent_id.as_str(), l.tab.as_str()))
    }

    /// The agent and tab of the share, asked or running.
    pub fn share_parties(&self) -> Option<(&str, &str)> {
        self.share
            .as_ref()
            .map(|s| (s.agent_id.as_str(), s.tab.as_str()))
    }

    /// Whether the visitor allowed the share in progress (its stream is being set up,
    /// or runs).
    pub fn share_accepted(&self) -> bool {
        self.share.as_ref().is_some_and(|s| s.accepted)
    }

    /// The share's `fullTabStatus`.
    pub fn share_status(&self) -> FullTabStatus {
        match &self.share {
            None => FullTabStatus::Off,
            Some(s) if s.running => FullTabStatus::Active,
            Some(_) => FullTabStatus::Authorizing,
        }
    }

    /// Whole seconds calls were connected, the running one up to `now` included.
    pub fn call_length_seconds(&self, now: Millis) -> u64 {
        let running = self
            .live()
            .and_then(|l| l.connected_since)
            .map_or(0, |since| now.0.saturating_sub(since.0));
        (self.connected_ms + running) / 1000
    }

    /// The `features_used` entries calls and shares earned so far.
    pub fn features(&self) -> &[&'static str] {
        &self.features
    }

    /// `session_update.call`.
    pub fn view(&self) -> SessionCall {
        let live = self.live();
        SessionCall {
            state: self.phase(),
            agent_id: live
                .map(|l| l.agent_id.clone())
                .or_else(|| self.last_agent.clone()),
            tab: live.map(|l| l.tab.clone()),
            video: live.is_some_and(|l| l.video),
            rules: live.map(|l| l.rules),
            visitor: live.map(|l| l.visitor).unwrap_or_default(),
            agent: live.map(|l| l.agent).unwrap_or_default(),
            reason: if live.is_some() {
                None
            } else {
                self.last_reason
            },
            share: self.share_status(),
            share_screen: self.share.as_ref().is_some_and(|s| s.screen),
            share_agent_id: self.share.as_ref().map(|s| s.agent_id.clone()),
            share_tab: self.share.as_ref().map(|s| s.tab.clone()),
            share_reason: if self.share.is_some() {
                None
            } else {
                self.last_share_reason
            },
        }
    }

    // ----- inputs: the call -------------------------------------------------------------

    /// The agent calls the visitor's tab `tab`. One call per session at a time.
    pub fn start(
        &mut self,
        agent_id: &str,
        tab: &str,
        video: bool,
        rules: CallRules,
    ) -> Result<(), CallError> {
        if self.live().is_some() {
            return Err(CallError::WrongState {
                input: "start",
                expected: "no call in progress",
            });
        }
        self.phase = Phase::Ringing(Live {
            agent_id: agent_id.to_string(),
            tab: tab.to_string(),
            video,
            rules,
            visitor: MediaState::default(),
            agent: MediaState {
                audio: true,
                video: video && rules.video_to_visitor,
            },
            connected_since: None,
        });
        Ok(())
    }

    /// The visitor's tab `tab` accepted the ringing call, sending `media` at first.
    pub fn accept(&mut self, tab: &str, media: MediaState) -> Result<(), CallError> {
        let Phase::Ringing(l) = &self.phase else {
            return Err(self.wrong("accept", "a ringing call"));
        };
        if l.tab != tab {
            return Err(self.wrong("accept", "the call's tab"));
        }
        l.rules
            .allows(true, media)
            .map_err(CallError::MediaNotAllowed)?;
        let Phase::Ringing(mut l) = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return Ok(()); // matched just above
        };
        l.visitor = media;
        self.phase = Phase::Accepted(l);
        Ok(())
    }

    /// Checks a signal from `from` and says whom it goes to: (agent, tab). Only for an
    /// accepted call (or share), from its own agent or tab.
    pub fn signal(
        &self,
        from: End,
        who: &str,
        signal: &CallSignal,
    ) -> Result<(String, String), CallError> {
        let (agent_id, tab, video_ok) = match signal.channel {
            MediaChannel::Call => {
                let Phase::Accepted(l) = &self.phase else {
                    return Err(self.wrong("signal", "an accepted call"));
                };
                let ok = match from {
                    End::Visitor => l.rules.video_to_agent,
                    End::Agent => l.rules.video_to_visitor,
                };
                (&l.agent_id, &l.tab, ok)
            }
            MediaChannel::Share => match &self.share {
                Some(s) if s.accepted => (&s.agent_id, &s.tab, true),
                _ => return Err(self.wrong("signal", "an allowed share")),
            },
        };
        let mine = match from {
            End::Visitor => tab == who,
            End::Agent => agent_id == who,
        };
        if !mine {
            return Err(self.wrong("signal", "the call's own agent and tab"));
        }
        signal
            .check(from == End::Visitor, video_ok)
            .map_err(CallError::InvalidSignal)?;
        Ok((agent_id.clone(), tab.clone()))
    }

    /// One end's microphone and camera changed. Checked against the rules; returns
    /// whom to tell (the other end: agent id or tab).
    pub fn media(
        &mut self,
        now: Millis,
        from: End,
        who: &str,
        media: MediaState,
    ) -> Result<String, CallError> {
        let _ = now;
        let Phase::Accepted(l) = &mut self.phase else {
            return Err(self.wrong("media", "an accepted call"));
        };
        let (mine, other) = match from {
            End::Visitor => (l.tab == who, l.agent_id.clone()),
            End::Agent => (l.agent_id == who, l.tab.clone()),
        };
        if !mine {
            return Err(CallError::WrongState {
                input: "media",
                expected: "the call's own agent and tab",
            });
        }
        l.rules
            .allows(from == End::Visitor, media)
            .map_err(CallError::MediaNotAllowed)?;
        match from {
            End::Visitor => l.visitor = media,
            End::Agent => l.agent = media,
        }
        self.note_features();
        Ok(other)
    }

    /// The visitor's peer connection is up: the call counts from `now`.
    pub fn connected(&mut self, now: Millis, tab: &str) -> Result<(), CallError> {
        let Phase::Accepted(l) = &mut self.phase else {
            return Err(self.wrong("connected", "an accepted call"));
        };
        if l.tab != tab {
            return Err(self.wrong("connected", "the call's tab"));
        }
        if l.connected_since.is_none() {
            l.connected_since = Some(now);
        }
        self.note_features();
        Ok(())
    }

    /// Ends the call (ringing or live) for `reason`; its connected time is summed.
    /// None when there was none.
    pub fn end(&mut self, now: Millis, reason: CallEndReason) -> Option<Ended> {
        let l = match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Idle => return None,
            Phase::Ringing(l) | Phase::Accepted(l) => l,
        };
        if let Some(since) = l.connected_since {
            self.connected_ms = self
                .connected_ms
                .saturating_add(now.0.saturating_sub(since.0));
        }
        self.last_reason = Some(reason);
        self.last_agent = Some(l.agent_id.clone());
        Some(Ended {
            agent_id: l.agent_id,
            tab: l.tab,
            reason,
        })
    }

    // ----- inputs: the share ------------------------------------------------------------

    /// The agent asks for the tab `tab` (or a screen); `allowed`: the tab's config
    /// allows it (`allowRequestFullTab`, `allowFullScreen`), checked by the caller, who
    /// names the key in its error.
    pub fn share_request(
        &mut self,
        agent_id: &str,
        tab: &str,
        screen: bool,
    ) -> Result<(), CallError> {
        if self.share.is_some() {
            return Err(self.wrong("share_request", "no share in progress"));
        }
        self.share = Some(Share {
            agent_id: agent_id.to_string(),
            tab: tab.to_string(),
            screen,
            accepted: false,
            running: false,
        });
        Ok(())
    }

    /// The visitor allowed the share (and picked what to share).
    pub fn share_accept(&mut self, tab: &str) -> Result<String, CallError> {
        match &mut self.share {
            Some(s) if !s.accepted && s.tab == tab => {
                s.accepted = true;
                Ok(s.agent_id.clone())
            }
            _ => Err(CallError::WrongState {
                input: "share_accept",
                expected: "a share request to this tab",
            }),
        }
    }

    /// The share's stream runs.
    pub fn share_started(&mut self, tab: &str) -> Result<(), CallError> {
        match &mut self.share {
            Some(s) if s.accepted && s.tab == tab => {
                s.running = true;
                let f = if s.screen { "full_screen" } else { "full_tab" };
                if !self.features.contains(&f) {
                    self.features.push(f);
                }
                Ok(())
            }
            _ => Err(CallError::WrongState {
                input: "share_started",
                expected: "an allowed share in this tab",
            }),
        }
    }

    /// Ends the share for `reason`. None when there was none.
    pub fn share_end(&mut self, reason: CallEndReason) -> Option<Ended> {
        let s = self.share.take()?;
        self.last_share_reason = Some(reason);
        Some(Ended {
            agent_id: s.agent_id,
            tab: s.tab,
            reason,
        })
    }

    // ----- internals ----------------------------------------------------------------------

    fn wrong(&self, input: &'static str, expected: &'static str) -> CallError {
        CallError::WrongState { input, expected }
    }

    /// A connected call earns `audio_call`; one with a camera on, `video_call`.
    fn note_features(&mut self) {
        let Phase::Accepted(l) = &self.phase else {
            return;
        };
        if l.connected_since.is_none() {
            return;
        }
        let video = l.visitor.video || l.agent.video;
        for (f, on) in [("audio_call", true), ("video_call", video)] {
            if on && !self.features.contains(&f) {
                self.features.push(f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::VideoAudioRelationship;
    use crate::core::protocol::{SdpType, SessionDescription};

    fn rules(to_agent: bool, to_visitor: bool) -> CallRules {
        CallRules {
            video_to_agent: to_agent,
            video_to_visitor: to_visitor,
            relationship: VideoAudioRelationship::Independent,
        }
    }

    fn offer(video: &str) -> CallSignal {
        CallSignal {
            channel: MediaChannel::Call,
            description: Some(SessionDescription {
                kind: SdpType::Offer,
                sdp: format!(
                    "v=0\r\nm=audio 9 UDP 111\r\na=sendrecv\r\nm=video 9 UDP 96\r\na={video}\r\n"
                ),
            }),
            candidate: None,
        }
    }

    const AUDIO: MediaState = MediaState {
        audio: true,
        video: false,
    };

    #[test]
    fn nothing_is_relayed_before_the_visitor_accepts() {
        let mut c = CallMachine::new();
        c.start("a1", "t1", false, rules(true, true)).unwrap();
        assert_eq!(c.phase(), CallPhase::Ringing);
        let e = c.signal(End::Agent, "a1", &offer("recvonly")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::WRONG_CALL_STATE);
        assert!(c.accept("other-tab", AUDIO).is_err());
        c.accept("t1", AUDIO).unwrap();
        assert_eq!(
            c.signal(End::Agent, "a1", &offer("sendrecv")).unwrap(),
            ("a1".to_string(), "t1".to_string())
        );
        // Another agent cannot speak for the call.
        assert!(c.signal(End::Agent, "a2", &offer("recvonly")).is_err());
    }

    #[test]
    fn video_goes_only_where_the_rules_let_it() {
        let mut c = CallMachine::new();
        c.start("a1", "t1", true, rules(true, false)).unwrap();
        let video = MediaState {
            audio: true,
            video: true,
        };
        c.accept("t1", video).unwrap();
        let e = c.signal(End::Agent, "a1", &offer("sendrecv")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::INVALID_CALL_SIGNAL);
        assert!(c.signal(End::Agent, "a1", &offer("recvonly")).is_ok());
        let e = c.media(Millis(0), End::Agent, "a1", video).unwrap_err();
        assert_eq!(e.code(), ErrorCode::MEDIA_NOT_ALLOWED);
        assert_eq!(c.media(Millis(0), End::Visitor, "t1", video).unwrap(), "a1");
    }

    #[test]
    fn connected_time_is_summed_over_calls() {
        let mut c = CallMachine::new();
        c.start("a1", "t1", false, rules(false, false)).unwrap();
        c.accept("t1", AUDIO).unwrap();
        c.connected(Millis(10_000), "t1").unwrap();
        assert_eq!(c.call_length_seconds(Millis(14_500)), 4);
        let ended = c.end(Millis(15_000), CallEndReason::HungUpByAgent).unwrap();
        assert_eq!(ended.tab, "t1");
        assert_eq!(c.call_length_seconds(Millis(99_000)), 5);
        c.start("a1", "t1", false, rules(false, false)).unwrap();
        c.accept("t1", AUDIO).unwrap();
        c.connected(Millis(100_000), "t1").unwrap();
        c.end(Millis(102_000), CallEndReason::SessionEnded);
        assert_eq!(c.call_length_seconds(Millis(200_000)), 7);
        assert_eq!(c.features(), &["audio_call"]);
        // A call never connected adds nothing.
        c.start("a1", "t1", false, rules(false, false)).unwrap();
        c.end(Millis(300_000), CallEndReason::Declined);
        assert_eq!(c.call_length_seconds(Millis(400_000)), 7);
        assert_eq!(c.view().reason, Some(CallEndReason::Declined));
    }

    #[test]
    fn a_share_is_asked_allowed_then_runs() {
        let mut c = CallMachine::new();
        c.share_request("a1", "t1", false).unwrap();
        assert_eq!(c.share_status(), FullTabStatus::Authorizing);
        let mut s = offer("sendonly");
        s.channel = MediaChannel::Share;
        assert!(c.signal(End::Visitor, "t1", &s).is_err(), "before consent");
        assert_eq!(c.share_accept("t1").unwrap(), "a1");
        c.share_started("t1").unwrap();
        assert_eq!(c.share_status(), FullTabStatus::Active);
        assert_eq!(c.features(), &["full_tab"]);
        assert!(c.share_end(CallEndReason::HungUpByVisitor).is_some());
        assert_eq!(c.share_status(), FullTabStatus::Off);
    }
}
