// Calls and the visitor's tab / screen share in the agent console (issue 17): the
// controls next to the mirror, the visitor's camera and the agent's own preview, and
// the shared tab's video shown in place of the mirror while it runs, labelled as what
// it is. WebRTC here, signalling over the console's socket (docs/PROTOCOL.md, "Calls
// and sharing"); the server decides what may happen (server/src/hub/calls.rs).
// @ts-check

/** @typedef {import('./wire').SessionCall} SessionCall */
/** @typedef {import('./wire').CallToAgent} CallToAgent */
/** @typedef {import('./wire').CallFromAgent} CallFromAgent */
/** @typedef {import('./wire').CallRules} CallRules */
/** @typedef {import('./wire').CallSignal} CallSignal */
/** @typedef {import('./wire').IceServer} IceServer */

/** @typedef {{ type: 'call', session_id: string, call: CallFromAgent }} CallFrame */

/**
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {(Node | string)[]} [kids]
 */
function h(tag, attrs = {}, kids = []) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  n.append(...kids);
  return n;
}

/** @param {RTCIceCandidate} c @returns {import('./wire').IceCandidate} */
function candidate(c) {
  return { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex };
}

export class CallPanel {
  /**
   * @param {HTMLElement} section the mirror's card: the controls go in its head
   * @param {HTMLElement} mirrors the mirror's stage, hidden while a share is shown
   * @param {{ send: (msg: CallFrame) => boolean, me: () => string | null, announce: (text: string) => void }} host
   */
  constructor(section, mirrors, host) {
    this.host = host;
    this.mirrors = mirrors;
    /** The session the panel shows (the one in view). @type {string | null} */
    this.sessionId = null;
    /** @type {SessionCall | null} */
    this.view = null;
    /** The visitor's open tabs. @type {import('./wire').Connection[]} */
    this.tabs = [];
    /** This console's call. @type {{ sessionId: string, pc: RTCPeerConnection | null, mic: MediaStreamTrack | null, cam: MediaStreamTrack | null, rules: CallRules | null, video: boolean, queue: RTCIceCandidateInit[] } | null} */
    this.call = null;
    /** This console's view of the visitor's share. @type {{ sessionId: string, pc: RTCPeerConnection | null, queue: RTCIceCandidateInit[] } | null} */
    this.share = null;
    const b = (/** @type {string} */ id, /** @type {string} */ text) => /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'btn btn-small', 'data-testid': id }, [text]));
    this.btn = {
      audio: b('call-audio', 'Call'),
      video: b('call-video', 'Video call'),
      mute: b('call-mute', 'Mute'),
      camera: b('call-camera', 'Camera on'),
      hangup: b('call-hangup', 'Hang up'),
      tab: b('share-tab', 'Ask for the full tab'),
      screen: b('share-screen', 'Ask for a screen'),
      stopShare: b('share-stop', 'Stop viewing the share'),
    };
    this.btn.hangup.classList.add('danger');
    this.status = h('span', { class: 'muted small', 'data-testid': 'call-status', role: 'status' });
    this.remote = /** @type {HTMLVideoElement} */ (h('video', { 'data-testid': 'call-remote-video', autoplay: '', playsinline: '', 'aria-label': "The visitor's camera" }));
    this.local = /** @type {HTMLVideoElement} */ (h('video', { 'data-testid': 'call-local-video', autoplay: '', playsinline: '', 'aria-label': 'Your camera (preview)' }));
    this.local.muted = true;
    this.audio = /** @type {HTMLAudioElement} */ (h('audio', { autoplay: '' }));
    this.videos = h('div', { class: 'call-videos' }, [this.remote, this.local]);
    this.bar = h('div', { class: 'call-bar', 'data-testid': 'call-panel', role: 'group', 'aria-label': 'Call and sharing' },
      [this.status, ...Object.values(this.btn), this.audio]);
    this.shareVideo = /** @type {HTMLVideoElement} */ (h('video', { 'data-testid': 'share-video', autoplay: '', playsinline: '', muted: '' }));
    this.shareVideo.muted = true;
    this.shareLabel = h('p', { class: 'share-label', 'data-testid': 'share-label', role: 'status' });
    this.shareBox = h('div', { class: 'share-box', hidden: '' }, [this.shareLabel, this.shareVideo]);
    // The controls in the session's tool bar, before its panel toggles (not a row of
    // their own: the mirror keeps its height); the videos under the mirror card's head.
    const tools = document.getElementById('session-toolbar');
    const end = tools && tools.querySelector('.tb-end');
    if (tools && end) tools.insertBefore(this.bar, end);
    else section.prepend(this.bar);
    (section.querySelector('.card-head') || this.bar).after(this.videos);
    mirrors.before(this.shareBox);
    this.btn.audio.onclick = () => this.start(false);
    this.btn.video.onclick = () => this.start(true);
    this.btn.hangup.onclick = () => this.sendCall({ kind: 'end' });
    this.btn.mute.onclick = () => this.setMedia(!(this.call && this.call.mic), null).catch((e) => this.host.announce(String(e.message || e)));
    this.btn.camera.onclick = () => this.setMedia(null, !(this.call && this.call.cam)).catch((e) => this.host.announce(String(e.message || e)));
    this.btn.tab.onclick = () => this.sendCall({ kind: 'share_request', screen: false });
    this.btn.screen.onclick = () => this.sendCall({ kind: 'share_request', screen: true });
    this.btn.stopShare.onclick = () => this.sendCall({ kind: 'share_stop' });
    this.render();
  }

  /** @param {CallFromAgent} call */
  sendCall(call) {
    return this.sessionId ? this.host.send({ type: 'call', session_id: this.sessionId, call }) : false;
  }

  /** The session in view (null: none active that this agent is in). @param {string | null} sessionId @param {SessionCall | null} view @param {import('./wire').Connection[]} tabs */
  show(sessionId, view, tabs) {
    this.sessionId = sessionId;
    this.view = view;
    this.tabs = tabs;
    // The server ended it (hang-up, session end, tab closed): drop what this console had.
    const mine = view && view.agent_id === this.host.me() && view.state !== 'none';
    if (this.call && (this.call.sessionId !== sessionId || !mine)) this.hangup();
    const shareMine = view && view.share !== 'off' && view.share_agent_id === this.host.me();
    if (this.share && (this.share.sessionId !== sessionId || !shareMine)) this.shareDone();
    this.render();
  }

  /** @param {boolean} video */
  start(video) {
    if (!this.sessionId) return;
    this.call = { sessionId: this.sessionId, pc: null, mic: null, cam: null, rules: null, video, queue: [] };
    if (!this.sendCall({ kind: 'start', video })) this.call = null;
    this.render();
  }

  /** A `call` frame for this console. @param {{ session_id: string, call: CallToAgent }} msg */
  async onFrame(msg) {
    const m = msg.call;
    if (m.kind === 'start') return this.connect(msg.session_id, m.ice_servers, m.rules);
    if (m.kind === 'share_start') return this.shareConnect(msg.session_id, m.ice_servers);
    if (m.kind === 'signal') {
      const s = m.signal;
      const target = s.channel === 'share' ? this.share : this.call;
      if (!target || !target.pc) return;
      const pc = target.pc;
      try {
        if (s.description && s.channel === 'share' && s.description.type === 'offer') {
          await pc.setRemoteDescription(s.description);
          for (const t of pc.getTransceivers()) t.direction = 'recvonly';
          const answer = await pc.createAnswer();
          await pc.setLocalDescription(answer);
          this.host.send({ type: 'call', session_id: msg.session_id, call: { kind: 'signal', signal: { channel: 'share', description: { type: 'answer', sdp: answer.sdp || '' } } } });
          for (const q of target.queue.splice(0)) await pc.addIceCandidate(q);
        } else if (s.description && s.description.type === 'answer') {
          await pc.setRemoteDescription(s.description);
          for (const q of target.queue.splice(0)) await pc.addIceCandidate(q);
        } else if (s.candidate) {
          if (pc.remoteDescription) await pc.addIceCandidate(s.candidate);
          else target.queue.push(s.candidate);
        }
      } catch (e) {
        console.error('[covisit console] negotiation failed', e);
      }
    }
  }

  /** The visitor accepted: the microphone (and camera), then the offer.
   * @param {string} sessionId @param {IceServer[]} iceServers @param {CallRules} rules */
  async connect(sessionId, iceServers, rules) {
    const c = this.call;
    if (!c || c.sessionId !== sessionId || c.pc) return;
    c.rules = rules;
    const camera = c.video && rules.video_to_visitor;
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: camera });
    } catch (e) {
      this.host.announce('Your browser gave no microphone: the call ends.');
      this.sendCall({ kind: 'end', reason: 'media_denied' });
      return;
    }
    if (this.call !== c) { stream.getTracks().forEach((t) => t.stop()); return; }
    c.mic = stream.getAudioTracks()[0] || null;
    c.cam = stream.getVideoTracks()[0] || null;
    const pc = c.pc = new RTCPeerConnection({ iceServers });
    pc.addTransceiver('audio', { direction: 'sendrecv' });
    // Video only where cobrowsingVideoEnabled lets it go (the server refuses the rest).
    if (rules.video_to_agent || rules.video_to_visitor) {
      const dir = rules.video_to_visitor ? (rules.video_to_agent ? 'sendrecv' : 'sendonly') : 'recvonly';
      pc.addTransceiver('video', { direction: dir });
    }
    await this.attach(c);
    pc.onicecandidate = (e) => { if (e.candidate && this.call === c) this.sendCall({ kind: 'signal', signal: { channel: 'call', candidate: candidate(e.candidate) } }); };
    pc.ontrack = (e) => {
      if (e.track.kind === 'audio') this.audio.srcObject = new MediaStream([e.track]);
      else this.remote.srcObject = new MediaStream([e.track]);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed' && this.call === c) this.sendCall({ kind: 'end', reason: 'failed' });
      this.render();
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    if (this.call !== c) return;
    this.sendCall({ kind: 'signal', signal: { channel: 'call', description: { type: 'offer', sdp: offer.sdp || '' } } });
    if (camera) this.sendCall({ kind: 'media', audio: !!c.mic, video: !!c.cam });
    this.render();
  }

  /** @param {NonNullable<CallPanel['call']>} c */
  async attach(c) {
    if (!c.pc || !c.rules) return;
    for (const t of c.pc.getTransceivers()) {
      const kind = t.receiver.track.kind;
      const track = kind === 'audio' ? c.mic : (c.rules.video_to_visitor ? c.cam : null);
      if (t.sender.track !== track) await t.sender.replaceTrack(track);
    }
    this.local.srcObject = c.cam ? new MediaStream([c.cam]) : null;
  }

  /** Microphone / camera on or off (null: unchanged), by the call's rules. @param {boolean | null} mic @param {boolean | null} cam */
  async setMedia(mic, cam) {
    const c = this.call;
    if (!c || !c.rules) return;
    const rel = c.rules.relationship;
    if (mic === false) {
      if (c.mic) c.mic.stop();
      c.mic = null;
      if (rel === 'video_requires_audio' && c.cam) { c.cam.stop(); c.cam = null; }
    }
    if (mic === true && !c.mic) c.mic = (await navigator.mediaDevices.getUserMedia({ audio: true })).getAudioTracks()[0] || null;
    if (cam === true && !c.cam) {
      if (!c.rules.video_to_visitor) throw new Error("The site's cobrowsingVideoEnabled keeps your camera from the visitor.");
      if (!c.mic && rel === 'video_requires_audio') throw new Error('Turn your microphone on first (video_requires_audio).');
      const both = !c.mic && rel === 'automatic';
      const s = await navigator.mediaDevices.getUserMedia({ video: true, audio: both });
      c.cam = s.getVideoTracks()[0] || null;
      if (both) c.mic = s.getAudioTracks()[0] || null;
    }
    if (cam === false && c.cam) { c.cam.stop(); c.cam = null; }
    await this.attach(c);
    this.sendCall({ kind: 'media', audio: !!c.mic, video: !!c.cam });
    this.render();
  }

  /** Drops this console's side of the call (the server said it ended). */
  hangup() {
    const c = this.call;
    this.call = null;
    if (!c) return;
    if (c.mic) c.mic.stop();
    if (c.cam) c.cam.stop();
    if (c.pc) c.pc.close();
    this.remote.srcObject = null;
    this.local.srcObject = null;
    this.audio.srcObject = null;
  }

  /** The visitor allowed the share: its offer follows. @param {string} sessionId @param {IceServer[]} iceServers */
  shareConnect(sessionId, iceServers) {
    if (this.share && this.share.pc) return;
    const sh = this.share = { sessionId, pc: /** @type {RTCPeerConnection | null} */ (null), queue: [] };
    const pc = sh.pc = new RTCPeerConnection({ iceServers });
    pc.onicecandidate = (e) => { if (e.candidate && this.share === sh) this.host.send({ type: 'call', session_id: sessionId, call: { kind: 'signal', signal: { channel: 'share', candidate: candidate(e.candidate) } } }); };
    pc.ontrack = (e) => { this.shareVideo.srcObject = new MediaStream([e.track]); this.render(); };
  }

  shareDone() {
    const sh = this.share;
    this.share = null;
    if (sh && sh.pc) sh.pc.close();
    this.shareVideo.srcObject = null;
  }

  render() {
    const v = this.view;
    const me = this.host.me();
    const active = !!this.sessionId;
    const state = v ? v.state : 'none';
    const mine = !!v && v.agent_id === me && state !== 'none';
    const someoneElse = !!v && state !== 'none' && !mine;
    this.bar.hidden = !active;
    this.btn.audio.hidden = this.btn.video.hidden = state !== 'none';
    this.btn.audio.disabled = this.btn.video.disabled = !!this.call;
    // The call's tab, else the one a call would go to (the visitor's focused tab).
    const tab = (v && v.tab ? this.tabs.find((t) => t.uniqueConnectionId === v.tab) : null)
      || this.tabs.find((t) => t.hasFocus) || this.tabs[0] || null;
    const rules = (this.call && this.call.rules) || (v && v.rules) || null;
    this.btn.video.hidden = this.btn.video.hidden || (!!tab && tab.cobrowsingVideoEnabled === 'disabled');
    // Offer only what the visitor's page allows (the server refuses the rest anyway).
    if (tab && !tab.audioSupported) this.btn.audio.hidden = this.btn.video.hidden = true;
    this.btn.mute.hidden = this.btn.hangup.hidden = !mine;
    this.btn.mute.textContent = this.call && this.call.mic ? 'Mute' : 'Unmute';
    this.btn.camera.hidden = !mine || !rules || !rules.video_to_visitor;
    this.btn.camera.textContent = this.call && this.call.cam ? 'Camera off' : 'Camera on';
    const share = v ? v.share : 'off';
    this.btn.tab.hidden = share !== 'off' || !tab || !tab.allowRequestFullTab;
    this.btn.screen.hidden = share !== 'off' || !tab || !tab.allowFullScreen;
    this.btn.stopShare.hidden = share === 'off' || v?.share_agent_id !== me;
    const pcState = this.call && this.call.pc ? this.call.pc.connectionState : '';
    let text = '';
    if (state === 'ringing') text = mine ? 'Calling the visitor…' : 'Another agent is calling the visitor.';
    else if (state === 'connecting') text = 'The visitor accepted; connecting…';
    else if (state === 'connected') {
      text = mine ? `On a call${pcState === 'connected' ? '' : ` (${pcState})`}` : 'Another agent is on a call with the visitor.';
      if (mine && v && !v.visitor.audio) text += ' The visitor is muted.';
    }
    else if (v && v.reason) text = `Last call ended: ${v.reason.replace(/_/g, ' ')}.`;
    if (someoneElse) this.btn.audio.hidden = this.btn.video.hidden = true;
    if (share === 'authorizing') text += ` Asking the visitor to share ${v && v.share_screen ? 'a screen or window' : 'the full tab'}…`;
    this.status.textContent = text;
    this.videos.hidden = !mine || !(v && (v.visitor.video || v.agent.video));
    this.remote.hidden = !(v && v.visitor.video);
    this.local.hidden = !(this.call && this.call.cam);
    // The share in place of the mirror, saying plainly what this is.
    const showing = active && share === 'active' && !!this.share && v?.share_agent_id === me;
    this.shareBox.hidden = !showing;
    this.mirrors.hidden = showing;
    this.shareLabel.textContent = showing
      ? `You are seeing a live video of the visitor's ${v && v.share_screen ? 'screen or window' : 'tab'}, not the page mirror: masking does not apply, and remote control is not available on it.`
      : '';
  }
}
