// Session recordings (issue 18), end to end: the real server with `--record-sessions`
// and a short retention, the built SDK on the demo shop, the agent console and headless
// Chromium. A recorded session with typing in masked and unmasked fields, navigation,
// remote control and a note; then the console's replay, the downloaded player offline in
// a fresh context, `video_status` through its values up to `expired`, the audit trail,
// an admin's deletion and a visitor's erasure; and hostile records (stored, and forged
// into a downloaded file) that must not run.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as L from './lib.mjs';

/** 0.0006 days: recordings expire 52 s after their session ended (the sweep looks every ~5 s). */
const RETENTION_DAYS = '0.0006';
const SENTINELS = ['PW-SENTINEL-51413', '4111SENTINEL9911'];
const VISIBLE = 'Visible Name 7C3';
const AGENT_TYPED = 'agent.typed@example.test';

let server;
let browser;
let agent;
let admin;
const temp = mkdtempSync(join(tmpdir(), 'covisit-rec-'));

before(async () => {
  L.requireBuilt();
  server = await L.startServer({ fixtures: true, args: ['--record-sessions', '--recording-retention-days', RETENTION_DAYS] });
  browser = await L.launchBrowser();
  agent = await L.openConsole(browser, server, 'Dana', 'agent');
  admin = await L.signIn(server, L.DEMO_ADMIN.email, L.DEMO_ADMIN.password);
}, { timeout: 60000 });

after(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(temp, { recursive: true, force: true });
}, { timeout: 30000 });

function mirrorFrame() {
  return agent.frameLocator('.mirror-session:not([hidden]) .mirror-viewport:not([hidden]) iframe[data-testid="mirror-frame"]');
}

async function session(id) {
  const r = await L.rest(server, `/api/v1/sessions/${id}`);
  assert.equal(r.status, 200, r.text);
  L.checkSeed('Session', r.body, `session ${id}`);
  return r.body;
}

async function waitStatus(id, status, timeoutMs = 15000) {
  return L.waitFor(async () => {
    const s = await session(id);
    return s.video_status === status && s;
  }, { timeoutMs, intervalMs: 250, what: `video_status ${status}` });
}

/** A visitor on `path` of the demo shop in a session the agent requested and the visitor allowed. */
async function liveVisitor(path) {
  const page = await L.openVisitor(browser);
  await page.goto(server.url + path);
  await L.waitFor(() => page.evaluate(() => typeof window.Covisit === 'function' && !window.Covisit.q), { what: 'the SDK to load' });
  const code = await page.evaluate(() => new Promise((r) => window.Covisit('getLookupCode', r)));
  const shortId = (await L.sdkState(page)).visitor.short_id;
  await L.requestByLookupCode(agent, code, shortId);
  const prompt = L.sdkUi(page, 'session-prompt');
  await prompt.waitFor();
  const text = await prompt.textContent();
  await prompt.getByRole('button', { name: 'Allow' }).click();
  await L.waitForConsoleStatus(agent, 'active');
  await agent.locator('.mirror-session:not([hidden]) .mirror-viewport:not([hidden]) iframe[data-state="live"]').waitFor({ timeout: 15000 });
  const sessionId = (await L.sdkState(page)).session.id;
  return { page, shortId, sessionId, promptText: text };
}

/** The replay's mirror document (console or player page). */
const REPLAY = '[data-testid="replay-stage"] .mirror-viewport:not([hidden]) iframe[data-testid="mirror-frame"]';

function replayFrame(page) {
  return page.frameLocator(REPLAY);
}

/** Seeks the replay of `page` to just before the first event of `kind` whose label matches. */
async function seekBefore(page, kind, label) {
  const ev = page.locator(`[data-testid="replay-event"][data-kind="${kind}"]`, { hasText: label }).first();
  const t = Number(await ev.getAttribute('data-t'));
  await page.getByTestId('replay-seek').evaluate((el, v) => {
    el.value = String(v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, Math.max(0, t - 1));
}

/** What a replay shows of the account page once the typing is in. */
async function assertAccountPage(page) {
  const f = replayFrame(page);
  await L.waitFor(async () => (await f.locator('#acct-name').count()) === 1 && (await f.locator('#acct-name').inputValue()) === VISIBLE,
    { what: 'the unmasked name in the replay' });
  const pw = await f.locator('#acct-password').inputValue();
  assert.ok(pw.length > 0 && /^[•*]+$/.test(pw), `the password shows as bullets, not the text: ${JSON.stringify(pw)}`);
  const card = await f.locator('#acct-card').inputValue();
  assert.ok(!card.includes('SENTINEL'), `the card number is masked: ${JSON.stringify(card)}`);
  // The masked element is a grey box of its size, with nothing inside.
  const box = f.locator('span.covisit-mask');
  assert.notEqual(await box.getAttribute('data-covisit-box'), null, 'the masked element is a box');
  assert.equal((await box.textContent()).trim(), '');
  assert.equal(await f.locator('#acct-email').inputValue(), AGENT_TYPED, 'what the agent typed in control');
}

describe('recordings', () => {
  it('records a session server-side; replays it in the console; downloads a file that plays offline without masked text; video_status runs through to expired', { timeout: 240000 }, async () => {
    const { page, shortId, sessionId, promptText } = await liveVisitor('/account.html');
    assert.match(promptText, /This session is recorded\./, 'the prompt says the session is recorded');
    assert.equal((await session(sessionId)).video_status, 'recording');

    // The visitor types: an unmasked field, a password and a card number (masked).
    await page.locator('#acct-name').fill(VISIBLE);
    await page.locator('#acct-password').pressSequentially(SENTINELS[0], { delay: 5 });
    await page.locator('#acct-card').pressSequentially(SENTINELS[1], { delay: 5 });
    await L.waitFor(async () => (await mirrorFrame().locator('#acct-name').inputValue()) === VISIBLE, { what: 'the name in the live mirror' });

    // Remote control: the agent types into the email field from the mirror.
    await agent.getByTestId('request-control').click();
    await L.sdkUi(page, 'control-prompt').getByRole('button', { name: 'Allow control' }).click();
    await agent.locator('.mirror-session:not([hidden]) .mirror-viewport[data-control="true"]').waitFor();
    await mirrorFrame().locator('#acct-email').pressSequentially(AGENT_TYPED, { delay: 0 });
    await L.waitFor(async () => (await page.locator('#acct-email').inputValue()) === AGENT_TYPED, { what: 'the agent\'s typing on the page' });
    await L.waitFor(async () => (await mirrorFrame().locator('#acct-email').inputValue()) === AGENT_TYPED, { what: 'the echo in the mirror' });
    await agent.getByTestId('release-control').click();
    // A note, and a navigation to another page of the shop.
    const note = await L.rest(server, `/api/v1/sessions/${sessionId}/notes`, { method: 'POST', body: { text: 'customer updated the profile' } });
    assert.equal(note.status, 201, note.text);
    await page.locator('nav a[href="/product.html"]').first().click();
    await page.waitForURL('**/product.html');
    await L.waitFor(async () => (await mirrorFrame().locator('#acct-name').count()) === 0 && (await mirrorFrame().locator('h1').count()) > 0,
      { what: 'the product page in the mirror' });
    // The agent ends it from the console (its end is on the timeline).
    await agent.getByTestId('end-session').click();
    await L.waitForConsoleStatus(agent, 'ended');

    // pending (finalising) or already ready, then ready with both links.
    const afterEnd = await session(sessionId);
    assert.ok(['pending', 'ready'].includes(afterEnd.video_status), afterEnd.video_status);
    const ready = await waitStatus(sessionId, 'ready');
    assert.equal(ready.public_video_url, `${server.url}/agent/#/sessions/${sessionId}/replay`);
    assert.match(ready.secret_video_url, new RegExp(`^${server.url}/api/v1/recordings/${sessionId}/download\\?expires=\\d+&sig=[0-9a-f]{64}$`));

    // The console's replay (the Session's public_video_url).
    await agent.goto(ready.public_video_url);
    await agent.getByTestId('replay-view').waitFor();
    await agent.getByTestId('replay-event').first().waitFor();
    const labels = await agent.getByTestId('replay-event').allTextContents();
    for (const want of [/allowed the session/, /Control granted/, /released control/, /Note: customer updated the profile/, /Page: \/product\.html/, /session ended/]) {
      assert.ok(labels.some((l) => want.test(l)), `the timeline has ${want}: ${labels.join(' | ')}`);
    }
    await seekBefore(agent, 'navigation', '/product.html');
    await assertAccountPage(agent);
    assert.equal(await replayFrame(agent).locator('script').count(), 0);
    // Play at 8×, skipping idle stretches: it reaches the product page and stops at the end.
    await agent.getByTestId('replay-speed').selectOption('8');
    await agent.getByTestId('replay-play').click();
    await L.waitFor(async () => (await agent.getByTestId('replay').getAttribute('data-playing')) === 'false', { timeoutMs: 30000, what: 'the replay to play to its end' });
    assert.match(await agent.getByTestId('replay-time').textContent(), /^(\d+:\d\d) \/ \1$/);
    await L.waitFor(async () => (await replayFrame(agent).locator('#acct-name').count()) === 0, { what: 'the product page at the end' });

    // The download: one file, no masked text in it, plays offline in a fresh context.
    const res = await fetch(ready.secret_video_url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-disposition'), /attachment; filename="covisit-recording-/);
    const html = await res.text();
    for (const s of SENTINELS) assert.ok(!html.includes(s), `the downloaded file holds no ${s}`);
    assert.ok(html.includes(VISIBLE), 'the unmasked text is in it');
    const file = join(temp, 'recording.html');
    writeFileSync(file, html);
    const offline = await browser.newContext({ offline: true });
    const requests = [];
    offline.on('request', (r) => { if (!/^(file|data|blob|about):/.test(r.url())) requests.push(r.url()); });
    const player = await offline.newPage();
    const errors = [];
    player.on('pageerror', (e) => errors.push(e.message));
    await player.goto(`file://${file}`);
    await player.getByTestId('replay-event').first().waitFor();
    await seekBefore(player, 'navigation', '/product.html');
    await assertAccountPage(player);
    assert.deepEqual(requests, [], 'the player loads nothing from the network');
    assert.deepEqual(errors, []);
    await offline.close();

    // Links: a forged signature is refused, and every read is audited.
    const forged = await fetch(ready.secret_video_url.replace(/sig=([0-9a-f])/, (m, c) => `sig=${c === '0' ? '1' : '0'}`));
    assert.equal(forged.status, 403);
    assert.equal((await forged.json()).error.code, 'recording_link_invalid');
    for (const action of ['recording.read', 'recording.downloaded']) {
      const audit = await L.rest(server, `/api/v1/audit?action=${action}`);
      assert.equal(audit.status, 200, audit.text);
      assert.ok(audit.body.entries.some((e) => e.target === sessionId), `${action} audited: ${audit.text}`);
    }

    // Retention: expired after it, its records gone.
    const expired = await waitStatus(sessionId, 'expired', 120000);
    assert.equal(expired.public_video_url, null);
    assert.equal(expired.secret_video_url, null);
    const gone = await L.rest(server, `/api/v1/sessions/${sessionId}/recording`);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.code, 'recording_not_available');
    const late = await fetch(ready.secret_video_url);
    assert.equal(late.status, 404);
    await page.context().close();
  });

  it('an admin deletes a recording, and erasing the visitor removes it; an unrecorded account says not_available', { timeout: 120000 }, async () => {
    const a = await liveVisitor('/account.html');
    await a.page.locator('#acct-name').fill('Deleted later');
    await L.endLiveSessions(server, a.shortId);
    await waitStatus(a.sessionId, 'ready');
    const del = await L.asUser(server, admin, `/api/v1/sessions/${a.sessionId}/recording`, { method: 'DELETE' });
    assert.equal(del.status, 200, del.text);
    assert.equal((await session(a.sessionId)).video_status, 'removed');
    const audit = await L.rest(server, '/api/v1/audit?action=recording.deleted');
    assert.ok(audit.body.entries.some((e) => e.target === a.sessionId), audit.text);
    await a.page.context().close();

    const b = await liveVisitor('/account.html');
    await b.page.locator('#acct-name').fill('Erased later');
    await L.endLiveSessions(server, b.shortId);
    const ready = await waitStatus(b.sessionId, 'ready');
    const erase = await L.rest(server, `/api/v1/visitors/${b.shortId}`, { method: 'DELETE' });
    assert.equal(erase.status, 200, erase.text);
    const after = await session(b.sessionId);
    assert.equal(after.video_status, 'removed');
    assert.equal(after.secret_video_url, null);
    assert.equal((await fetch(ready.secret_video_url)).status, 404, 'its link downloads nothing');
    await b.page.context().close();

    // The admin turns recording off for the account: the next session is not recorded.
    const off = await L.asUser(server, admin, '/api/v1/account', { method: 'PATCH', body: { record_sessions: false } });
    assert.equal(off.status, 200, off.text);
    const c = await liveVisitor('/account.html');
    assert.doesNotMatch(c.promptText, /recorded/);
    await L.endLiveSessions(server, c.shortId);
    assert.equal((await session(c.sessionId)).video_status, 'not_available');
    await c.page.context().close();
    const on = await L.asUser(server, admin, '/api/v1/account', { method: 'PATCH', body: { record_sessions: true } });
    assert.equal(on.status, 200, on.text);
  });

  it('hostile records, stored through a visitor socket or forged into a downloaded file, do not run in the replay', { timeout: 120000 }, async () => {
    // A raw visitor socket in a recorded session sends records with script, handlers and
    // javascript: URLs (the server checks only their shape).
    const visitor = await L.rawSocket(browser, server, '/ws/visitor', {
      type: 'hello', protocol_version: 1, api_key: L.PUBLIC_KEY, short_id: null, visitor_secret: null,
      connection: { currentUrl: `${server.url}/hostile`, hasFocus: true, userAgent: 'test' }, config: {},
    });
    const welcome = await visitor.expect((m) => m.type === 'welcome');
    await agent.goto(`${server.url}/agent/`);
    await agent.getByTestId('visitor-search').waitFor();
    await L.requestByLookupCode(agent, welcome.lookup_code, welcome.short_id);
    const request = await visitor.expect((m) => m.type === 'session_request');
    assert.equal(request.recorded, true);
    await visitor.send({ type: 'authorize' });
    await visitor.expect((m) => m.type === 'session_start');
    const js = 'javascript:top.__pwned=(top.__pwned||0)+1';
    await visitor.send({ type: 'mirror', data: [
      ['S', 1, 'https://shop.example/', 800, 600, 1, ['html', '', '']],
      ['N', 1, 0, [1, 'html', {}], [1, 'body', { onload: 'top.__pwned=1' }],
        [1, 'img', { src: 'x', onerror: 'top.__pwned=2', id: 'img' }],
        [2, 'a', { href: js, id: 'link', onclick: 'top.__pwned=3' }, ], [1, 0, 'a link'],
        [4, 'script', { id: 'scr' }], [1, 0, 'top.__pwned=4'],
        [6, 'iframe', { srcdoc: '<script>top.__pwned=5<\/script>', id: 'frame' }],
        [7, 'form', { action: js, id: 'form' }],
        [8, 'svg', { onload: 'top.__pwned=6', id: 'svg' }],
        [9, 'object', { data: js }],
        [10, 'meta', { 'http-equiv': 'refresh', content: `0;url=${js}` }],
        [11, 'div', { id: 'text' }], [1, 0, '</script><script>top.__pwned=7</script><!--']],
      ['E'],
    ] });
    await visitor.send({ type: 'mirror', data: [['A', 4, { href: js, onmouseover: 'top.__pwned=8' }]] });
    // The server takes a socket's frames in order: its answer to a later, malformed one says
    // the frames before it were taken.
    await visitor.send({ type: 'mirror', data: 'not an array' });
    assert.equal((await visitor.expect((m) => m.type === 'error')).code, 'invalid_mirror_frame');
    const sessions = await L.rest(server, `/api/v1/sessions?visitor_id=${welcome.short_id}`);
    const sessionId = sessions.body.sessions[0].id;
    await L.endLiveSessions(server, welcome.short_id);
    const ready = await waitStatus(sessionId, 'ready');
    const stored = await L.rest(server, `/api/v1/sessions/${sessionId}/recording`);
    assert.ok(stored.body.records.some((r) => r[1] === 'm'), `the frames are recorded: ${stored.text.slice(0, 2000)} ${JSON.stringify(await visitor.all())}`);

    const dialogs = [];
    agent.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss(); });
    await agent.goto(ready.public_video_url);
    await agent.getByTestId('replay-event').first().waitFor();
    await agent.getByTestId('replay-seek').evaluate((el) => { el.value = el.max; el.dispatchEvent(new Event('input', { bubbles: true })); });
    const f = replayFrame(agent);
    await L.waitFor(async () => (await f.locator('#text').count()) === 1, { what: 'the hostile page in the replay' });
    await f.locator('#link').hover({ force: true }).catch(() => {});
    await f.locator('#link').click({ force: true }).catch(() => {});
    await L.settled(agent.locator(REPLAY)); // images fail, their events fire
    const checkFrame = async (frame) => {
      assert.equal(await frame.locator('script').count(), 0, 'no script element');
      assert.equal(await frame.locator('#text').textContent(), '</script><script>top.__pwned=7</script><!--', 'the text stays text');
      for (const sel of ['body', '#img', '#link', '#svg', '#form']) {
        const attrs = await frame.locator(sel).evaluate((el) => el.getAttributeNames());
        assert.ok(!attrs.some((n) => n.startsWith('on')), `${sel} has no handler: ${attrs}`);
      }
      assert.ok(!String(await frame.locator('#link').getAttribute('href')).startsWith('javascript:'));
      assert.equal(await frame.locator('#frame').getAttribute('srcdoc'), null);
      assert.equal(await frame.locator('object, meta[http-equiv]').count(), 0);
    };
    await checkFrame(f);
    assert.equal(await agent.evaluate(() => window.__pwned), undefined, 'nothing ran in the console');
    assert.deepEqual(dialogs, []);

    // The downloaded file, played offline as it is, and forged: hostile JSON records in
    // its data, and raw markup that ends the data element and adds a script and handlers.
    const html = await (await fetch(ready.secret_video_url)).text();
    const start = html.indexOf('<script type="application/json" id="covisit-recording">');
    const end = html.indexOf('</script>', start);
    assert.ok(start > 0 && end > start);
    const open = html.slice(0, start) + '<script type="application/json" id="covisit-recording">';
    const data = html.slice(open.length, end);
    const variants = {
      as_downloaded: html,
      raw_markup: `${open}${data}</script><script>top.__pwned=9</script><img src=x onerror="top.__pwned=10"><svg onload="top.__pwned=11"></svg><script type="application/json">${html.slice(end)}`,
      hostile_json: `${open}${JSON.stringify({ session_id: 's', records: [[1, 'm', 'tab', [['S', 1, 'javascript:top.__pwned=12', 800, 600, 1, 0], ['N', 1, 0, [1, 'html', {}], [1, 'body', { onload: 'top.__pwned=13' }], [1, 'script', {}], [1, 0, 'top.__pwned=14'], [3, 'a', { href: js, id: 'link' }], [1, 0, 'x']], ['E']]], [2, 'e', 'session.ended', 'x', 'ok']] }).replace(/</g, '\\u003c')}${html.slice(end)}`,
    };
    for (const [name, text] of Object.entries(variants)) {
      const file = join(temp, `${name}.html`);
      writeFileSync(file, text);
      const ctx = await browser.newContext({ offline: true });
      const p = await ctx.newPage();
      const seen = [];
      p.on('dialog', (d) => { seen.push(d.message()); d.dismiss(); });
      await p.goto(`file://${file}`);
      await p.waitForLoadState('load');
      if (name !== 'raw_markup') {
        await p.getByTestId('replay-event').first().waitFor();
        await p.getByTestId('replay-seek').evaluate((el) => { el.value = el.max; el.dispatchEvent(new Event('input', { bubbles: true })); });
        const pf = replayFrame(p);
        await L.waitFor(async () => (await pf.locator('#link').count()) === 1, { what: `the ${name} replay` });
        assert.equal(await pf.locator('script').count(), 0);
        assert.ok(!String(await pf.locator('#link').getAttribute('href')).startsWith('javascript:'));
        if (name === 'as_downloaded') await checkFrame(pf);
        await L.settled(p.locator(REPLAY));
      }
      // After 'load' the file's own images have failed (their events fired) and its scripts
      // would have run; two animation frames more for anything they queued.
      await p.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));
      assert.equal(await p.evaluate(() => window.__pwned), undefined, `nothing ran in the ${name} file`);
      assert.deepEqual(seen, []);
      await ctx.close();
    }
    await visitor.close();
  });
});
