// Loading the SDK the ways integrators do (SPEC.md section 3): the script tag with its
// command queue, `import { start }` as an ES module (same origin and from another
// origin), a page under a strict Content-Security-Policy, and config errors.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as L from './lib.mjs';

let server;
let browser;
let fixtures; // the fixture pages on a second loopback origin

before(async () => {
  L.requireBuilt();
  server = await L.startServer({ fixtures: true });
  browser = await L.launchBrowser();
  fixtures = await L.serveStatic(join(L.ROOT, 'tests/e2e/fixtures'));
}, { timeout: 60000 });

after(async () => {
  await browser?.close();
  await fixtures?.close();
  await server?.stop();
}, { timeout: 30000 });

async function onlineVisitorIds() {
  const r = await L.rest(server, '/api/v1/visitors?online=true');
  assert.equal(r.status, 200, r.text);
  return r.body.visitors.map((v) => v.short_id);
}

describe('loading', () => {
  it('script tag on the demo shop: ready, state and lookup code through the queue', { timeout: 30000 }, async () => {
    const page = await L.openVisitor(browser, server.url + '/');
    const status = page.getByTestId('sdk-status');
    await L.waitFor(async () => /covisit 0\.1\.0: connected · no session/.test(await status.textContent()), { what: 'the shop status "connected"' });
    assert.equal(await status.getAttribute('data-state'), 'ready');
    const code = await L.shopLookupCode(page);
    const st = await L.sdkState(page);
    assert.equal(st.visitor.lookup_code, code);
    assert.equal(st.session.status, 'none');
    assert.equal(st.connection.status, 'active');
    L.checkSeed('Connection', st.connection, 'state().connection');
    assert.ok((await onlineVisitorIds()).includes(st.visitor.short_id), 'the server lists the visitor online');
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  it('script tag: handlers queued before the SDK loaded hear `ready`', { timeout: 30000 }, async () => {
    const page = await L.openVisitor(browser, server.url + '/fixtures/script-tag.html');
    const ready = await L.waitFor(() => page.evaluate(() => window.covisitEvents.find((e) => e.name === 'ready')), { what: 'the ready event' });
    const st = await L.sdkState(page);
    assert.equal(ready.detail.shortId, st.visitor.short_id);
    assert.match(ready.detail.uniqueConnectionId, /\S/);
    const version = await page.evaluate(() => new Promise((r) => window.Covisit('getVersion', r)));
    assert.equal(version, '0.1.0');
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  it('ES module: start() resolves with the SDK object; stop() takes it all away', { timeout: 30000 }, async () => {
    const page = await L.openVisitor(browser, server.url + '/fixtures/esm.html');
    await L.waitFor(async () => (await page.textContent('#status')).startsWith('ready '), { what: 'start() to resolve' });
    const { shortId, code, version, connection } = await page.evaluate(async () => ({
      shortId: window.covisit.state().visitor.short_id,
      code: await window.covisit.lookupCode(),
      version: window.covisitVersion,
      connection: window.covisit.state().connection,
    }));
    assert.match(code, /^\d{4}$/);
    assert.equal(version, '0.1.0');
    assert.equal(connection.status, 'active');
    assert.ok((await onlineVisitorIds()).includes(shortId));

    // With a prompt on screen, stop() removes the UI and goes offline.
    const agent = await L.openConsole(browser, server, 'Sam');
    await L.requestByLookupCode(agent, code, shortId);
    await L.sdkUi(page, 'session-prompt').waitFor();
    await page.evaluate(() => window.covisit.stop());
    assert.equal(await page.locator('covisit-ui').count(), 0, 'no covisit-ui element after stop()');
    await L.waitFor(async () => !(await onlineVisitorIds()).includes(shortId), { what: 'the visitor to go offline' });
    const thrown = await page.evaluate(() => { try { window.covisit.authorize(); return null; } catch (e) { return e.code; } });
    assert.equal(thrown, 'stopped');
    await L.endLiveSessions(server, shortId);
    await agent.context().close();
    await page.context().close();
  });

  it('ES module imported from another origin (CORS on /sdk)', { timeout: 30000 }, async () => {
    const q = new URLSearchParams({ sdk: `${server.url}/sdk/index.js`, server: server.url });
    const page = await L.openVisitor(browser, `${fixtures.url}/esm.html?${q}`);
    await L.waitFor(async () => (await page.textContent('#status')).startsWith('ready '), { what: 'start() to resolve cross-origin' });
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });

  it('a bad config is rejected with an Error and a stable code', { timeout: 30000 }, async () => {
    for (const [config, code] of [
      [{ allowRemoteType: 'yes' }, 'config_wrong_type'],
      [{ allowRemoteTypo: true }, 'config_unknown_key'],
      [{ apiKey: null }, 'config_wrong_type'],
    ]) {
      const page = await L.openVisitor(browser, `${server.url}/fixtures/esm.html?config=${encodeURIComponent(JSON.stringify(config))}`);
      const error = await L.waitFor(() => page.evaluate(() => window.covisitStartError), { what: `start() to reject ${JSON.stringify(config)}` });
      assert.equal(error.code, code, JSON.stringify(config));
      assert.match(error.message, /\S/);
      await page.context().close();
    }
    // The script tag reports it on the console.
    const page = await L.openVisitor(browser);
    const logged = [];
    page.on('console', (m) => { if (m.type() === 'error') logged.push(m.text()); });
    await page.goto(`${server.url}/fixtures/script-tag.html?config=${encodeURIComponent(JSON.stringify({ server: 42 }))}`);
    await L.waitFor(() => logged.some((t) => t.includes('config_wrong_type')), { what: 'the console error' });
    await page.context().close();
  });

  it('strict CSP page (script-src \'self\' \'wasm-unsafe-eval\'): loads, prompts, runs a session', { timeout: 60000 }, async () => {
    const page = await L.openVisitor(browser);
    await page.addInitScript(() => {
      window.violations = [];
      document.addEventListener('securitypolicyviolation', (e) => window.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    await page.goto(server.url + '/csp.html');
    const status = page.getByTestId('sdk-status');
    await L.waitFor(async () => /connected/.test(await status.textContent()), { what: 'the CSP page status "connected"' });
    const code = await L.shopLookupCode(page);
    const shortId = (await L.sdkState(page)).visitor.short_id;

    const agent = await L.openConsole(browser, server, 'Kim');
    await L.requestByLookupCode(agent, code, shortId);
    const prompt = L.sdkUi(page, 'session-prompt');
    await prompt.waitFor();
    // The shadow root's own stylesheet applies under the policy: the prompt is a fixed panel.
    assert.equal(await prompt.evaluate((p) => getComputedStyle(p).position), 'fixed');
    await prompt.getByRole('button', { name: 'Allow' }).click();
    await L.sdkUi(page, 'indicator').waitFor();
    await L.waitForConsoleStatus(agent, 'active');
    await agent.getByTestId('end-session').click();
    await L.sdkUi(page, 'indicator').waitFor({ state: 'detached' });
    assert.equal((await L.sdkState(page)).communication.disconnectType, 'peer');
    assert.deepEqual(await page.evaluate(() => window.violations), [], 'no CSP violation');
    assert.deepEqual(page.errors, []);
    await L.checkRestObjects(server, shortId);
    await agent.context().close();
    await page.context().close();
  });
});
