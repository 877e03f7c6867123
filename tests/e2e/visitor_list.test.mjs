// The console's visitor list against the real server, end to end in Chromium: a console
// that signs in while more visitors are online than one `visitors` page holds (50) lists
// them all, and their navigations, which the server sends other consoles together in
// `visitor_updates` frames, reach the rows.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as L from './lib.mjs';

const VISITORS = 120;

describe('the visitor list', () => {
  let server;
  let browser;
  L.useServerAndBrowser((env) => ({ server, browser } = env));

  it('lists every online visitor across the hello\'s pages, and navigations batched in visitor_updates reach the rows', { timeout: 90000 }, async () => {
    // The visitors: raw sockets of one page (each says hello like an SDK tab).
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/favicon.svg`);
    const shortIds = await page.evaluate(([url, pk, n]) => Promise.all(Array.from({ length: n }, (_, i) => new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      (window.sockets ||= [])[i] = ws;
      ws.onopen = () => ws.send(JSON.stringify({
        type: 'hello', protocol_version: 1, api_key: pk, short_id: null, config: {},
        connection: { uniqueConnectionId: null, currentUrl: `http://127.0.0.1/start/${i}`, screenWidth: 800, screenHeight: 600, audioSupported: false, hasFocus: true, userAgent: 'list-test' },
      }));
      ws.onmessage = (e) => { const m = JSON.parse(e.data); if (m.type === 'welcome') resolve(m.short_id); };
      ws.onerror = () => reject(new Error('socket failed'));
    }))), [server.url.replace('http', 'ws') + '/ws/visitor', L.PUBLIC_KEY, VISITORS]);
    assert.equal(new Set(shortIds).size, VISITORS);

    // A console signing in now gets them in three `visitors` pages.
    const agent = await L.openConsole(browser, server, 'Lena');
    const ids = () => agent.locator('[data-testid="visitor-row"]').evaluateAll((rows) => rows.map((r) => r.dataset.shortId));
    await L.waitFor(async () => (await ids()).length >= VISITORS, { what: `${VISITORS} rows` });
    assert.deepEqual(new Set(await ids()), new Set(shortIds), 'every visitor listed once');

    // Ten of them navigate: past the 5 s a navigation alone is held back, their rows
    // show the new address.
    await page.evaluate(() => window.sockets.slice(0, 10).forEach((ws, i) => ws.send(JSON.stringify({ type: 'url', currentUrl: `http://127.0.0.1/next/${i}` }))));
    const urlOf = (id) => agent.locator(`[data-testid="visitor-row"][data-short-id="${id}"] .row-url`).getAttribute('title');
    await L.waitFor(async () => {
      const urls = await Promise.all(shortIds.slice(0, 10).map(urlOf));
      return urls.every((u, i) => u === `http://127.0.0.1/next/${i}`);
    }, { timeoutMs: 15000, what: 'the new addresses in the rows' });
    assert.equal(await urlOf(shortIds[10]), 'http://127.0.0.1/start/10', 'the others unchanged');
    await page.evaluate(() => window.sockets.forEach((ws) => ws.close()));
    await context.close();
    await agent.context().close();
  });
});
