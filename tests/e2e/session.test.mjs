// Whole session flows, visitor and agent in separate browser contexts against the real
// server: the demo shop (www/) with the SDK (dist/) by script tag, the
// agent console (www/agent/). Each test is a new visitor (a fresh context); the agent's
// console is signed in once. After each flow the REST objects must match the seed
// field fixture, and the frames the visitor sent before authorizing must carry no page
// content.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as L from './lib.mjs';

/**
 * Frame types a visitor may send before the session is authorized (SPEC.md section 2):
 * connection metadata, and journey tracking's page views (URL, title, referrer,
 * language, viewport: the site's analytics, docs/PROTOCOL.md "track"), never the page's
 * content.
 */
const BEFORE_AUTHORIZATION = new Set(['hello', 'heartbeat', 'focus', 'url', 'expect_disconnect', 'update_visitor', 'track']);

let server;
let browser;
let agent;
L.useServerAndConsole((env) => ({ server, browser, agent } = env));

/** A new visitor on `path`, frames recorded from the first byte; `init` runs first on every page. */
async function visitor(path, init) {
  const page = await L.openVisitor(browser);
  const frames = await L.captureFrames(page);
  if (init) await page.context().addInitScript(init);
  await page.goto(server.url + path);
  return { page, frames };
}

async function readyOnShop(page) {
  const code = await L.shopLookupCode(page);
  const st = await L.sdkState(page);
  assert.equal(st.visitor.lookup_code, code, 'the page shows the code the SDK has');
  return { code, shortId: st.visitor.short_id };
}

function visitorFrames(frames) {
  return frames.sent.filter((f) => String(f._socket).endsWith('/ws/visitor'));
}

/** Asserts nothing but connection metadata left before the visitor answered. */
function assertNoContentBeforeAuthorization(frames, pageTexts) {
  const sent = visitorFrames(frames);
  assert.ok(sent.length > 0 && sent[0].type === 'hello', `the first frame is hello: ${JSON.stringify(sent[0])}`);
  const cut = sent.findIndex((f) => ['authorize', 'deny', 'end'].includes(f.type));
  const before = cut < 0 ? sent : sent.slice(0, cut);
  for (const f of before) {
    assert.ok(BEFORE_AUTHORIZATION.has(f.type), `before authorization the visitor sent a ${f.type} frame: ${JSON.stringify(f)}`);
    const text = JSON.stringify(f);
    for (const t of pageTexts) assert.ok(!text.includes(t), `page content "${t}" left the browser before authorization: ${text}`);
  }
  return before;
}

describe('session flows', () => {
  it('request, default prompt, Allow: both sides active; the visitor ends it with the indicator', { timeout: 60000 }, async () => {
    const { page, frames } = await visitor('/product.html');
    const { code, shortId } = await readyOnShop(page);
    await L.requestByLookupCode(agent, code, shortId);

    const prompt = L.sdkUi(page, 'session-prompt');
    await prompt.waitFor();
    assert.equal(await prompt.getAttribute('role'), 'alertdialog');
    assert.match(await prompt.textContent(), /Dana/);
    await L.waitForConsoleStatus(agent, 'authorizing');
    // The page's agentPrompt (www/covisit-init.js) is shown to the agent.
    await agent.getByTestId('agent-prompt').waitFor();
    assert.match(await agent.getByTestId('agent-prompt').textContent(), /Never ask the customer to read out a password/);
    // Text of the page's body (the title, which journey tracking records, names the
    // product too).
    const pageTexts = ['€249', 'Packed size: 45 × 15 cm'];
    assertNoContentBeforeAuthorization(frames, pageTexts);

    // Keyboard-usable without taking focus from the page: Alt+Shift+Y moves to it.
    const allow = prompt.getByRole('button', { name: 'Allow' });
    assert.equal(await allow.evaluate((b) => b.getRootNode().activeElement), null, 'the prompt did not take focus');
    await page.keyboard.press('Alt+Shift+KeyY');
    assert.equal(await prompt.getByRole('button', { name: 'Deny' }).evaluate((b) => b.getRootNode().activeElement === b), true, 'Alt+Shift+Y focused the prompt');
    await allow.click();

    const indicator = L.sdkUi(page, 'indicator');
    await indicator.waitFor();
    assert.equal(await indicator.getAttribute('role'), 'status');
    assert.match(await indicator.textContent(), /Dana can see this page/);
    await L.waitForConsoleStatus(agent, 'active');
    assert.equal(await prompt.count(), 0, 'the prompt is gone');
    assert.equal((await L.sdkState(page)).session.status, 'active');

    const sent = visitorFrames(frames).map((f) => f.type);
    assert.ok(sent.includes('authorize'), `authorize crossed the wire: ${sent}`);

    await indicator.getByRole('button', { name: 'End screen sharing' }).click();
    await indicator.waitFor({ state: 'detached' });
    await L.waitForConsoleStatus(agent, 'ended');
    assert.equal((await agent.getByTestId('session-disconnect-type').textContent()).trim(), 'client');
    const st = await L.sdkState(page);
    assert.equal(st.session.status, 'ended');
    assert.equal(st.communication.state, 'disconnected');
    assert.equal(st.communication.disconnectType, 'client');
    assert.ok(visitorFrames(frames).some((f) => f.type === 'end'), 'end crossed the wire');

    const [flow] = await L.checkRestObjects(server, shortId);
    assert.equal(flow.session.status, 'ended');
    assert.equal(flow.session.session_authorized, true);
    assert.equal(flow.session.went_live, true);
    assert.equal(flow.session.source, 'lookup code');
    assert.deepEqual(flow.session.agents.map((a) => a.name), ['Dana']);
    const sharer = flow.communications.find((c) => c.cobrowseRole === 'sharer');
    assert.equal(sharer.disconnectType, 'client');
    assert.deepEqual(sharer.segments.map((s) => s.type), ['Alert', 'Interact']);
    await page.context().close();
  });

  it('stop() during a live session ends it for the agent at once (client), not after the grace period', { timeout: 60000 }, async () => {
    const { page } = await visitor('/product.html');
    const { code, shortId } = await readyOnShop(page);
    await L.requestByLookupCode(agent, code, shortId);
    await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
    await L.waitForConsoleStatus(agent, 'active');
    await page.evaluate(() => window.Covisit('stop'));
    await L.sdkUi(page, 'indicator').waitFor({ state: 'detached' });
    // The grace period is 30 s: ending within 5 means the SDK said goodbye.
    await L.waitForConsoleStatus(agent, 'ended', 5000);
    assert.equal((await agent.getByTestId('session-disconnect-type').textContent()).trim(), 'client');
    await L.checkRestObjects(server, shortId);
    await page.context().close();
  });

  it('Deny ends the request with disconnectType client', { timeout: 60000 }, async () => {
    const { page, frames } = await visitor('/');
    const { code, shortId } = await readyOnShop(page);
    await L.requestByLookupCode(agent, code, shortId);
    const prompt = L.sdkUi(page, 'session-prompt');
    await prompt.getByRole('button', { name: 'Deny' }).click();
    await prompt.waitFor({ state: 'detached' });
    await L.waitForConsoleStatus(agent, 'ended');
    assert.equal((await agent.getByTestId('session-disconnect-type').textContent()).trim(), 'client');
    assert.equal(await L.sdkUi(page, 'indicator').count(), 0, 'no indicator after a denial');
    const sent = assertNoContentBeforeAuthorization(frames, ['Summit 40 L backpack', 'Ridge hiking boots']);
    assert.ok(sent.some((f) => f.type === 'hello'));
    assert.ok(visitorFrames(frames).some((f) => f.type === 'deny'), 'deny crossed the wire');
    assert.ok(!visitorFrames(frames).some((f) => f.type === 'authorize'), 'nothing authorized');

    const [flow] = await L.checkRestObjects(server, shortId);
    assert.equal(flow.session.status, 'ended');
    assert.equal(flow.session.session_authorized, false);
    assert.equal(flow.session.went_live, false);
    assert.equal(flow.communications.find((c) => c.cobrowseRole === 'sharer').disconnectType, 'client');
    await page.context().close();
  });

  it('no answer within authorizationTimeoutSeconds: the prompt goes, the session ends with timeout', { timeout: 60000 }, async () => {
    const config = encodeURIComponent(JSON.stringify({ authorizationTimeoutSeconds: 2 }));
    const { page, frames } = await visitor(`/fixtures/script-tag.html?config=${config}`);
    await L.waitFor(() => page.evaluate(() => window.covisitEvents.some((e) => e.name === 'ready')), { what: 'ready' });
    const code = await page.evaluate(() => new Promise((r) => window.Covisit('getLookupCode', r)));
    const shortId = (await L.sdkState(page)).visitor.short_id;
    await L.requestByLookupCode(agent, code, shortId);
    const prompt = L.sdkUi(page, 'session-prompt');
    await prompt.waitFor();
    const shownAt = Date.now();
    await prompt.waitFor({ state: 'detached', timeout: 8000 });
    const shownFor = Date.now() - shownAt;
    assert.ok(shownFor >= 1000, `the prompt stayed about 2 s (${shownFor} ms)`);
    await L.waitForConsoleStatus(agent, 'ended');
    assert.equal((await agent.getByTestId('session-disconnect-type').textContent()).trim(), 'timeout');
    const ends = await page.evaluate(() => window.covisitEvents.filter((e) => e.name === 'sessionEnd').map((e) => e.detail));
    assert.equal(ends.length, 1, JSON.stringify(ends));
    assert.equal(ends[0].disconnectType, 'timeout');
    assertNoContentBeforeAuthorization(frames, ['order 12345']);
    assert.ok(!visitorFrames(frames).some((f) => ['authorize', 'deny', 'end'].includes(f.type)), 'the visitor answered nothing');

    const [flow] = await L.checkRestObjects(server, shortId);
    assert.equal(flow.session.status, 'ended');
    assert.equal(flow.communications.find((c) => c.cobrowseRole === 'sharer').disconnectType, 'timeout');
    await page.context().close();
  });

  it('to the payment page (no SDK) and back: the session continues without a new prompt', { timeout: 60000 }, async () => {
    // Subscribed before the SDK loads on every page of this visitor (the queue stub).
    // CDP reports no frame sent while a page unloads, so the frames handed to the socket
    // are also kept in sessionStorage, which outlives the page.
    const init = () => {
      const send = WebSocket.prototype.send;
      WebSocket.prototype.send = function (data) {
        const sent = JSON.parse(sessionStorage.getItem('e2e.sent') || '[]');
        sent.push(JSON.parse(data));
        sessionStorage.setItem('e2e.sent', JSON.stringify(sent));
        return send.call(this, data);
      };
      window.seen = [];
      window.Covisit = function () { (window.Covisit.q = window.Covisit.q || []).push(arguments); };
      for (const n of ['ready', 'sessionStart', 'sessionContinue', 'sessionEnd']) window.Covisit('on', n, () => window.seen.push(n));
    };
    const { page, frames } = await visitor('/checkout.html', init);
    const { code, shortId } = await readyOnShop(page);
    await L.requestByLookupCode(agent, code, shortId);
    await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
    await L.waitForConsoleStatus(agent, 'active');

    // The shop announces the trip (expectDisconnect, 30 s) and leaves for the provider.
    await page.getByTestId('to-payment').click();
    await page.waitForURL('**/payment.html');
    const expect = visitorFrames(frames).find((f) => f.type === 'expect_disconnect');
    assert.ok(expect, 'expect_disconnect crossed the wire');
    assert.equal(expect.returnTimeSeconds, 30);
    assert.equal(await page.locator('covisit-ui').count(), 0, 'no SDK on the provider page');
    // The agent still has the session: the visitor is expected back.
    await L.waitFor(async () => /between pages|Away/.test(await agent.locator('#detail').textContent()), { what: 'the console showing the visitor away' });
    assert.equal(await L.sessionStatus(agent), 'active');

    await page.getByRole('link', { name: 'Cancel and go back' }).click();
    await page.waitForURL('**/checkout.html');
    const indicator = L.sdkUi(page, 'indicator');
    await indicator.waitFor();
    await L.waitFor(() => page.evaluate(() => window.seen.includes('sessionContinue')), { what: 'sessionContinue' });
    assert.deepEqual(await page.evaluate(() => window.seen), ['ready', 'sessionContinue'], 'continued, not restarted');
    assert.equal(await L.sdkUi(page, 'session-prompt').count(), 0, 'no new prompt');
    assert.equal(await L.sessionStatus(agent), 'active');

    // Plain navigation to another page with the SDK continues too (pagehide announces it).
    await page.goto(server.url + '/account.html');
    await indicator.waitFor();
    await L.waitFor(() => page.evaluate(() => window.seen.includes('sessionContinue')), { what: 'sessionContinue on account.html' });
    assert.equal(await L.sdkUi(page, 'session-prompt').count(), 0, 'no new prompt');
    const handed = await page.evaluate(() => JSON.parse(sessionStorage.getItem('e2e.sent')));
    const announced = handed.filter((f) => f.type === 'expect_disconnect');
    assert.equal(announced.length, 2, `the payment trip and pagehide announced a departure each: ${JSON.stringify(handed)}`);
    assert.equal(announced[0].returnTimeSeconds, 30);
    assert.equal(announced[1].returnTimeSeconds, null, 'pagehide asks for the default return time');

    const [flow] = await L.checkRestObjects(server, shortId);
    assert.equal(flow.session.status, 'active');
    const segments = flow.communications.find((c) => c.cobrowseRole === 'sharer').segments.map((s) => s.type);
    assert.ok(segments.includes('Hold'), `the time away is a Hold segment: ${segments}`);
    assert.equal(segments.at(-1), 'Interact');

    // The agent ends it: the visitor's indicator goes (disconnectType peer).
    await agent.getByTestId('end-session').click();
    await L.waitForConsoleStatus(agent, 'ended');
    await indicator.waitFor({ state: 'detached' });
    assert.equal((await L.sdkState(page)).communication.disconnectType, 'peer');
    const [ended] = await L.checkRestObjects(server, shortId);
    assert.equal(ended.session.status, 'ended');
    await page.context().close();
  });

  // Headless Chromium gives every page focus (document.hasFocus() is true in all), so
  // the test plays the browser's part: the tab the visitor leaves gets `blur`, the one
  // they go to gets `focus`, as when switching tabs.
  async function switchTo(tabs, target) {
    for (const t of tabs) if (t !== target) await t.evaluate(() => window.dispatchEvent(new Event('blur')));
    await target.evaluate(() => window.dispatchEvent(new Event('focus')));
  }

  /** The state in the latest `state` frame the server sent to tab `page` (its frames recorded). */
  function lastState(page) {
    return page.frames.received.filter((f) => f.type === 'state').at(-1)?.state;
  }

  async function twoTabs() {
    const context = await browser.newContext();
    const a = await context.newPage();
    a.frames = await L.captureFrames(a);
    await a.goto(server.url + '/');
    const { code, shortId } = await readyOnShop(a);
    const b = await context.newPage();
    b.frames = await L.captureFrames(b);
    await b.goto(server.url + '/product.html');
    await L.waitFor(async () => (await L.sdkState(b)).visitor.short_id === shortId, { what: 'the second tab as the same visitor' });
    await switchTo([a, b], b); // the new tab took focus
    await switchTo([a, b], a); // the visitor goes back to the first
    // The focus frames are sent at once; the agent asks once the server has taken them: its
    // latest state for each tab (sent to the tab after every change) has the new focus.
    await L.waitFor(() => lastState(a)?.connection?.hasFocus === true && lastState(b)?.connection?.hasFocus === false,
      { what: 'the server to see the first tab focused and the second not' });
    return { context, a, b, code, shortId };
  }

  it('two tabs: the prompt appears in the focused one only', { timeout: 60000 }, async () => {
    const { context, a, b, code, shortId } = await twoTabs();
    await L.requestByLookupCode(agent, code, shortId);
    await L.sdkUi(a, 'session-prompt').waitFor();
    // The server sends the request's new state (its Cobrowsesession, alerting) to every tab
    // after the frames of the same change, a request included: once the other tab's SDK
    // has taken it in, no request came to that tab before it.
    await L.waitFor(async () => (await L.sdkState(b)).communication?.state === 'alerting', { what: 'the request\'s state in the other tab' });
    assert.equal(await L.sdkUi(b, 'session-prompt').count(), 0, 'no prompt in the tab without focus');
    assert.equal((await L.sdkState(b)).session.status, 'none', 'the other tab was not asked');

    await L.sdkUi(a, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
    await L.waitForConsoleStatus(agent, 'active');
    // Both tabs of the visitor show that the agent is there.
    await L.sdkUi(a, 'indicator').waitFor();
    await L.sdkUi(b, 'indicator').waitFor();
    await agent.getByTestId('end-session').click();
    await L.waitForConsoleStatus(agent, 'ended');
    await L.checkRestObjects(server, shortId);
    await context.close();
  });

  it('two tabs: when focus moves while the prompt is open, the prompt moves with it', { timeout: 60000 }, async () => {
    const { context, a, b, code, shortId } = await twoTabs();
    try {
      await L.requestByLookupCode(agent, code, shortId);
      await L.sdkUi(a, 'session-prompt').waitFor();
      await switchTo([a, b], b);
      await L.sdkUi(b, 'session-prompt').waitFor();
      await L.sdkUi(a, 'session-prompt').waitFor({ state: 'detached', timeout: 3000 });
    } finally {
      await L.endLiveSessions(server, shortId);
      await context.close();
    }
  });
});
