// Calls and full-tab sharing (issue 17), end to end: the real server, the agent console
// and a visitor page (fixtures/esm.html: `window.covisit` is the SDK object) in headless
// Chromium with fake camera and microphone. Media directions are checked with the peer
// connections' own getStats() on both sides (a spy records each RTCPeerConnection the
// page makes; the connections themselves are the browser's); what crosses the wire is
// read from the sockets (CDP).
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { chromium } from 'playwright-core';
import * as L from './lib.mjs';

// The last flag stands in for the visitor's pick in the screen / window picker
// (allowFullScreen): Chromium picks the tab of that title, the fixture page.
const MEDIA_ARGS = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--auto-accept-this-tab-capture', '--autoplay-policy=no-user-gesture-required',
  '--auto-select-tab-capture-source-by-title=covisit e2e: ES module'];

let server, browser, denyBrowser, agent;

/** Records every RTCPeerConnection a page makes (window.__pcs), how often it asked for
 * the microphone or camera (window.__gum) and the streams it captured (window.__captures). */
const SPY = () => {
  window.__pcs = [];
  window.__gum = 0;
  window.__captures = [];
  const Original = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Original {
    constructor(...args) { super(...args); window.__pcs.push(this); }
  };
  const md = navigator.mediaDevices;
  if (md) {
    const gum = md.getUserMedia.bind(md);
    md.getUserMedia = (c) => { window.__gum++; return gum(c); };
    if (md.getDisplayMedia) {
      const gdm = md.getDisplayMedia.bind(md);
      md.getDisplayMedia = (c) => gdm(c).then((s) => { window.__captures.push(s); return s; });
    }
  }
};

/** Whether a page's open peer connections send a live track of `kind`. */
const sends = (page, kind) => page.evaluate((k) => window.__pcs.some((pc) => pc.connectionState !== 'closed'
  && pc.getSenders().some((s) => s.track && s.track.kind === k && s.track.readyState === 'live')), kind);

/** The visitor's share state, as its SDK says it (the seed Connection's fullTabStatus). */
const fullTab = (page) => page.evaluate(() => window.covisit.state().connection.fullTabStatus);

/** Packets a page's peer connections received and sent, per kind: {in: {audio, video}, out: {audio, video}}. */
function traffic(page) {
  return page.evaluate(async () => {
    const t = { in: { audio: 0, video: 0 }, out: { audio: 0, video: 0 }, pcs: window.__pcs.length };
    for (const pc of window.__pcs) {
      if (pc.connectionState === 'closed') continue;
      (await pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp') t.in[r.kind] += r.packetsReceived || 0;
        if (r.type === 'outbound-rtp') t.out[r.kind] += r.packetsSent || 0;
      });
    }
    return t;
  });
}

before(async () => {
  L.requireBuilt();
  server = await L.startServer({ fixtures: true });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: [...L.CHROMIUM_ARGS, ...MEDIA_ARGS], headless: true, timeout: 30000 });
  denyBrowser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: [...L.CHROMIUM_ARGS, '--use-fake-device-for-media-stream', '--deny-permission-prompts'], headless: true, timeout: 30000 });
  agent = await L.openConsole(browser, server, 'Cali');
  await agent.addInitScript(SPY);
  await agent.reload();
  await agent.getByTestId('visitor-search').waitFor({ state: 'visible' });
}, { timeout: 60000 });

after(async () => {
  await browser?.close();
  await denyBrowser?.close();
  await server?.stop();
}, { timeout: 30000 });

/** A visitor (ES module fixture, `config`) in an active session with the console
 * (`ag` on `srv`); `init` runs in the page before anything else (after the spy). */
async function liveVisitor(config = {}, b = browser, { srv = server, ag = agent, init = null } = {}) {
  const context = await b.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e));
  await page.addInitScript(SPY);
  if (init) await page.addInitScript(init);
  const frames = await L.captureFrames(page);
  await page.goto(`${srv.url}/fixtures/esm.html?config=${encodeURIComponent(JSON.stringify(config))}`);
  await L.waitFor(() => page.evaluate(() => !!window.covisit), { what: 'the SDK object' });
  await page.evaluate(() => {
    window.callEvents = [];
    for (const n of ['callStart', 'callEnd']) window.covisit.on(n, (d) => window.callEvents.push({ name: n, detail: d }));
  });
  const state = await page.evaluate(() => window.covisit.state());
  const code = await page.evaluate(() => window.covisit.lookupCode());
  await L.requestByLookupCode(ag, code, state.visitor.short_id);
  await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
  await L.waitForConsoleStatus(ag, 'active');
  // The panel is on for the session (it can be empty: nothing to offer, no size).
  await L.waitFor(() => ag.evaluate(() => !document.querySelector('[data-testid="call-panel"]').hidden), { what: 'the call panel on' });
  const sessionId = await L.waitFor(() => page.evaluate(() => window.covisit.state().session.id), { what: 'the session id' });
  const v = { page, frames, shortId: state.visitor.short_id, sessionId, srv, close: () => context.close() };
  opened.push(v);
  return v;
}

/** The visitors of the test running now: ended and closed after it, passed or failed, so
 * that a failure leaves no session open in the console for the next test. */
let opened = [];
afterEach(async () => {
  for (const v of opened.splice(0)) {
    await L.endLiveSessions(v.srv, v.shortId).catch(() => {});
    await v.close().catch(() => {});
  }
  await agent.getByTestId('visitor-search').waitFor({ state: 'visible', timeout: 10000 }).catch(() => {});
}, { timeout: 30000 });

/** The visitor's call events so far. */
const callEvents = (page) => page.evaluate(() => window.callEvents);

/** Agent clicks Call / Video call; the visitor accepts in the SDK's prompt; both connect. */
async function connectCall(v, video, ag = agent) {
  await ag.getByTestId(video ? 'call-video' : 'call-audio').click();
  const prompt = L.sdkUi(v.page, 'call-prompt');
  await prompt.waitFor();
  await prompt.getByRole('button', { name: 'Accept' }).click();
  await L.waitFor(async () => (await callEvents(v.page)).some((e) => e.name === 'callStart'), { timeoutMs: 20000, what: 'callStart' });
  await L.waitFor(async () => /On a call/.test(await ag.getByTestId('call-status').textContent()), { what: 'the console on a call' });
}

/** Waits until audio flows both ways (enough packets for about a second of it). */
async function audioBothWays(v) {
  await L.waitFor(async () => {
    const [a, b] = [await traffic(agent), await traffic(v.page)];
    return a.in.audio > 50 && b.in.audio > 50;
  }, { timeoutMs: 20000, what: 'audio both ways' });
}

async function endSession(v) {
  await L.endLiveSessions(server, v.shortId);
  await v.close();
}

describe('calls', () => {
  it('an audio call: nothing before consent, audio both ways, no video, hang-up by the agent, call length in REST', { timeout: 90000 }, async () => {
    const v = await liveVisitor({ cobrowsingVideoEnabled: 'two_way' });
    await agent.getByTestId('call-audio').click();
    await L.sdkUi(v.page, 'call-prompt').waitFor();
    // Before the visitor answers: no microphone asked for, no peer connection, and
    // nothing of a call went out from the page.
    assert.equal(await v.page.evaluate(() => window.__gum), 0);
    assert.equal(await v.page.evaluate(() => window.__pcs.length), 0);
    assert.ok(!v.frames.sent.some((f) => f.type === 'call'), 'no call frame before consent');
    const got = v.frames.received.filter((f) => f.type === 'call').map((f) => f.call.kind);
    assert.deepEqual(got, ['request'], 'the page got only the request');
    await L.sdkUi(v.page, 'call-prompt').getByRole('button', { name: 'Accept' }).click();
    await L.waitFor(async () => (await callEvents(v.page)).some((e) => e.name === 'callStart'), { timeoutMs: 20000, what: 'callStart' });
    await audioBothWays(v);
    const [a, b] = [await traffic(agent), await traffic(v.page)];
    assert.equal(a.in.video, 0, 'no video reached the agent in an audio call');
    assert.equal(b.in.video, 0, 'no video reached the visitor in an audio call');
    assert.ok(await L.sdkUi(v.page, 'call').isVisible(), "the visitor's indicator shows the call");
    await agent.getByTestId('call-hangup').click();
    await L.waitFor(async () => (await callEvents(v.page)).some((e) => e.name === 'callEnd'), { what: 'callEnd' });
    assert.deepEqual((await callEvents(v.page)).find((e) => e.name === 'callEnd').detail, { reason: 'hung_up_by_agent' });
    await L.waitFor(async () => (await L.sdkUi(v.page, 'call').count()) === 0, { what: 'the call bar gone' });
    const s = await L.waitFor(async () => {
      const r = await L.rest(server, `/api/v1/sessions/${v.sessionId}`);
      return r.body.call_length_seconds >= 1 ? r.body : null;
    }, { what: 'call_length_seconds in the REST Session' });
    const mmss = (n) => `${String(Math.floor(n / 60)).padStart(2, '0')}:${String(n % 60).padStart(2, '0')}`;
    assert.equal(s.formatted_call_length, mmss(s.call_length_seconds));
    assert.ok(s.features_used.includes('audio_call'), JSON.stringify(s.features_used));
    assert.ok(!s.features_used.includes('video_call'));
    await endSession(v);
  });

  for (const [mode, toAgent, toVisitor] of [['two_way', true, true], ['visitor_to_agent', true, false], ['agent_to_visitor', false, true], ['disabled', false, false]]) {
    it(`a video call with cobrowsingVideoEnabled: ${mode} sends video only where it may go`, { timeout: 90000 }, async () => {
      const v = await liveVisitor({ cobrowsingVideoEnabled: mode });
      const videoButton = agent.getByTestId('call-video');
      if (mode === 'disabled') {
        assert.ok(!(await videoButton.isVisible()), 'no video call offered');
        await connectCall(v, false);
      } else {
        await connectCall(v, true);
      }
      await audioBothWays(v);
      // Video where it may go flows...
      await L.waitFor(async () => {
        const [a, b] = [await traffic(agent), await traffic(v.page)];
        return (!toAgent || a.in.video > 30) && (!toVisitor || b.in.video > 30);
      }, { timeoutMs: 20000, what: `video ${mode}` });
      // ...and none the other way, while audio and the allowed video have been flowing.
      const [a, b] = [await traffic(agent), await traffic(v.page)];
      if (!toAgent) { assert.equal(a.in.video, 0, 'no visitor video at the agent'); assert.equal(b.out.video, 0, 'the visitor sent no video'); }
      if (!toVisitor) { assert.equal(b.in.video, 0, 'no agent video at the visitor'); assert.equal(a.out.video, 0, 'the agent sent no video'); }
      // The visitor may not turn on a camera the rules keep from the agent.
      if (!toAgent) {
        const err = await v.page.evaluate(() => window.covisit.setCamera(true).then(() => null, (e) => e.code));
        assert.equal(err, 'media_not_allowed');
      }
      const s = (await L.rest(server, `/api/v1/sessions/${v.sessionId}`)).body;
      assert.equal(s.features_used.includes('video_call'), toAgent || toVisitor, JSON.stringify(s.features_used));
      // Hang-up by the visitor.
      await v.page.evaluate(() => window.covisit.endCall());
      await L.waitFor(async () => /Last call ended: hung up by visitor/.test(await agent.getByTestId('call-status').textContent()), { what: 'the console told' });
      await endSession(v);
    });
  }

  it('video_requires_audio: the camera needs the microphone, and goes off with it', { timeout: 90000 }, async () => {
    const v = await liveVisitor({ cobrowsingVideoEnabled: 'two_way', cobrowsingVideoAudioRelationship: 'video_requires_audio' });
    await connectCall(v, false);
    await v.page.evaluate(() => window.covisit.setCamera(true));
    await L.waitFor(async () => (await traffic(agent)).in.video > 30, { timeoutMs: 20000, what: 'the visitor camera at the agent' });
    await v.page.evaluate(() => window.covisit.setMicrophone(false));
    // Both go off, and the page says so.
    await L.waitFor(() => {
      const sent = v.frames.sent.filter((f) => f.type === 'call' && f.call.kind === 'media');
      const last = sent[sent.length - 1];
      return last && !last.call.audio && !last.call.video;
    }, { what: 'the media report: microphone and camera off' });
    // On the wire too: neither track is on the visitor's connection any more.
    assert.equal(await sends(v.page, 'audio'), false, 'no microphone sent');
    assert.equal(await sends(v.page, 'video'), false, 'no camera sent with the microphone off');
    const err = await v.page.evaluate(() => window.covisit.setCamera(true).then(() => null, (e) => e.code));
    assert.equal(err, 'media_not_allowed');
    assert.equal(await sends(v.page, 'video'), false, 'the refused camera sends nothing');
    await endSession(v);
  });

  it('independent: the camera goes on with the microphone off, and only video is sent', { timeout: 90000 }, async () => {
    const v = await liveVisitor({ cobrowsingVideoEnabled: 'two_way', cobrowsingVideoAudioRelationship: 'independent' });
    await connectCall(v, false);
    await v.page.evaluate(() => window.covisit.setMicrophone(false));
    await v.page.evaluate(() => window.covisit.setCamera(true));
    await L.waitFor(async () => (await traffic(agent)).in.video > 30, { timeoutMs: 20000, what: 'the visitor camera at the agent' });
    assert.equal(await sends(v.page, 'audio'), false, 'the microphone stays off');
    assert.equal(await sends(v.page, 'video'), true);
    await endSession(v);
  });

  it('automatic: turning the camera on turns the microphone on too', { timeout: 90000 }, async () => {
    const v = await liveVisitor({ cobrowsingVideoEnabled: 'two_way', cobrowsingVideoAudioRelationship: 'automatic' });
    await connectCall(v, false);
    await v.page.evaluate(() => window.covisit.setMicrophone(false));
    await v.page.evaluate(() => window.covisit.setCamera(true));
    await L.waitFor(() => {
      const last = v.frames.sent.filter((f) => f.type === 'call' && f.call.kind === 'media').pop();
      return last && last.call.audio && last.call.video;
    }, { what: 'the media report: microphone and camera on' });
    await L.waitFor(async () => (await traffic(agent)).in.video > 30, { timeoutMs: 20000, what: 'the camera at the agent' });
    // The microphone came back with it: its audio reaches the agent again.
    assert.equal(await sends(v.page, 'audio'), true, 'the microphone is on the connection');
    const before = (await traffic(agent)).in.audio;
    await L.waitFor(async () => (await traffic(agent)).in.audio > before + 50, { timeoutMs: 20000, what: "the visitor's audio again at the agent" });
    await endSession(v);
  });

  it('a denied microphone ends the call (media_denied); nothing was connected', { timeout: 90000 }, async () => {
    const v = await liveVisitor({}, denyBrowser);
    await agent.getByTestId('call-audio').click();
    await L.sdkUi(v.page, 'call-prompt').getByRole('button', { name: 'Accept' }).click();
    await L.waitFor(async () => (await callEvents(v.page)).some((e) => e.name === 'callEnd'), { what: 'callEnd' });
    assert.deepEqual((await callEvents(v.page)).find((e) => e.name === 'callEnd').detail, { reason: 'media_denied' });
    assert.equal(await v.page.evaluate(() => window.__pcs.length), 0, 'no peer connection');
    assert.ok(!v.frames.sent.some((f) => f.type === 'call' && f.call.kind === 'accept'));
    await L.waitFor(async () => /media denied/.test(await agent.getByTestId('call-status').textContent()), { what: 'the console told' });
    await endSession(v);
  });

  it('ending the session ends the call on both sides', { timeout: 90000 }, async () => {
    const v = await liveVisitor();
    await connectCall(v, false);
    await agent.getByTestId('end-session').click();
    await L.waitFor(async () => (await callEvents(v.page)).some((e) => e.name === 'callEnd'), { what: 'callEnd' });
    assert.deepEqual((await callEvents(v.page)).find((e) => e.name === 'callEnd').detail, { reason: 'session_ended' });
    await L.waitFor(() => agent.evaluate(() => window.__pcs.every((pc) => pc.connectionState === 'closed')), { what: 'the console closed its connection' });
    const s = (await L.rest(server, `/api/v1/sessions/${v.sessionId}`)).body;
    assert.ok(s.features_used.includes('audio_call'));
    await v.close();
  });

  it("the page's callRequest handler answers instead of the SDK's prompt (declineCall, acceptCall)", { timeout: 90000 }, async () => {
    const v = await liveVisitor();
    // Without a call the call methods reject with a code (and touch no device).
    for (const call of ['acceptCall()', 'declineCall()', 'endCall()', 'setMicrophone(true)', 'setCamera(false)']) {
      const code = await v.page.evaluate((c) => new Function(`return window.covisit.${c}`)().then(() => null, (e) => e.code), call);
      assert.equal(code, 'wrong_call_state', call);
    }
    await v.page.evaluate(() => { window.requests = []; window.covisit.on('callRequest', (d) => { window.requests.push(d); }); });
    await agent.getByTestId('call-audio').click();
    await L.waitFor(() => v.page.evaluate(() => window.requests.length === 1), { what: 'callRequest' });
    const req = await v.page.evaluate(() => window.requests[0]);
    assert.equal(req.agent.name, 'Cali');
    assert.equal(req.video, false);
    assert.equal(await L.sdkUi(v.page, 'call-prompt').count(), 0, "no SDK prompt when the page has a handler");
    assert.equal(await v.page.evaluate(() => window.__gum), 0, 'no microphone asked for before an answer');
    await v.page.evaluate(() => window.covisit.declineCall());
    await L.waitFor(async () => /declined/.test(await agent.getByTestId('call-status').textContent()), { what: 'the console told of the decline' });
    assert.deepEqual((await callEvents(v.page)).find((e) => e.name === 'callEnd').detail, { reason: 'declined' });
    assert.equal(await v.page.evaluate(() => window.__pcs.length), 0, 'no peer connection after a decline');
    // The next call, accepted by the page.
    await agent.getByTestId('call-audio').click();
    await L.waitFor(() => v.page.evaluate(() => window.requests.length === 2), { what: 'the second callRequest' });
    await v.page.evaluate(() => window.covisit.acceptCall());
    await L.waitFor(async () => (await callEvents(v.page)).some((e) => e.name === 'callStart'), { timeoutMs: 20000, what: 'callStart' });
    await audioBothWays(v);
    await endSession(v);
  });

  it("closing the visitor's tab ends the call (tab_closed)", { timeout: 90000 }, async () => {
    const v = await liveVisitor();
    await connectCall(v, false);
    await audioBothWays(v);
    await v.close();
    await L.waitFor(async () => /tab closed/.test(await agent.getByTestId('call-status').textContent()), { timeoutMs: 20000, what: 'the console told' });
    await L.waitFor(() => agent.evaluate(() => window.__pcs.every((pc) => pc.connectionState === 'closed')), { what: 'the console closed its connection' });
    await L.endLiveSessions(server, v.shortId);
  });

  it('an agent cannot signal before the visitor accepts (wrong_call_state)', { timeout: 60000 }, async () => {
    const v = await liveVisitor();
    const ra = await L.rawSocket(browser, server, '/ws/agent', { type: 'hello', protocol_version: 1, secret_key: L.SECRET, name: 'Raw', external_id: 'e2e-raw' });
    await ra.expect((m) => m.type === 'welcome');
    await ra.send({ type: 'join_session', session_id: v.sessionId });
    await ra.expect((m) => m.type === 'session_update' && m.session.id === v.sessionId);
    await ra.send({ type: 'call', session_id: v.sessionId, call: { kind: 'start', video: false } });
    await L.sdkUi(v.page, 'call-prompt').waitFor();
    await ra.send({ type: 'call', session_id: v.sessionId, call: { kind: 'signal', signal: { channel: 'call', description: { type: 'offer', sdp: 'v=0\r\n' } } } });
    const e = await ra.expect((m) => m.type === 'error');
    assert.equal(e.code, 'wrong_call_state');
    assert.ok(!v.frames.received.some((f) => f.type === 'call' && f.call.kind === 'signal'), 'nothing reached the page');
    await ra.close();
    await endSession(v);
  });
});

describe('full-tab sharing', () => {
  it('is refused when allowRequestFullTab is false (the default)', { timeout: 60000 }, async () => {
    const v = await liveVisitor();
    const ra = await L.rawSocket(browser, server, '/ws/agent', { type: 'hello', protocol_version: 1, secret_key: L.SECRET, name: 'Raw2', external_id: 'e2e-raw2' });
    await ra.expect((m) => m.type === 'welcome');
    await ra.send({ type: 'join_session', session_id: v.sessionId });
    await ra.expect((m) => m.type === 'session_update' && m.session.id === v.sessionId);
    await ra.send({ type: 'call', session_id: v.sessionId, call: { kind: 'share_request', screen: false } });
    const e = await ra.expect((m) => m.type === 'error');
    assert.equal(e.code, 'permission_denied');
    assert.match(e.message, /allowRequestFullTab/);
    assert.ok(!v.frames.received.some((f) => f.type === 'call'));
    await ra.close();
    await endSession(v);
  });

  it('denied by the visitor: fullTabStatus goes authorizing then off', { timeout: 60000 }, async () => {
    const v = await liveVisitor({ allowRequestFullTab: true });
    await agent.getByTestId('share-tab').click();
    await L.waitFor(async () => (await v.page.evaluate(() => window.covisit.state().connection.fullTabStatus)) === 'authorizing', { what: 'authorizing' });
    const prompt = L.sdkUi(v.page, 'share-prompt');
    assert.match(await prompt.textContent(), /Masking cannot apply/);
    assert.ok(!v.frames.sent.some((f) => f.type === 'call'), 'nothing before consent');
    await prompt.getByRole('button', { name: 'Decline' }).click();
    await L.waitFor(async () => (await v.page.evaluate(() => window.covisit.state().connection.fullTabStatus)) === 'off', { what: 'off' });
    assert.equal(await v.page.evaluate(() => window.__pcs.length), 0);
    await endSession(v);
  });

  it('full screen (allowFullScreen): refused by default, then the picked source reaches the console', { timeout: 90000 }, async () => {
    const off = await liveVisitor({ allowRequestFullTab: true });
    const ra = await L.rawSocket(browser, server, '/ws/agent', { type: 'hello', protocol_version: 1, secret_key: L.SECRET, name: 'Raw3', external_id: 'e2e-raw3' });
    await ra.expect((m) => m.type === 'welcome');
    await ra.send({ type: 'join_session', session_id: off.sessionId });
    await ra.expect((m) => m.type === 'session_update' && m.session.id === off.sessionId);
    await ra.send({ type: 'call', session_id: off.sessionId, call: { kind: 'share_request', screen: true } });
    const e = await ra.expect((m) => m.type === 'error');
    assert.equal(e.code, 'permission_denied');
    assert.match(e.message, /allowFullScreen/);
    assert.ok(!off.frames.received.some((f) => f.type === 'call'), 'nothing reached the page');
    await ra.close();
    await endSession(off);

    const v = await liveVisitor({ allowFullScreen: true });
    await agent.getByTestId('share-screen').click();
    const prompt = L.sdkUi(v.page, 'share-prompt');
    assert.match(await prompt.textContent(), /Masking cannot apply/);
    assert.ok(!v.frames.sent.some((f) => f.type === 'call'), 'nothing before consent');
    await prompt.getByRole('button', { name: 'Choose what to share' }).click();
    await L.waitFor(() => agent.evaluate(() => {
      const vid = document.querySelector('[data-testid="share-video"]');
      return vid && vid.videoWidth > 0 && vid.currentTime > 0;
    }), { timeoutMs: 20000, what: 'frames of the picked source at the console' });
    assert.match(await agent.getByTestId('share-label').textContent(), /screen or window/);
    const s = (await L.rest(server, `/api/v1/sessions/${v.sessionId}`)).body;
    assert.ok(s.features_used.includes('full_screen'), JSON.stringify(s.features_used));
    // The agent stops watching.
    await agent.getByTestId('share-stop').click();
    await L.waitFor(() => agent.getByTestId('share-label').isHidden(), { what: 'the console back to the mirror' });
    await L.waitFor(() => v.page.evaluate(() => window.__pcs.every((pc) => pc.connectionState === 'closed')), { what: "the visitor's share connection closed" });
    await endSession(v);
  });

  it('granted: the tab video reaches the console, then the visitor stops it', { timeout: 90000 }, async () => {
    const v = await liveVisitor({ allowRequestFullTab: true });
    await agent.getByTestId('share-tab').click();
    await L.sdkUi(v.page, 'share-prompt').getByRole('button', { name: 'Share this tab' }).click();
    await L.waitFor(async () => (await v.page.evaluate(() => window.covisit.state().connection.fullTabStatus)) === 'active', { timeoutMs: 20000, what: 'active' });
    await L.waitFor(() => agent.evaluate(() => {
      const vid = document.querySelector('[data-testid="share-video"]');
      return vid && vid.videoWidth > 0 && vid.currentTime > 0;
    }), { timeoutMs: 20000, what: 'frames of the tab at the console' });
    assert.match(await agent.getByTestId('share-label').textContent(), /live video of the visitor's tab/);
    assert.ok(await agent.locator('#mirror-sessions').isHidden(), 'the video is shown in place of the mirror');
    const s = (await L.rest(server, `/api/v1/sessions/${v.sessionId}`)).body;
    assert.ok(s.features_used.includes('full_tab'), JSON.stringify(s.features_used));
    await L.sdkUi(v.page, 'share').getByRole('button', { name: 'Stop sharing' }).click();
    await L.waitFor(async () => (await v.page.evaluate(() => window.covisit.state().connection.fullTabStatus)) === 'off', { what: 'off' });
    await L.waitFor(() => agent.getByTestId('share-label').isHidden(), { what: 'the console back to the mirror' });
    await endSession(v);
  });
});

describe('calls: the controls on both sides', () => {
  it('mute, camera and hang-up from the console and the visitor\'s call bar; the previews show the cameras', { timeout: 120000 }, async () => {
    const v = await liveVisitor({ cobrowsingVideoEnabled: 'two_way' });
    await connectCall(v, true);
    await audioBothWays(v);
    await L.waitFor(async () => (await traffic(agent)).in.video > 30 && (await traffic(v.page)).in.video > 30, { timeoutMs: 20000, what: 'video both ways' });
    // The console shows the visitor's camera and its own preview; the page the agent's.
    await L.waitFor(() => agent.evaluate(() => ['call-remote-video', 'call-local-video'].every((id) => {
      const el = document.querySelector(`[data-testid="${id}"]`);
      return el && !el.hidden && el.videoWidth > 0;
    })), { what: "the console's two videos playing" });
    await L.waitFor(() => v.page.evaluate(() => {
      const el = document.querySelector('covisit-ui').shadowRoot.querySelector('[data-covisit="call-video"]');
      return !!el && el.isConnected && el.videoWidth > 0;
    }), { what: "the agent's camera in the visitor's call bar" });

    // The agent mutes: nothing of its microphone is sent, and the page is told.
    await agent.getByTestId('call-mute').click();
    await L.waitFor(async () => !(await sends(agent, 'audio')), { what: "the agent's microphone off its connection" });
    await L.waitFor(() => v.frames.received.some((f) => f.type === 'call' && f.call.kind === 'media' && !f.call.audio), { what: 'the page told of the mute' });
    assert.equal((await agent.getByTestId('call-mute').textContent()).trim(), 'Unmute');
    // ...and unmutes: its audio reaches the visitor again.
    const before = (await traffic(v.page)).in.audio;
    await agent.getByTestId('call-mute').click();
    await L.waitFor(async () => (await traffic(v.page)).in.audio > before + 50, { timeoutMs: 20000, what: "the agent's audio again at the visitor" });

    // The agent's camera off: its preview goes, nothing of it is sent, the page drops the video.
    await agent.getByTestId('call-camera').click();
    await L.waitFor(async () => !(await sends(agent, 'video')), { what: "the agent's camera off its connection" });
    await L.waitFor(() => agent.getByTestId('call-local-video').isHidden(), { what: 'no preview without a camera' });
    await L.waitFor(async () => (await L.sdkUi(v.page, 'call-video').count()) === 0, { what: "the agent's video gone from the call bar" });

    // The visitor mutes from its call bar: the console says so.
    const bar = L.sdkUi(v.page, 'call');
    await bar.getByRole('button', { name: 'Mute', exact: true }).click();
    await L.waitFor(async () => !(await sends(v.page, 'audio')), { what: "the visitor's microphone off its connection" });
    await L.waitFor(async () => /The visitor is muted/.test(await agent.getByTestId('call-status').textContent()), { what: 'the console shows the mute' });
    // ...turns its camera off: the console's remote video goes.
    await bar.getByRole('button', { name: 'Camera off', exact: true }).click();
    await L.waitFor(async () => !(await sends(v.page, 'video')), { what: "the visitor's camera off its connection" });
    await L.waitFor(() => agent.getByTestId('call-remote-video').isHidden(), { what: "the console's remote video hidden" });
    // ...and hangs up.
    await bar.getByRole('button', { name: 'Hang up', exact: true }).click();
    await L.waitFor(async () => (await callEvents(v.page)).some((e) => e.name === 'callEnd'), { what: 'callEnd' });
    assert.deepEqual((await callEvents(v.page)).find((e) => e.name === 'callEnd').detail, { reason: 'hung_up_by_visitor' });
    await L.waitFor(async () => /hung up by visitor/.test(await agent.getByTestId('call-status').textContent()), { what: 'the console told' });
    await L.waitFor(() => agent.evaluate(() => window.__pcs.every((pc) => pc.connectionState === 'closed')), { what: 'the console closed its connection' });
    assert.equal(await L.sdkUi(v.page, 'call').count(), 0, 'the call bar gone');
    await endSession(v);
  });

  it('one question at a time: a share asked while the call rings waits, and Escape declines it', { timeout: 90000 }, async () => {
    const v = await liveVisitor({ allowRequestFullTab: true });
    await agent.getByTestId('call-audio').click();
    await L.sdkUi(v.page, 'call-prompt').waitFor();
    await agent.getByTestId('share-tab').click();
    await L.waitFor(async () => (await fullTab(v.page)) === 'authorizing', { what: 'the share asked' });
    // The call's question stays; the share's waits behind it.
    assert.ok(await L.sdkUi(v.page, 'call-prompt').isVisible(), 'the call prompt is still there');
    assert.equal(await L.sdkUi(v.page, 'share-prompt').count(), 0, 'the share prompt waits');
    await L.sdkUi(v.page, 'call-prompt').getByRole('button', { name: 'Accept' }).click();
    await L.waitFor(async () => (await callEvents(v.page)).some((e) => e.name === 'callStart'), { timeoutMs: 20000, what: 'callStart' });
    const prompt = L.sdkUi(v.page, 'share-prompt');
    await prompt.waitFor();
    // Escape (after Alt+Shift+Y moved the visitor to the prompt) answers its first button.
    await L.waitFor(async () => (await prompt.getAttribute('data-armed')) === 'true', { what: 'the prompt armed' });
    await v.page.keyboard.press('Alt+Shift+KeyY');
    await v.page.keyboard.press('Escape');
    await L.waitFor(async () => (await fullTab(v.page)) === 'off', { what: 'the share declined' });
    assert.equal(await prompt.count(), 0);
    assert.ok(v.frames.sent.some((f) => f.type === 'call' && f.call.kind === 'share_end' && f.call.reason === 'declined'));
    assert.ok(!v.frames.sent.some((f) => f.type === 'call' && f.call.kind === 'share_accept'), 'no share accepted');
    assert.equal(await v.page.evaluate(() => window.__captures.length), 0, 'nothing captured');
    assert.ok(!(await callEvents(v.page)).some((e) => e.name === 'callEnd'), 'the call goes on');
    // A share asked and withdrawn while the call's question is shown never shows.
    await agent.getByTestId('call-hangup').click();
    await L.waitFor(async () => (await callEvents(v.page)).some((e) => e.name === 'callEnd'), { what: 'callEnd' });
    await agent.getByTestId('call-audio').click();
    await L.sdkUi(v.page, 'call-prompt').waitFor();
    await agent.getByTestId('share-tab').click();
    await L.waitFor(async () => (await fullTab(v.page)) === 'authorizing', { what: 'the second share asked' });
    await agent.getByTestId('share-stop').click();
    await L.waitFor(async () => (await fullTab(v.page)) === 'off', { what: 'the share withdrawn' });
    await L.sdkUi(v.page, 'call-prompt').getByRole('button', { name: 'Decline' }).click();
    await L.waitFor(async () => (await callEvents(v.page)).filter((e) => e.name === 'callEnd').length === 2, { what: 'the second call declined' });
    assert.equal(await prompt.count(), 0, 'the withdrawn share never asked');
    await endSession(v);
  });

  it('audioSupported is detected: a browser without WebRTC is offered no call, and a raw start gets call_unsupported', { timeout: 60000 }, async () => {
    const v = await liveVisitor({}, browser, { init: () => { delete window.RTCPeerConnection; } });
    assert.equal(await v.page.evaluate(() => window.covisit.state().connection.audioSupported), false, 'detected, not claimed');
    await L.waitFor(async () => (await agent.getByTestId('call-audio').isHidden()) && (await agent.getByTestId('call-video').isHidden()), { what: 'no call offered' });
    const ra = await L.rawSocket(browser, server, '/ws/agent', { type: 'hello', protocol_version: 1, secret_key: L.SECRET, name: 'Raw4', external_id: 'e2e-raw4' });
    await ra.expect((m) => m.type === 'welcome');
    await ra.send({ type: 'join_session', session_id: v.sessionId });
    await ra.expect((m) => m.type === 'session_update' && m.session.id === v.sessionId);
    await ra.send({ type: 'call', session_id: v.sessionId, call: { kind: 'start', video: false } });
    const e = await ra.expect((m) => m.type === 'error');
    assert.equal(e.code, 'call_unsupported');
    assert.ok(!v.frames.received.some((f) => f.type === 'call'), 'nothing reached the page');
    await ra.close();
    await endSession(v);
  });
});

describe('full-tab sharing: how it ends', () => {
  /** Asks for the tab and lets the share run until the console shows its frames. */
  async function runningShare(v) {
    await agent.getByTestId('share-tab').click();
    await L.sdkUi(v.page, 'share-prompt').getByRole('button', { name: 'Share this tab' }).click();
    await L.waitFor(async () => (await fullTab(v.page)) === 'active', { timeoutMs: 20000, what: 'active' });
    await L.waitFor(() => agent.evaluate(() => {
      const vid = document.querySelector('[data-testid="share-video"]');
      return vid && vid.videoWidth > 0 && vid.currentTime > 0;
    }), { timeoutMs: 20000, what: 'frames of the tab at the console' });
  }
  const captureEnded = (page) => page.evaluate(() => window.__captures.length > 0
    && window.__captures.every((s) => s.getTracks().every((t) => t.readyState === 'ended')));

  it('the ICE servers reach the page only after it allowed the share', { timeout: 90000 }, async () => {
    const v = await liveVisitor({ allowRequestFullTab: true });
    await agent.getByTestId('share-tab').click();
    await L.sdkUi(v.page, 'share-prompt').waitFor();
    const request = v.frames.received.find((f) => f.type === 'call' && f.call.kind === 'share_request');
    assert.ok(request && !('ice_servers' in request.call), JSON.stringify(request));
    await L.sdkUi(v.page, 'share-prompt').getByRole('button', { name: 'Share this tab' }).click();
    await L.waitFor(async () => (await fullTab(v.page)) === 'active', { timeoutMs: 20000, what: 'active' });
    const kinds = v.frames.received.filter((f) => f.type === 'call').map((f) => f.call.kind);
    assert.deepEqual(kinds.slice(0, 2), ['share_request', 'share_start'], kinds.join());
    assert.ok(v.frames.sent.findIndex((f) => f.type === 'call' && f.call.kind === 'share_accept') >= 0);
    await endSession(v);
  });

  it('ending the session stops the share: fullTabStatus off, the capture stopped, the console back to the mirror', { timeout: 90000 }, async () => {
    const v = await liveVisitor({ allowRequestFullTab: true });
    await runningShare(v);
    await agent.getByTestId('end-session').click();
    await L.waitFor(() => captureEnded(v.page), { what: "the visitor's capture stopped" });
    await L.waitFor(() => v.page.evaluate(() => window.__pcs.every((pc) => pc.connectionState === 'closed')), { what: "the visitor's share connection closed" });
    assert.equal(await fullTab(v.page), 'off');
    assert.equal(await L.sdkUi(v.page, 'share').count(), 0, 'no share bar');
    await L.waitFor(() => agent.getByTestId('share-label').isHidden(), { what: 'the console back to the mirror' });
    await v.close();
  });

  it('the agent stops watching: fullTabStatus off and the capture stopped on the page', { timeout: 90000 }, async () => {
    const v = await liveVisitor({ allowRequestFullTab: true });
    await runningShare(v);
    await agent.getByTestId('share-stop').click();
    await L.waitFor(async () => (await fullTab(v.page)) === 'off', { what: 'off' });
    await L.waitFor(() => captureEnded(v.page), { what: "the visitor's capture stopped" });
    await L.waitFor(() => agent.getByTestId('share-label').isHidden(), { what: 'the console back to the mirror' });
    await endSession(v);
  });

  it('a browser that cannot capture says so at once (media_denied), not left asking', { timeout: 60000 }, async () => {
    const v = await liveVisitor({ allowRequestFullTab: true }, browser, { init: () => { delete MediaDevices.prototype.getDisplayMedia; delete navigator.mediaDevices.getDisplayMedia; } });
    await agent.getByTestId('share-tab').click();
    await L.sdkUi(v.page, 'share-prompt').getByRole('button', { name: 'Share this tab' }).click();
    await L.waitFor(async () => (await fullTab(v.page)) === 'off', { what: 'off' });
    assert.ok(v.frames.sent.some((f) => f.type === 'call' && f.call.kind === 'share_end' && f.call.reason === 'media_denied'));
    assert.equal(await v.page.evaluate(() => window.__pcs.length), 0, 'no peer connection');
    await endSession(v);
  });
});

describe('ICE and TURN', () => {
  let iceServer, iceAgent;
  const TURN_SECRET = 'e2e-turn-secret';
  before(async () => {
    iceServer = await L.startServer({ fixtures: true, args: ['--ice-server', 'stun:127.0.0.1:3478', '--ice-server', 'turn:127.0.0.1:3478?transport=udp'], env: { COVISIT_TURN_SECRET: TURN_SECRET } });
    iceAgent = await L.openConsole(browser, iceServer, 'Ivy');
    iceAgent.frames = await L.captureFrames(iceAgent);
    await iceAgent.reload();
    await iceAgent.getByTestId('visitor-search').waitFor({ state: 'visible' });
  }, { timeout: 60000 });
  after(async () => { await iceServer?.stop(); }, { timeout: 30000 });

  it('both sides get the STUN and TURN servers, TURN with coturn REST credentials, only once the visitor accepted', { timeout: 90000 }, async () => {
    const v = await liveVisitor({}, browser, { srv: iceServer, ag: iceAgent });
    await iceAgent.getByTestId('call-audio').click();
    await L.sdkUi(v.page, 'call-prompt').waitFor();
    const request = v.frames.received.find((f) => f.type === 'call' && f.call.kind === 'request');
    assert.ok(request && !JSON.stringify(request).includes('3478'), 'no ICE server before consent');
    await L.sdkUi(v.page, 'call-prompt').getByRole('button', { name: 'Accept' }).click();
    const toVisitor = await L.waitFor(() => v.frames.received.find((f) => f.type === 'call' && f.call.kind === 'start'), { what: "the visitor's start" });
    const toAgent = await L.waitFor(() => iceAgent.frames.received.find((f) => f.type === 'call' && f.call.kind === 'start'), { what: "the agent's start" });
    const now = Date.now() / 1000;
    for (const [side, frame, user] of [['visitor', toVisitor, v.shortId], ['agent', toAgent, 'agent']]) {
      const ice = frame.call.ice_servers;
      assert.deepEqual(ice.map((s) => s.urls), ['stun:127.0.0.1:3478', 'turn:127.0.0.1:3478?transport=udp'], side);
      assert.ok(!('username' in ice[0]) && !('credential' in ice[0]), `${side}: STUN has no credentials`);
      const [expiry, who] = ice[1].username.split(':');
      assert.equal(who, user, `${side}: the username names the side`);
      assert.ok(Number(expiry) > now + 3600 && Number(expiry) < now + 86400, `${side}: time-limited (${expiry})`);
      const expected = createHmac('sha1', TURN_SECRET).update(ice[1].username).digest('base64');
      assert.equal(ice[1].credential, expected, `${side}: HMAC-SHA1 of the username with the secret`);
    }
    const everything = JSON.stringify([v.frames.received, iceAgent.frames.received]);
    assert.ok(!everything.includes(TURN_SECRET), 'the secret never leaves the server');
    await L.endLiveSessions(iceServer, v.shortId);
    await v.close();
  });
});
