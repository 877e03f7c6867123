// Calls and tab / screen sharing on the visitor's side (issue 17), fetched on demand
// (covisit-call.js) when the first `call` frame of a session arrives: nothing of it is in
// the first load. It does the WebRTC I/O only; the server's hub (server/src/hub/calls.rs,
// src/core/machine/call.rs) decides what may happen and relays the signalling. Consent
// first: no microphone, camera, capture or peer connection before the visitor accepted,
// through the page's `callRequest` handler or the SDK's own prompt (glue.js `dialog`,
// which ignores input that started before it was shown).
// @ts-check

/** @typedef {import('./glue.js').Ui} Ui */
/** @typedef {import('../../www/agent/wire').CallToVisitor} CallToVisitor */
/** @typedef {import('../../www/agent/wire').CallFromVisitor} CallFromVisitor */
/** @typedef {import('../../www/agent/wire').CallRules} CallRules */
/** @typedef {import('../../www/agent/wire').CallSignal} CallSignal */
/** @typedef {import('../../www/agent/wire').CallEndReason} CallEndReason */
/** @typedef {import('../../www/agent/wire').Agent} Agent */
/** @typedef {import('../../www/agent/wire').IceServer} IceServer */

/**
 * @typedef {object} Call
 * @property {Agent} agent
 * @property {boolean} video a video call
 * @property {CallRules} rules
 * @property {'ringing' | 'accepting' | 'connecting' | 'connected'} state
 * @property {RTCPeerConnection | null} pc
 * @property {MediaStreamTrack | null} mic
 * @property {MediaStreamTrack | null} cam
 * @property {RTCIceCandidateInit[]} queue candidates that came before the offer
 * @property {{ audio: boolean, video: boolean }} remote the agent's media
 */

/**
 * @typedef {object} Share
 * @property {Agent} agent
 * @property {boolean} screen
 * @property {RTCPeerConnection | null} pc
 * @property {MediaStream | null} stream
 * @property {boolean} running
 */

const CSS = `
.call { position: fixed; left: 16px; bottom: 64px; display: flex; gap: 8px; align-items: center; flex-wrap: wrap;
  max-width: 420px; background: #0e7a3e; color: #fff; border-radius: 12px; padding: 6px 8px 6px 14px;
  box-shadow: 0 4px 16px rgba(16, 24, 40, .25); z-index: 2147483647; font: 15px/1.45 system-ui, sans-serif; }
.call.share { background: #b54708; bottom: 112px; }
.call button { font: inherit; cursor: pointer; border: 1px solid #fff; background: transparent; color: #fff; padding: 3px 12px; border-radius: 999px; }
.call button[aria-pressed="true"] { background: #fff; color: #0e7a3e; }
.call video { width: 160px; max-height: 120px; border-radius: 8px; background: #000; }
`;

/** @param {string} code @param {string} message */
const fail = (code, message) => Object.assign(new Error(message), { code });

/** The direction a visitor's transceiver of `kind` takes under `rules`. @param {string} kind @param {CallRules} rules @returns {RTCRtpTransceiverDirection} */
function direction(kind, rules) {
  if (kind === 'audio') return 'sendrecv';
  const send = rules.video_to_agent, recv = rules.video_to_visitor;
  return send ? (recv ? 'sendrecv' : 'sendonly') : (recv ? 'recvonly' : 'inactive');
}

export class Calls {
  /** @param {Ui} ui */
  constructor(ui) {
    this.ui = ui;
    /** @type {Call | null} */
    this.call = null;
    /** @type {Share | null} */
    this.share = null;
    /** @type {HTMLElement | null} */
    this.bar = null;
    /** @type {HTMLElement | null} */
    this.shareBar = null;
    /** @type {HTMLAudioElement | null} */
    this.audio = null;
    /** @type {HTMLVideoElement | null} */
    this.video = null;
    const root = ui.ensureRoot();
    this.style = ui.el('style', { text: CSS });
    root.append(this.style);
  }

  /** @param {CallFromVisitor} call */
  send(call) { this.ui.onAction('callSend', JSON.stringify(call)); }

  /** Fires a page event; false when the page has no handler for it. @param {string} name @param {unknown} detail */
  emit(name, detail) { return this.ui.onAction(`on:${name}`, detail); }

  /** A server `call` frame (protocol `CallToVisitor`), as JSON text. @param {string} text */
  frame(text) {
    /** @type {CallToVisitor} */
    const m = JSON.parse(text);
    switch (m.kind) {
      case 'request': return this.request(m.agent, m.video, m.rules);
      case 'start': return this.start(m.ice_servers);
      case 'signal': return this.signal(m.signal);
      case 'media': if (this.call) { this.call.remote = { audio: m.audio, video: m.video }; this.render(); } return;
      case 'end': return this.finish(m.reason);
      case 'share_request': return this.shareRequest(m.agent, m.screen);
      case 'share_start': return this.shareStart(m.ice_servers);
      case 'share_end': return this.shareFinish();
      default: return;
    }
  }

  // ----- the call ------------------------------------------------------------------

  /** @param {Agent} agent @param {boolean} video @param {CallRules} rules */
  request(agent, video, rules) {
    if (this.call) return; // the server allows one call at a time
    this.call = { agent, video, rules, state: 'ringing', pc: null, mic: null, cam: null, queue: [], remote: { audio: true, video: video && rules.video_to_visitor } };
    const camera = video && rules.video_to_agent;
    if (this.emit('callRequest', { agent, video, camera })) return;
    const ui = this.ui;
    ui.dialog('call-prompt', camera ? 'Allow a video call?' : 'Allow a call?',
      `${agent.name} would like to talk with you. Your browser will then ask for your microphone${camera ? ' and camera' : ''}. You can mute or hang up at any time.`, [
        ui.button('Decline', () => { ui.hidePrompt(); this.api('declineCall').catch(() => {}); }),
        ui.button('Accept', () => { ui.hidePrompt(); this.api('acceptCall').catch(() => {}); }, { class: 'primary' }),
      ]);
  }

  /** The page's API (cv.acceptCall() …), answered here. @param {string} name @param {unknown} [arg] @returns {Promise<void>} */
  async api(name, arg) {
    const c = this.call;
    const on = arg === true;
    if (name === 'acceptCall' || name === 'declineCall') {
      if (!c || c.state !== 'ringing') throw fail('wrong_call_state', `\`${name}\` is not valid now: expected a ringing call`);
      if (name === 'declineCall') { this.send({ kind: 'end', reason: 'declined' }); return this.finish('declined'); }
      return this.accept(c);
    }
    if (!c || c.state === 'ringing' || c.state === 'accepting') throw fail('wrong_call_state', `\`${name}\` is not valid now: expected a call in progress`);
    if (name === 'endCall') { this.send({ kind: 'end', reason: 'declined' }); return this.finish('hung_up_by_visitor'); }
    if (typeof arg !== 'boolean') throw fail('invalid_argument', `\`${name}\` takes true or false`);
    const rel = c.rules.relationship;
    if (name === 'setMicrophone') {
      if (on && !c.mic) c.mic = (await this.media(c, { audio: true })).getAudioTracks()[0] || null;
      if (!on) {
        stop(c.mic); c.mic = null;
        // video_requires_audio: the camera is on only while the microphone is.
        if (rel === 'video_requires_audio') { stop(c.cam); c.cam = null; }
      }
    } else if (name === 'setCamera') {
      if (on && !c.rules.video_to_agent) throw fail('media_not_allowed', "cobrowsingVideoEnabled does not let the visitor's camera reach the agent");
      if (on && !c.mic && rel === 'video_requires_audio') throw fail('media_not_allowed', 'cobrowsingVideoAudioRelationship is video_requires_audio: turn the microphone on first');
      if (on && !c.cam) {
        // automatic: audio starts with the video.
        const both = !c.mic && rel === 'automatic';
        const s = await this.media(c, { video: true, audio: both });
        c.cam = s.getVideoTracks()[0] || null;
        if (both) c.mic = s.getAudioTracks()[0] || null;
      }
      if (!on) { stop(c.cam); c.cam = null; }
    } else {
      throw fail('invalid_argument', `unknown call method \`${name}\``);
    }
    await this.attach(c);
    this.send({ kind: 'media', audio: !!c.mic, video: !!c.cam });
    this.render();
  }

  /** getUserMedia for a call still going on; its tracks are stopped if the call ended meanwhile. @param {Call} c @param {MediaStreamConstraints} want */
  async media(c, want) {
    let s;
    try { s = await navigator.mediaDevices.getUserMedia(want); } catch (e) { throw fail('media_denied', `the browser gave no ${want.video ? 'camera' : 'microphone'}: ${e instanceof Error ? e.message : e}`); }
    if (this.call !== c) { s.getTracks().forEach((t) => t.stop()); throw fail('wrong_call_state', 'the call ended'); }
    return s;
  }

  /** The visitor said yes: the microphone (and camera) first, then `accept`. @param {Call} c */
  async accept(c) {
    c.state = 'accepting';
    const camera = c.video && c.rules.video_to_agent;
    let s;
    try {
      s = await this.media(c, { audio: true, video: camera });
    } catch (e) {
      if (this.call === c) { this.send({ kind: 'end', reason: 'media_denied' }); this.finish('media_denied'); }
      throw e;
    }
    c.mic = s.getAudioTracks()[0] || null;
    c.cam = s.getVideoTracks()[0] || null;
    c.state = 'connecting';
    this.send({ kind: 'accept', audio: !!c.mic, video: !!c.cam });
    this.render();
  }

  /** Accepted by the server: the agent's offer follows. @param {IceServer[]} iceServers */
  start(iceServers) {
    const c = this.call;
    if (!c || c.pc || c.state !== 'connecting') return;
    const pc = c.pc = new RTCPeerConnection({ iceServers });
    pc.onicecandidate = (e) => { if (e.candidate && this.call === c) this.send({ kind: 'signal', signal: { channel: 'call', candidate: candidate(e.candidate) } }); };
    pc.ontrack = (e) => this.remoteTrack(e.track);
    pc.onconnectionstatechange = () => {
      if (this.call !== c) return;
      if (pc.connectionState === 'connected' && c.state !== 'connected') {
        c.state = 'connected';
        this.send({ kind: 'connected' });
        this.render();
        this.emit('callStart', { agent: c.agent, video: c.video });
      } else if (pc.connectionState === 'failed') {
        this.send({ kind: 'end', reason: 'failed' });
        this.finish('failed');
      }
    };
  }

  /** @param {CallSignal} s */
  async signal(s) {
    if (s.channel === 'share') return this.shareSignal(s);
    const c = this.call;
    if (!c || !c.pc) return;
    const pc = c.pc;
    try {
      if (s.description && s.description.type === 'offer') {
        await pc.setRemoteDescription(s.description);
        // Directions by the rules: video goes only where cobrowsingVideoEnabled lets it
        // (the server refuses an answer that would send it otherwise).
        for (const t of pc.getTransceivers()) t.direction = direction(t.receiver.track.kind, c.rules);
        await this.attach(c);
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        if (this.call !== c) return;
        this.send({ kind: 'signal', signal: { channel: 'call', description: { type: 'answer', sdp: answer.sdp || '' } } });
        for (const q of c.queue.splice(0)) await pc.addIceCandidate(q);
      } else if (s.candidate) {
        if (pc.remoteDescription) await pc.addIceCandidate(s.candidate);
        else if (c.queue.length < 100) c.queue.push(s.candidate);
      }
    } catch (e) {
      console.error('[covisit] call negotiation failed', e);
    }
  }

  /** Puts the microphone and camera on their transceivers (null: sends nothing). @param {Call} c */
  async attach(c) {
    if (!c.pc) return;
    for (const t of c.pc.getTransceivers()) {
      const kind = t.receiver.track.kind;
      const track = kind === 'audio' ? c.mic : (c.rules.video_to_agent ? c.cam : null);
      if (t.sender.track !== track) await t.sender.replaceTrack(track);
    }
  }

  /** @param {MediaStreamTrack} track */
  remoteTrack(track) {
    const root = this.ui.ensureRoot();
    if (track.kind === 'audio') {
      if (!this.audio) { this.audio = document.createElement('audio'); this.audio.autoplay = true; root.append(this.audio); }
      this.audio.srcObject = new MediaStream([track]);
    } else if (this.call && this.call.rules.video_to_visitor) {
      if (!this.video) {
        this.video = document.createElement('video');
        this.video.autoplay = true; this.video.muted = true; this.video.playsInline = true;
        this.video.setAttribute('data-covisit', 'call-video');
        this.video.setAttribute('aria-label', "The agent's camera");
      }
      this.video.srcObject = new MediaStream([track]);
      this.render();
    }
  }

  /** The call bar: who, mute, camera, hang up (no arming: each only withdraws or is the visitor's own choice). */
  render() {
    const c = this.call;
    if (this.bar) { this.bar.remove(); this.bar = null; }
    if (!c || c.state === 'ringing' || c.state === 'accepting') return;
    const ui = this.ui;
    const who = c.agent.name || 'Support';
    /** @param {string} text @param {boolean | null} pressed @param {() => void} run */
    const b = (text, pressed, run) => ui.el('button', { type: 'button', text, ...(pressed === null ? {} : { 'aria-pressed': String(pressed) }), onclick: run });
    const label = c.state === 'connected' ? `On a call with ${who}` : `Connecting to ${who}…`;
    const kids = /** @type {(Node | string)[]} */ ([ui.el('span', { text: label })]);
    if (this.video && c.remote.video) kids.push(this.video);
    kids.push(b(c.mic ? 'Mute' : 'Unmute', !c.mic, () => this.api('setMicrophone', !c.mic).catch(warn)));
    if (c.rules.video_to_agent) kids.push(b(c.cam ? 'Camera off' : 'Camera on', !!c.cam, () => this.api('setCamera', !c.cam).catch(warn)));
    kids.push(b('Hang up', null, () => this.api('endCall').catch(warn)));
    this.bar = ui.el('div', { class: 'cv call', role: 'status', 'data-covisit': 'call' }, kids);
    ui.ensureRoot().append(this.bar);
  }

  /** Ends the call here, whoever ended it. @param {CallEndReason} reason */
  finish(reason) {
    const c = this.call;
    if (!c) return;
    this.call = null;
    stop(c.mic); stop(c.cam);
    if (c.pc) c.pc.close();
    this.ui.hidePrompt(/^call-prompt$/);
    if (this.audio) { this.audio.srcObject = null; this.audio.remove(); this.audio = null; }
    if (this.video) { this.video.srcObject = null; this.video.remove(); this.video = null; }
    this.render();
    this.emit('callEnd', { reason });
  }

  // ----- sharing the tab or a screen -------------------------------------------------

  /** @param {Agent} agent @param {boolean} screen */
  shareRequest(agent, screen) {
    if (this.share) return;
    this.share = { agent, screen, pc: null, stream: null, running: false };
    const ui = this.ui;
    const what = screen ? 'a screen or window you pick' : 'this tab';
    ui.dialog('share-prompt', screen ? 'Share your screen as video?' : 'Share this tab as video?',
      `${agent.name} asks to see ${what} as a video. Masking cannot apply to a video: everything visible ${screen ? 'in what you share' : 'in this tab'}, hidden fields included, will be seen. You can stop at any time.`, [
        ui.button('Decline', () => { ui.hidePrompt(); this.send({ kind: 'share_end', reason: 'declined' }); this.shareFinish(); }),
        // getDisplayMedia needs the click's activation: called at once, in the handler.
        ui.button(screen ? 'Choose what to share' : 'Share this tab', () => { ui.hidePrompt(); this.shareAccept(); }, { class: 'primary' }),
      ]);
  }

  /** The visitor allowed it: the browser's picker, then `share_accept` (the server's
   * `share_start` brings the ICE servers). A tab share must be a tab: a screen or
   * window picked instead (browsers that ignore `preferCurrentTab` offer them) is
   * stopped, as only `allowFullScreen` lets those go. */
  shareAccept() {
    const sh = this.share;
    if (!sh) return;
    /** @type {DisplayMediaStreamOptions & Record<string, unknown>} */
    const opts = sh.screen ? { video: true, audio: false }
      : { video: true, audio: false, preferCurrentTab: true, selfBrowserSurface: 'include', surfaceSwitching: 'exclude', monitorTypeSurfaces: 'exclude' };
    const denied = () => { if (this.share === sh) { this.send({ kind: 'share_end', reason: 'media_denied' }); this.shareFinish(); } };
    const md = navigator.mediaDevices;
    // Not every browser can capture (mobile ones): said at once, not left asking.
    if (!md || typeof md.getDisplayMedia !== 'function') return denied();
    let asked;
    try { asked = md.getDisplayMedia(opts); } catch (e) { return denied(); }
    asked.then((stream) => {
      if (this.share !== sh) { stream.getTracks().forEach((t) => t.stop()); return; }
      const track = stream.getVideoTracks()[0];
      const surface = track && track.getSettings ? /** @type {{ displaySurface?: string }} */ (track.getSettings()).displaySurface : undefined;
      if (!track || (!sh.screen && surface && surface !== 'browser')) {
        stream.getTracks().forEach((t) => t.stop());
        return denied();
      }
      sh.stream = stream;
      // The browser's own "Stop sharing" ends it too.
      track.onended = () => { if (this.share === sh) { this.send({ kind: 'share_end', reason: 'declined' }); this.shareFinish(); } };
      this.send({ kind: 'share_accept' });
      this.renderShare();
    }, denied);
  }

  /** The server took the visitor's `share_accept`: the offer, with these ICE servers. @param {IceServer[]} iceServers */
  shareStart(iceServers) {
    const sh = this.share;
    if (!sh || !sh.stream || sh.pc) return;
    const stream = sh.stream;
    const track = stream.getVideoTracks()[0];
    const pc = sh.pc = new RTCPeerConnection({ iceServers });
    pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    pc.onicecandidate = (e) => { if (e.candidate && this.share === sh) this.send({ kind: 'signal', signal: { channel: 'share', candidate: candidate(e.candidate) } }); };
    pc.onconnectionstatechange = () => {
      if (this.share !== sh) return;
      if (pc.connectionState === 'connected' && !sh.running) { sh.running = true; this.send({ kind: 'share_started' }); this.renderShare(); }
      else if (pc.connectionState === 'failed') { this.send({ kind: 'share_end', reason: 'failed' }); this.shareFinish(); }
    };
    pc.createOffer().then((offer) => pc.setLocalDescription(offer).then(() => {
      if (this.share === sh) this.send({ kind: 'signal', signal: { channel: 'share', description: { type: 'offer', sdp: offer.sdp || '' } } });
    })).catch((e) => console.error('[covisit] share negotiation failed', e));
  }

  /** @param {CallSignal} s */
  async shareSignal(s) {
    const sh = this.share;
    if (!sh || !sh.pc) return;
    try {
      if (s.description && s.description.type === 'answer') await sh.pc.setRemoteDescription(s.description);
      else if (s.candidate && sh.pc.remoteDescription) await sh.pc.addIceCandidate(s.candidate);
    } catch (e) {
      console.error('[covisit] share negotiation failed', e);
    }
  }

  renderShare() {
    if (this.shareBar) { this.shareBar.remove(); this.shareBar = null; }
    const sh = this.share;
    if (!sh || !sh.stream) return;
    const ui = this.ui;
    const text = `${sh.agent.name || 'Support'} ${sh.running ? 'sees' : 'will see'} ${sh.screen ? 'your shared screen' : 'this tab'} as video`;
    this.shareBar = ui.el('div', { class: 'cv call share', role: 'status', 'data-covisit': 'share' }, [
      ui.el('span', { text }),
      ui.el('button', { type: 'button', text: 'Stop sharing', onclick: () => { this.send({ kind: 'share_end', reason: 'declined' }); this.shareFinish(); } }),
    ]);
    ui.ensureRoot().append(this.shareBar);
  }

  shareFinish() {
    const sh = this.share;
    if (!sh) return;
    this.share = null;
    if (sh.stream) sh.stream.getTracks().forEach((t) => t.stop());
    if (sh.pc) sh.pc.close();
    this.ui.hidePrompt(/^share-prompt$/);
    this.renderShare();
  }

  /** The session is over (or the SDK stops): everything ends at once. */
  stop() {
    this.finish('session_ended');
    this.shareFinish();
    this.style.remove();
  }
}

/** @param {MediaStreamTrack | null} t */
function stop(t) { if (t) t.stop(); }

/** @param {unknown} e */
function warn(e) { console.warn('[covisit]', e); }

/** @param {RTCIceCandidate} c @returns {import('../../www/agent/wire').IceCandidate} */
function candidate(c) {
  return { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex };
}
