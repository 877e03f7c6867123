//! Calls (audio and video, WebRTC peer to peer) and full-tab / full-screen sharing: the
//! signalling that rides the existing sockets (issue 17). The server relays and checks
//! it; the media never touches the server. docs/PROTOCOL.md ("Calls and sharing")
//! describes it for people.
//!
//! The visitor's side is carried as JSON through the SDK's wasm (its `call` frames are
//! written and read by the on-demand call file, `src/web/call.js`), so none of these
//! types' serde code reaches the first-load bundle: the server and the console use them.

use serde::{Deserialize, Serialize};

use crate::core::config::{Permissions, VideoAudioRelationship, VideoEnabled};
use crate::core::model::Agent;

/// The longest SDP a `signal` may carry (bytes): well inside a 64 KiB frame.
pub const MAX_SDP_BYTES: usize = 32 * 1024;
/// The longest ICE candidate line a `signal` may carry (bytes).
pub const MAX_CANDIDATE_BYTES: usize = 1024;

/// Who may send video in a call and how audio and video relate: the visitor page's
/// `cobrowsingVideoEnabled` and `cobrowsingVideoAudioRelationship` (seed Connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CallRules {
    /// The visitor's camera may reach the agent (`two_way`, `visitor_to_agent`).
    pub video_to_agent: bool,
    /// The agent's camera may reach the visitor (`two_way`, `agent_to_visitor`).
    pub video_to_visitor: bool,
    /// `independent`; `video_requires_audio`: a side's camera is on only while its
    /// microphone is; `automatic`: turning the camera on turns the microphone on too.
    pub relationship: VideoAudioRelationship,
}

impl CallRules {
    /// The rules a tab's config sets.
    pub fn of(p: &Permissions) -> CallRules {
        let v = p.cobrowsing_video_enabled;
        CallRules {
            video_to_agent: matches!(v, VideoEnabled::TwoWay | VideoEnabled::VisitorToAgent),
            video_to_visitor: matches!(v, VideoEnabled::TwoWay | VideoEnabled::AgentToVisitor),
            relationship: p.cobrowsing_video_audio_relationship,
        }
    }

    /// Whether `media`, reported by the visitor (`from_visitor`) or the agent, keeps
    /// these rules: no camera where video may not go that way, and none without the
    /// microphone under `video_requires_audio`.
    pub fn allows(&self, from_visitor: bool, media: MediaState) -> Result<(), &'static str> {
        let may_send_video = if from_visitor {
            self.video_to_agent
        } else {
            self.video_to_visitor
        };
        if media.video && !may_send_video {
            return Err("cobrowsingVideoEnabled does not let video go this way");
        }
        if media.video
            && !media.audio
            && self.relationship == VideoAudioRelationship::VideoRequiresAudio
        {
            return Err("cobrowsingVideoAudioRelationship is video_requires_audio: the camera needs the microphone on");
        }
        Ok(())
    }
}

/// Which peer connection a `signal` is for: the call's, or the visitor's tab or
/// screen share (its own connection, so a share needs no call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum MediaChannel {
    #[default]
    Call,
    Share,
}

/// An SDP's role in the offer/answer exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum SdpType {
    Offer,
    Answer,
}

/// `RTCSessionDescriptionInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct SessionDescription {
    #[serde(rename = "type")]
    pub kind: SdpType,
    pub sdp: String,
}

/// `RTCIceCandidateInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(rename = "sdpMid", default)]
    pub sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default)]
    pub sdp_m_line_index: Option<u16>,
}

/// One step of WebRTC negotiation, relayed to the other end: a description (the agent
/// offers, the visitor answers) or a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CallSignal {
    #[serde(default)]
    pub channel: MediaChannel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub description: Option<SessionDescription>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub candidate: Option<IceCandidate>,
}

impl CallSignal {
    /// Checks a signal from the agent (`from_visitor` false) or the visitor: one
    /// description or one candidate within the limits; in a call the agent offers and
    /// the visitor answers, in a share the other way round; on the call's channel, a description whose video sections
    /// would send video the rules do not let go that way is refused, and on the share's
    /// the agent sends no media at all. `video_ok`: the sender may send video here.
    pub fn check(&self, from_visitor: bool, video_ok: bool) -> Result<(), &'static str> {
        match (&self.description, &self.candidate) {
            (Some(d), None) => {
                if d.sdp.is_empty() || d.sdp.len() > MAX_SDP_BYTES {
                    return Err("`sdp` must be 1 byte to 32 KiB");
                }
                // A call's offer is the agent's; a share's is the visitor's (it sends).
                let offers = (self.channel == MediaChannel::Share) == from_visitor;
                let expected = if offers {
                    SdpType::Offer
                } else {
                    SdpType::Answer
                };
                if d.kind != expected {
                    return Err("in a call the agent offers, in a share the visitor does");
                }
                if !video_ok && sends_video(&d.sdp) {
                    return Err("the description sends video the rules do not allow");
                }
                if self.channel == MediaChannel::Share && !from_visitor && sends_any(&d.sdp) {
                    return Err("the agent sends no media in a share");
                }
                Ok(())
            }
            (None, Some(c)) => {
                if c.candidate.len() > MAX_CANDIDATE_BYTES
                    || c.sdp_mid.as_ref().is_some_and(|m| m.len() > 64)
                {
                    return Err("`candidate` is too long");
                }
                Ok(())
            }
            _ => Err("a signal carries one `description` or one `candidate`"),
        }
    }
}

/// The media sections of an SDP with whether each may send: (kind, sends).
fn sections(sdp: &str) -> Vec<(&str, bool)> {
    let mut out: Vec<(&str, bool)> = Vec::new();
    let mut session_dir = true;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split(' ');
            let kind = parts.next().unwrap_or_default();
            // Port 0: the section is rejected or stopped.
            let open = parts.next() != Some("0");
            out.push((kind, open && session_dir));
            continue;
        }
        let dir = match line {
            "a=sendrecv" | "a=sendonly" => Some(true),
            "a=recvonly" | "a=inactive" => Some(false),
            _ => None,
        };
        if let Some(sends) = dir {
            match out.last_mut() {
                Some((_, s)) => *s = *s && sends,
                None => session_dir = sends,
            }
        }
    }
    out
}

/// Whether an SDP has a video section that may send.
pub fn sends_video(sdp: &str) -> bool {
    sections(sdp).iter().any(|(k, s)| *k == "video" && *s)
}

/// Whether an SDP has an audio or video section that may send.
fn sends_any(sdp: &str) -> bool {
    sections(sdp)
        .iter()
        .any(|(k, s)| (*k == "video" || *k == "audio") && *s)
}

/// Microphone and camera of one end of a call: on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct MediaState {
    pub audio: bool,
    pub video: bool,
}

/// An ICE server for `RTCPeerConnection` (`RTCIceServer`): STUN, or TURN with
/// time-limited credentials the server derived from its `--turn-secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct IceServer {
    pub urls: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub credential: Option<String>,
}

/// Why a call (or a share) ended (`callEnd {reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CallEndReason {
    /// The agent hung up (or stopped the share).
    HungUpByAgent,
    /// The visitor hung up (or stopped the share).
    HungUpByVisitor,
    /// The visitor said no.
    Declined,
    /// The visitor said yes but the browser gave no microphone, camera or capture
    /// (refused at its prompt, or none there).
    MediaDenied,
    /// The session ended.
    SessionEnded,
    /// The visitor's tab that had the call closed or navigated.
    TabClosed,
    /// The agent who had the call left the session or closed its console.
    AgentLeft,
    /// The connection could not be made or broke.
    Failed,
}

/// Why the visitor's side refused or dropped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum VisitorCallEnd {
    /// The visitor declined, or hung up.
    Declined,
    /// The browser gave no microphone / camera / capture.
    MediaDenied,
    /// The peer connection failed.
    Failed,
}

/// Agent console → server, in `{"type": "call", "session_id", "call": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallFromAgent {
    /// Call the visitor (its focused tab); `video`: a video call (the agent's camera,
    /// and the visitor's where the rules let it).
    Start {
        video: bool,
    },
    Signal {
        signal: CallSignal,
    },
    /// The agent's microphone and camera now.
    Media {
        audio: bool,
        video: bool,
    },
    /// Hang up (or withdraw the ringing call); `reason` `media_denied` when the agent's
    /// browser gave no microphone, `failed` when its connection failed (else none: a
    /// hang-up).
    End {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(test, ts(optional))]
        reason: Option<VisitorCallEnd>,
    },
    /// Ask for the visitor's tab (`screen` false: `allowRequestFullTab`) or a screen
    /// or window the visitor picks (`screen` true: `allowFullScreen`).
    ShareRequest {
        screen: bool,
    },
    /// Stop watching the share (or withdraw the request).
    ShareStop,
}

/// Visitor (SDK) → server, in `{"type": "call", "call": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallFromVisitor {
    /// The visitor allowed the call and the browser gave the microphone (and camera):
    /// what this side sends at first.
    Accept {
        audio: bool,
        video: bool,
    },
    Signal {
        signal: CallSignal,
    },
    Media {
        audio: bool,
        video: bool,
    },
    /// The peer connection is up: the call's time starts counting.
    Connected,
    /// Declined, hung up, no media, or failed.
    End {
        reason: VisitorCallEnd,
    },
    /// The visitor allowed the share and picked what to share; the stream follows on
    /// the share's channel.
    ShareAccept,
    /// The share's stream runs (its peer connection is up).
    ShareStarted,
    /// Declined, stopped (the browser's "Stop sharing" too), or no capture.
    ShareEnd {
        reason: VisitorCallEnd,
    },
}

/// Server → visitor, in `{"type": "call", "call": …}` (the SDK hands it to its call file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallToVisitor {
    /// Ask the visitor (the page's `callRequest` handler, else the SDK's prompt).
    Request {
        agent: Agent,
        video: bool,
        rules: CallRules,
    },
    /// Accepted: the agent's offer follows. The ICE servers to use.
    Start {
        ice_servers: Vec<IceServer>,
    },
    Signal {
        signal: CallSignal,
    },
    /// The agent's microphone and camera now.
    Media {
        audio: bool,
        video: bool,
    },
    End {
        reason: CallEndReason,
    },
    /// The agent asks for this tab (`screen` false) or a screen or window (`screen`
    /// true). Masking cannot apply to such a video: the prompt says so.
    ShareRequest {
        agent: Agent,
        screen: bool,
    },
    /// The visitor allowed the share: make the offer, with these ICE servers (sent only
    /// now, not with the request: nothing of a share before consent).
    ShareStart {
        ice_servers: Vec<IceServer>,
    },
    ShareEnd {
        reason: CallEndReason,
    },
}

/// Server → agent console, in `{"type": "call", "session_id", "call": …}`: to the
/// console that started the call (or asked for the share) only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallToAgent {
    /// The visitor accepted: make the offer (with these ICE servers and rules).
    Start {
        ice_servers: Vec<IceServer>,
        rules: CallRules,
        visitor: MediaState,
    },
    Signal {
        signal: CallSignal,
    },
    /// The visitor allowed the share: its offer is on the way (answer it).
    ShareStart {
        ice_servers: Vec<IceServer>,
    },
}

/// Where a call stands (`session_update.call`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CallPhase {
    #[default]
    None,
    /// The visitor is being asked.
    Ringing,
    /// Accepted; the peer connection is being set up.
    Connecting,
    Connected,
}

/// `session_update.call`: the session's call and share as the agents see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct SessionCall {
    pub state: CallPhase,
    /// The agent who has the call (or whose call last ended).
    pub agent_id: Option<String>,
    /// The visitor's tab (`uniqueConnectionId`) that has the call.
    pub tab: Option<String>,
    pub video: bool,
    pub rules: Option<CallRules>,
    pub visitor: MediaState,
    pub agent: MediaState,
    /// Why the last call ended, until another starts.
    pub reason: Option<CallEndReason>,
    /// The share: `off`, `authorizing` or `active` (the tab's `fullTabStatus`).
    pub share: crate::core::model::FullTabStatus,
    /// The share is of a screen or window (`allowFullScreen`), not of the tab.
    pub share_screen: bool,
    pub share_agent_id: Option<String>,
    pub share_tab: Option<String>,
    /// Why the last share ended.
    pub share_reason: Option<CallEndReason>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\n";

    #[test]
    fn video_sections_are_read_with_their_direction() {
        assert!(!sends_video(OFFER));
        assert!(sends_video(&OFFER.replace("a=recvonly", "a=sendrecv")));
        assert!(sends_video(&OFFER.replace("a=recvonly", "a=sendonly")));
        // A rejected section (port 0) sends nothing.
        assert!(!sends_video(
            &OFFER
                .replace("a=recvonly", "a=sendrecv")
                .replace("m=video 9", "m=video 0")
        ));
        // No direction attribute: sendrecv.
        assert!(sends_video(&OFFER.replace("a=recvonly\r\n", "")));
    }

    #[test]
    fn signals_are_checked_for_shape_role_and_video() {
        let offer = |sdp: &str| CallSignal {
            channel: MediaChannel::Call,
            description: Some(SessionDescription {
                kind: SdpType::Offer,
                sdp: sdp.into(),
            }),
            candidate: None,
        };
        assert!(offer(OFFER).check(false, false).is_ok());
        assert!(offer(OFFER).check(true, true).is_err(), "visitors answer");
        let sending = OFFER.replace("a=recvonly", "a=sendrecv");
        assert!(offer(&sending).check(false, false).is_err());
        assert!(offer(&sending).check(false, true).is_ok());
        let none = CallSignal {
            channel: MediaChannel::Call,
            description: None,
            candidate: None,
        };
        assert!(none.check(false, true).is_err());
        let mut share = offer(OFFER);
        share.channel = MediaChannel::Share;
        assert!(
            share.check(false, true).is_err(),
            "agents send nothing in a share"
        );
    }

    #[test]
    fn rules_follow_the_seed() {
        let mut p = Permissions {
            cobrowsing_video_enabled: VideoEnabled::VisitorToAgent,
            cobrowsing_video_audio_relationship: VideoAudioRelationship::VideoRequiresAudio,
            ..Permissions::default()
        };
        let r = CallRules::of(&p);
        assert!(r.video_to_agent && !r.video_to_visitor);
        let on = MediaState {
            audio: true,
            video: true,
        };
        assert!(r.allows(true, on).is_ok());
        assert!(r.allows(false, on).is_err());
        let video_only = MediaState {
            audio: false,
            video: true,
        };
        assert!(r.allows(true, video_only).is_err());
        p.cobrowsing_video_audio_relationship = VideoAudioRelationship::Independent;
        assert!(CallRules::of(&p).allows(true, video_only).is_ok());
        p.cobrowsing_video_enabled = VideoEnabled::Disabled;
        assert!(CallRules::of(&p).allows(true, on).is_err());
    }
}
