// Issue 18 items 2-5 (tests/e2e/fixtures/issue18.html): the remote console (off by
// default: nothing of the page's console crosses the wire; on: the page's messages, an
// uncaught error and failed requests reach the agent, only once the session is active,
// with no query string or credentials in the URLs), the live-chat integration the SDK
// detects, `is_supported: false` for a browser that lacks a capability (removed in the
// page before the SDK loads, WebAssembly included), and agents' ratings of a session.
// Checked on the wire (CDP captures of the visitor's and the agent's sockets) and
// through REST.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as L from './lib.mjs';

let server;
let browser;
let agent;
L.useServerAndConsole((env) => ({ server, browser, agent } = env));

/** A visitor page of the fixture with its frames recorded from the first byte. */
async function visitorPage({ config = {}, widget = null, init = null } = {}) {
  const page = await L.openVisitor(browser);
  if (init) await page.addInitScript(init);
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  const frames = await L.captureFrames(page);
  const q = new URLSearchParams({ config: JSON.stringify(config) });
  if (widget) q.set('widget', widget);
  await page.goto(`${server.url}/fixtures/issue18.html?${q}`);
  return { page, frames, requests };
}

async function welcomed(page) {
  await L.waitFor(async () => (await L.sdkState(page))?.visitor?.short_id, { what: 'the welcome' });
  return (await L.sdkState(page)).visitor.short_id;
}

/** An API agent's socket that requests a session with `shortId` and waits for the prompt. */
async function rawAgent(shortId, name = 'Rae') {
  const ra = await L.rawSocket(browser, server, '/ws/agent', { type: 'hello', protocol_version: 1, secret_key: L.SECRET, name, external_id: `e2e-${name}` });
  await ra.expect((m) => m.type === 'welcome');
  await ra.send({ type: 'request_session', short_id: shortId, found_by: 'search' });
  const sessionId = (await ra.expect((m) => m.type === 'session_update' && m.session.visitor_id === shortId)).session.id;
  return { ra, sessionId };
}

/** Everything the page does to its console, errors and network (`tag` marks the text). */
function pageNoise(page, tag) {
  return page.evaluate(async (t) => {
    console.log(`log-${t}`, { n: 1 });
    console.warn(`warn-${t}`);
    console.error(`error-${t}`);
    setTimeout(() => { throw new Error(`uncaught-${t}`); }, 0);
    Promise.reject(new Error(`rejected-${t}`));
    await fetch(`/missing-${t}?token=QUERY-${t}#frag`).catch(() => {});
    const u = new URL(location.href);
    await fetch(`${u.protocol}//user:PASSWORD-${t}@${u.host}/x`).catch(() => {});
    await new Promise((resolve) => {
      const x = new XMLHttpRequest();
      x.open('POST', `/xhr-missing-${t}?secret=QUERY-${t}`);
      x.onloadend = resolve;
      x.send('body');
    });
  }, tag);
}

/** The console opens the visitor by its route (the visitor list may be folded away). */
async function openInConsole(shortId) {
  await agent.evaluate((id) => { location.hash = `#/visitors/${id}`; }, shortId);
  await L.waitFor(async () => (await agent.locator('#visitor-sub').textContent()).includes(shortId)
    || (await agent.locator('#visitor-nickname').textContent()).includes(shortId), { what: 'the visitor in the console' });
}

async function requestInConsole(shortId) {
  await openInConsole(shortId);
  const button = agent.getByTestId('request-session');
  await L.waitFor(() => button.isEnabled(), { what: 'an enabled Request session button' });
  await button.click();
}

function sentText(frames) {
  return frames.sent.map((f) => (f.raw !== undefined ? f.raw : JSON.stringify(f))).join('\n');
}

describe('remote console', () => {
  it('is off by default: nothing of the page\'s console crosses the wire, and its hooks never load', { timeout: 60000 }, async () => {
    const { page, frames, requests } = await visitorPage();
    const shortId = await welcomed(page);
    const { ra, sessionId } = await rawAgent(shortId);
    await L.sdkUi(page, 'session-prompt').waitFor();
    assert.doesNotMatch(await L.sdkUi(page, 'session-prompt').textContent(), /console/, 'the prompt does not mention a console it does not share');
    await page.evaluate(() => window.Covisit('authorize'));
    await ra.expect((m) => m.type === 'session_update' && m.session.id === sessionId && m.status === 'active');
    await pageNoise(page, 'off');
    // A change after the noise that does cross the wire (the mirror): once the agent has
    // it, anything the noise had sent would have arrived before it on the same socket.
    await page.evaluate(() => { document.getElementById('marker').textContent = 'after-noise-off'; });
    await ra.expect((m) => m.type === 'mirror' && JSON.stringify(m.data).includes('after-noise-off'));
    const sent = sentText(frames);
    assert.ok(!frames.sent.some((f) => f.type === 'console'), 'no console frame was sent');
    for (const t of ['log-off', 'warn-off', 'error-off', 'uncaught-off', 'rejected-off', 'missing-off']) {
      assert.ok(!sent.includes(t), `${t} never crossed the wire`);
    }
    assert.ok(!(await ra.all()).some((m) => m.type === 'console'), 'the agent got no console frame');
    assert.ok(!requests.some((u) => u.includes('covisit-console.js')), 'the console hooks were never fetched');
    await page.evaluate(() => window.Covisit('end'));
    await ra.close();
    await page.context().close();
  });

  it('on: messages, an uncaught error and failed requests reach the agent, only after the session is active, without queries or credentials', { timeout: 60000 }, async () => {
    const { page, frames } = await visitorPage({ config: { allowRemoteConsole: true } });
    const shortId = await welcomed(page);
    // Before any session: recorded nowhere.
    await pageNoise(page, 'before');
    const agentFrames = await L.captureFrames(agent);
    await requestInConsole(shortId);
    const prompt = L.sdkUi(page, 'session-prompt');
    await prompt.waitFor();
    assert.match(await prompt.textContent(), /console messages and failed network requests/, 'the prompt says the console is shared');
    await pageNoise(page, 'authorizing');
    await page.evaluate(() => window.Covisit('authorize'));
    await L.waitForConsoleStatus(agent, 'active');
    // The hooks come with the session; wait until they are in before the noise.
    await L.waitFor(() => page.evaluate(() => !/\[native code\]/.test(String(window.fetch))), { what: 'the console hooks' });
    await pageNoise(page, 'live');
    const got = () => agentFrames.received.filter((m) => m.type === 'console').flatMap((m) => m.entries);
    await L.waitFor(() => {
      const e = got();
      return e.some((x) => x.kind === 'log' && x.text.includes('log-live'))
        && e.some((x) => x.kind === 'exception' && x.text.includes('uncaught-live'))
        && e.some((x) => x.kind === 'network' && x.url?.endsWith('/missing-live') && x.status === 404)
        && e.some((x) => x.kind === 'network' && x.method === 'POST' && x.url?.endsWith('/xhr-missing-live') && x.status >= 400);
    }, { what: 'the page\'s console lines at the agent', timeoutMs: 15000 }).catch((e) => {
      throw new Error(`${e.message}; got ${JSON.stringify(got())}; visitor sent ${JSON.stringify(frames.sent.filter((f) => f.type === 'console'))}`);
    });
    const entries = got();
    assert.ok(entries.some((x) => x.kind === 'warn' && x.text.includes('warn-live')));
    assert.ok(entries.some((x) => x.kind === 'error' && x.text.includes('error-live')));
    assert.ok(entries.some((x) => x.kind === 'rejection' && x.text.includes('rejected-live')));
    const failedCred = entries.find((x) => x.kind === 'network' && x.status === 0);
    assert.ok(failedCred, 'the fetch that could not go out is a network line');
    // Nothing from before the session was active, and no query or credentials, anywhere.
    const all = JSON.stringify(agentFrames.received) + sentText(frames);
    for (const t of ['before', 'authorizing']) assert.ok(!all.includes(`log-${t}`) && !all.includes(`missing-${t}`), `nothing of "${t}" crossed the wire`);
    for (const secret of ['QUERY-', 'PASSWORD-', 'token=', 'secret=', '#frag']) {
      assert.ok(!JSON.stringify(frames.sent.filter((f) => f.type === 'console')).includes(secret), `${secret} is not in a URL sent`);
    }
    for (const x of entries.filter((e) => e.kind === 'network')) assert.doesNotMatch(x.url, /[?#@]/);
    // The console shows it, read-only, as text.
    await L.waitFor(async () => (await agent.getByTestId('console-lines').textContent()).includes('log-live'), { what: 'the console panel' });
    await page.evaluate(() => window.Covisit('end'));
    await L.waitForConsoleStatus(agent, 'ended');
    const sessionId = agentFrames.received.find((m) => m.type === 'session_update' && m.session.visitor_id === shortId).session.id;
    const session = await L.rest(server, `/api/v1/sessions/${sessionId}`);
    assert.ok(session.body.features_used.includes('remote_console'), 'features_used records remote_console');
    // After the end the hooks are gone.
    assert.ok(await page.evaluate(() => /\[native code\]/.test(String(window.fetch))), 'fetch is the page\'s own again');
    await page.context().close();
  });
});

describe('integrations, support, ratings', () => {
  it('detects the live-chat widget from its global: the Visitor\'s integration, and a session requested through it has source integration', { timeout: 60000 }, async () => {
    for (const [widget, name] of [['intercom', 'intercom'], ['crisp', 'crisp'], ['tawk', 'tawk.to'], ['zendesk', 'zendesk'], [null, null]]) {
      const { page } = await visitorPage({ widget });
      const shortId = await welcomed(page);
      const v = await L.rest(server, `/api/v1/visitors/${shortId}`);
      assert.equal(v.body.integration, name, `${widget}: integration`);
      if (widget === 'intercom') {
        const bad = await L.rest(server, `/api/v1/visitors/${shortId}/session_requests`, { method: 'POST', body: { agent: { name: 'Bot', external_id: 'bot' }, integration: 'nope' } });
        assert.equal(bad.status, 400);
        assert.equal(bad.body.error.code, 'invalid_argument');
        const r = await L.rest(server, `/api/v1/visitors/${shortId}/session_requests`, { method: 'POST', body: { agent: { name: 'Bot', external_id: 'bot' }, integration: 'intercom' } });
        assert.equal(r.status, 201);
        const s = await L.rest(server, `/api/v1/sessions/${r.body.session_id}`);
        assert.equal(s.body.source, 'integration');
        await L.endLiveSessions(server, shortId);
      }
      await page.context().close();
    }
  });

  it('a browser without MutationObserver is a Visitor with is_supported: false, and no session can start', { timeout: 60000 }, async () => {
    const { page } = await visitorPage({ init: () => { delete window.MutationObserver; } });
    const shortId = await welcomed(page);
    const v = await L.rest(server, `/api/v1/visitors/${shortId}`);
    assert.equal(v.body.is_supported, false);
    assert.deepEqual(v.body.missing_capabilities, ['MutationObserver']);
    const r = await L.rest(server, `/api/v1/visitors/${shortId}/session_requests`, { method: 'POST', body: { agent: { name: 'Bot', external_id: 'bot' } } });
    assert.equal(r.status, 409);
    assert.equal(r.body.error.code, 'visitor_unsupported');
    assert.match(r.body.error.message, /MutationObserver/);
    assert.equal((await L.sdkState(page)).session.status, 'none', 'the visitor was never asked');
    // The console says why.
    await openInConsole(shortId);
    await L.waitFor(async () => /lacks MutationObserver/.test(await agent.locator('#request-hint').textContent()), { what: 'the console\'s reason' });
    assert.equal(await agent.getByTestId('request-session').isDisabled(), true);
    await page.context().close();
  });

  it('a browser without WebAssembly still reports is_supported: false (the loader says hello), and the page hears `unsupported`', { timeout: 60000 }, async () => {
    const { page } = await visitorPage({ init: () => { delete window.WebAssembly; } });
    await L.waitFor(() => page.evaluate(() => window.covisitErrors.length > 0), { what: 'the error event' });
    assert.equal(await page.evaluate(() => window.covisitErrors[0].code), 'unsupported');
    const shortId = await L.waitFor(() => page.evaluate(() => localStorage.getItem('covisit.short_id')), { what: 'the welcome to the loader' });
    const v = await L.rest(server, `/api/v1/visitors/${shortId}`);
    assert.equal(v.body.is_supported, false);
    assert.deepEqual(v.body.missing_capabilities, ['WebAssembly']);
    assert.equal(v.body.is_online, true);
    const r = await L.rest(server, `/api/v1/visitors/${shortId}/session_requests`, { method: 'POST', body: { agent: { name: 'Bot', external_id: 'bot' } } });
    assert.equal(r.body.error.code, 'visitor_unsupported');
    await page.context().close();
  });

  it('the agent rates an ended session in the console: quality_feedback holds the visitor\'s and the agent\'s, visitor_agent_* the visitor\'s', { timeout: 60000 }, async () => {
    const { page } = await visitorPage();
    const shortId = await welcomed(page);
    const agentFrames = await L.captureFrames(agent);
    await requestInConsole(shortId);
    await L.sdkUi(page, 'session-prompt').waitFor();
    await page.evaluate(() => window.Covisit('authorize'));
    await L.waitForConsoleStatus(agent, 'active');
    await page.evaluate(() => window.Covisit('end'));
    await L.waitForConsoleStatus(agent, 'ended');
    await page.evaluate(() => window.Covisit('rate', { rating: 4, feedback: 'helpful' }));
    await agent.getByTestId('agent-rating').waitFor();
    await agent.locator('input[name="agent-rating"][value="5"]').check();
    await agent.getByTestId('rating-comment').fill('smooth session');
    await agent.getByTestId('rating-submit').click();
    const sessionId = agentFrames.received.find((m) => m.type === 'session_update' && m.session.visitor_id === shortId).session.id;
    const agentId = agentFrames.received.find((m) => m.type === 'session_update' && m.session.id === sessionId).session.agents[0].id;
    await L.waitFor(async () => (await L.rest(server, `/api/v1/sessions/${sessionId}`)).body.quality_feedback.length === 2, { what: 'both ratings stored' });
    const s = (await L.rest(server, `/api/v1/sessions/${sessionId}`)).body;
    const by = Object.fromEntries(s.quality_feedback.map((q) => [q.by, q]));
    assert.deepEqual(by[shortId], { rating: 4, feedback: 'helpful', by: shortId });
    assert.deepEqual(by[agentId], { rating: 5, feedback: 'smooth session', by: agentId });
    assert.equal(s.visitor_agent_rating, 4);
    assert.equal(s.visitor_agent_feedback, 'helpful');
    // A second rating replaces the agent's first; a bad one is a typed error.
    await agent.locator('input[name="agent-rating"][value="3"]').check();
    await agent.getByTestId('rating-comment').fill('');
    await agent.getByTestId('rating-submit').click();
    await L.waitFor(async () => (await L.rest(server, `/api/v1/sessions/${sessionId}`)).body.quality_feedback.find((q) => q.by === agentId).rating === 3, { what: 'the replaced rating' });
    assert.equal((await L.rest(server, `/api/v1/sessions/${sessionId}`)).body.quality_feedback.length, 2);
    const ra = await L.rawSocket(browser, server, '/ws/agent', { type: 'hello', protocol_version: 1, secret_key: L.SECRET, name: 'Other', external_id: 'e2e-other' });
    await ra.expect((m) => m.type === 'welcome');
    await ra.send({ type: 'rate_session', session_id: sessionId, rating: 5, feedback: null });
    assert.equal((await ra.expect((m) => m.type === 'error')).code, 'not_in_session');
    await ra.send({ type: 'rate_session', session_id: sessionId, rating: 9, feedback: null });
    assert.equal((await ra.expect((m) => m.type === 'error')).code, 'invalid_argument');
    await ra.close();
    // The visitor leaves: the server lets the session go from memory, and the console
    // rates it over REST (the socket would answer unknown_session).
    await page.context().close();
    await L.waitFor(async () => (await L.rest(server, `/api/v1/visitors/${shortId}`)).body.is_online === false, { what: 'the visitor offline' });
    await agent.locator('input[name="agent-rating"][value="2"]').check();
    await agent.getByTestId('rating-comment').fill('after the visitor left');
    await agent.getByTestId('rating-submit').click();
    await L.waitFor(async () => {
      const q = (await L.rest(server, `/api/v1/sessions/${sessionId}`)).body.quality_feedback.find((f) => f.by === agentId);
      return q.rating === 2 && q.feedback === 'after the visitor left';
    }, { what: 'the rating stored after the visitor left' });
    assert.equal((await L.rest(server, `/api/v1/sessions/${sessionId}`)).body.quality_feedback.length, 2);
    assert.equal(await agent.getByTestId('console-error').isVisible(), false, 'no error shown');
  });
});
