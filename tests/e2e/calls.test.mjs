// Calls and full-tab sharing (issue 17), end to end: the real server, the agent console
// and a visitor page (fixtures/esm.html: `window.covisit` is the SDK object) in headless
// Chromium with fake camera and microphone. Media directions are checked with the peer
// connections' own getStats() on both sides (a spy records each RTCPeerConnection the
// page makes; the connections themselves are the browser's); what crosses the wire is
// read from the sockets (CDP).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import * as L from './lib.mjs';

// The last flag stands in for the visitor's pick in the screen / window picker
// (allowFullScreen): Chromium picks the tab of that title, the fixture page.
const MEDIA_ARGS = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
  '--auto-accept-this-tab-capture', '--autoplay-policy=no-user-gesture-required',
  '--auto-select-tab-capture-source-by-title=covisit e2e: ES module'];

let server, browser, denyBrowser, agent;

/** Records every RTCPeerConnection a page makes (window.__pcs). */
const SPY = () => {
  window.__pcs = [];
  window.__gum = 0;
  const Original = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Original {
    constructor(...args) { super(...args); window.__pcs.push(this); }
  };
  const md = navigator.mediaDevices;
  if (md) {
    const gum = md.getUserMedia.bind(md);
    md.getUserMedia = (c) => { window.__gum++; return gum(c); };
  }
};

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

/** A visitor (ES module fixture, `config`) in an active session with the console. */
async function liveVisitor(config = {}, b = browser) {
  const context = await b.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e));
  await page.addInitScript(SPY);
  const frames = await L.captureFrames(page);
  await page.goto(`${server.url}/fixtures/esm.html?config=${encodeURIComponent(JSON.stringify(config))}`);
  await L.waitFor(() => page.evaluate(() => !!window.covisit), { what: 'the SDK object' });
  await page.evaluate(() => {
    window.callEvents = [];
    for (const n of ['callStart', 'callEnd']) window.covisit.on(n, (d) => window.callEvents.push({ name: n, detail: d }));
  });
  const state = await page.evaluate(() => window.covisit.state());
  const code = await page.evaluate(() => window.covisit.lookupCode());
  await L.requestByLookupCode(agent, code, state.visitor.short_id);
  await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
  await L.waitForConsoleStatus(agent, 'active');
  await agent.getByTestId('call-panel').waitFor({ state: 'visible' });
  const sessionId = await L.waitFor(() => page.evaluate(() => window.covisit.state().session.id), { what: 'the session id' });
  return { page, frames, shortId: state.visitor.short_id, sessionId, close: () => context.close() };
}

/** The visitor's call events so far. */
const callEvents = (page) => page.evaluate(() => window.callEvents);

/** Agent clicks Call / Video call; the visitor accepts in the SDK's prompt; both connect. */
async function connectCall(v, video) {
  await agent.getByTestId(video ? 'call-video' : 'call-audio').click();
  const prompt = L.sdkUi(v.page, 'call-prompt');
  await prompt.waitFor();
  await prompt.getByRole('button', { name: 'Accept' }).click();
  await L.waitFor(async () => (await callEvents(v.page)).some((e) => e.name === 'callStart'), { timeoutMs: 20000, what: 'callStart' });
  await L.waitFor(async () => /On a call/.test(await agent.getByTestId('call-status').textContent()), { what: 'the console on a call' });
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
    assert.match(s.formatted_call_length, /^\d\d:\d\d$/);
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
      if (toAgent || toVisitor) {
        const s = (await L.rest(server, `/api/v1/sessions/${v.sessionId}`)).body;
        assert.ok(s.features_used.includes('video_call'), JSON.stringify(s.features_used));
      }
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
    const err = await v.page.evaluate(() => window.covisit.setCamera(true).then(() => null, (e) => e.code));
    assert.equal(err, 'media_not_allowed');
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
