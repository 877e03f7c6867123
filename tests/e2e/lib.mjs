// Shared harness of the end-to-end tests (not a test file itself: node --test only
// runs *.test.mjs). Starts the real covisit-server on a free loopback port with a
// temporary database, launches headless Chromium through playwright-core, and holds
// the helpers every flow uses: users and console sign-in, REST with the demo secret key, the seed
// field fixture check, and a CDP capture of the WebSocket frames a page sends.
//
// Everything here is bounded: every wait has a timeout, and the caller kills what it
// started in an `after` hook (stopServer / browser.close) even when a test failed.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync, statSync, cpSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, dirname, extname, resolve, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SERVER_BIN = join(ROOT, 'target/debug/covisit-server');
export const SECRET = 'sk_demo';
export const PUBLIC_KEY = 'pk_demo';

/** Fails early with a clear message when a build step was skipped. */
export function requireBuilt(sdkDir = join(ROOT, 'dist')) {
  assert.ok(existsSync(SERVER_BIN), `${SERVER_BIN} is missing: run cargo build -p covisit-server`);
  assert.ok(
    existsSync(join(sdkDir, 'covisit_wasm_bg.wasm')) && existsSync(join(sdkDir, 'covisit.js')),
    `${sdkDir} holds no SDK build: run bash scripts/build`,
  );
  const bundle = readFileSync(join(sdkDir, 'covisit.js'), 'utf8');
  assert.ok(bundle.includes('startCovisit'), `${sdkDir} was built without the session client`);
}

/**
 * Starts `covisit-server --dev` on 127.0.0.1 (port 0: the server picks a free one and
 * logs it) with a temporary SQLite file. With `fixtures`, the site is a temporary copy
 * of www/ plus tests/e2e/fixtures/ at /fixtures/ (the demo site stays untouched).
 * Resolves with {url, port, proc, stop, log}.
 */
export async function startServer({ www = join(ROOT, 'www'), fixtures = false, sdkDir = join(ROOT, 'dist'), args = [], env: extraEnv = {}, timeoutMs = 15000, bin = SERVER_BIN } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'covisit-e2e-'));
  if (fixtures) {
    cpSync(www, join(dir, 'www'), { recursive: true });
    cpSync(join(ROOT, 'tests/e2e/fixtures'), join(dir, 'www/fixtures'), { recursive: true });
    www = join(dir, 'www');
  }
  const env = { ...process.env, RUST_LOG: 'info', NO_COLOR: '1' };
  for (const k of Object.keys(env)) if (k.startsWith('COVISIT_')) delete env[k];
  Object.assign(env, extraEnv);
  const proc = spawn(bin, ['--dev', '--listen', '127.0.0.1:0', '--database', join(dir, 'covisit.db'),
    '--www', www, '--sdk-dir', sdkDir, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`covisit-server did not start within ${timeoutMs} ms:\n${log.join('')}`)), timeoutMs);
    const onData = (chunk) => {
      const text = chunk.toString();
      log.push(text);
      if (log.length > 2000) log.splice(0, 1000);
      const m = text.match(/listening on (127\.0\.0\.1:\d+)/);
      if (m) { clearTimeout(timer); resolveUrl(`http://${m[1]}`); }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`covisit-server exited (${code}):\n${log.join('')}`)); });
  });
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { url, port: Number(new URL(url).port), proc, stop, log, dir };
}

export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run', '--disable-sync'];

/**
 * A Chromium trace (Browser.stopTracing's buffer), for the benchmarks: `main`, the complete
 * ('X') events of the page's main thread (the thread of the mark named `pageMark`; without
 * one, every renderer's); `mark(name)`, a performance.mark() by name.
 */
export function readTrace(buffer, pageMark) {
  const events = JSON.parse(buffer.toString()).traceEvents;
  const mark = (name) => events.find((e) => e.name === name && e.cat?.includes('blink.user_timing'));
  // The page's main thread: the one its `pageMark` was made on. Other renderers (a spare
  // one Chromium warms up, a page being torn down) have main threads too, and their
  // tasks are not the page's.
  const at = pageMark && mark(pageMark);
  const mains = at
    ? new Set([`${at.pid}:${at.tid}`])
    : new Set(events.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain').map((e) => `${e.pid}:${e.tid}`));
  return { main: events.filter((e) => e.ph === 'X' && mains.has(`${e.pid}:${e.tid}`)), mark };
}

export function launchBrowser() {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS, headless: true, timeout: 30000 });
}

/** GET/POST on the REST API with the demo secret key; resolves with {status, body}. */
export async function rest(server, path, { method = 'GET', body } = {}) {
  const res = await fetch(server.url + path, {
    method,
    headers: { Authorization: `Bearer ${SECRET}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(10000),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON: the assertion below says so */ }
  return { status: res.status, body: json, text };
}

/** Polls `fn` until it returns a truthy value (which it resolves with), or throws. */
export async function waitFor(fn, { timeoutMs = 10000, intervalMs = 100, what = 'condition' } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Waits until the document in the iframe `frame` (a Locator of a same-origin iframe, such as
 * the console's mirror or a replay's stage) has settled: every image in it has loaded or
 * failed, so its load and error events were dispatched, and then two animation frames of
 * the page have passed, so its styles are applied and the loads they name have started.
 * The tests that show a page's content ran nothing look after this, not after a sleep.
 */
export async function settled(frame, { timeoutMs = 10000 } = {}) {
  await waitFor(() => frame.evaluate((f) => Array.from(f.contentDocument.images).every((i) => i.complete || i.loading === 'lazy')),
    { timeoutMs, what: 'every image in the frame to load or fail' });
  await frame.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));
}

/**
 * A barrier for `urls`, the requests a test records of `page`'s context (in the order the
 * browser starts them): the page fetches a URL of its own origin that nothing else asks
 * for, and this resolves once that request is in `urls`. Every request the page started
 * before it is in `urls` by then, so a test that finds none to a foreign host has shown
 * there was none, instead of having slept.
 */
export async function requestBarrier(page, urls) {
  const url = new URL(`/favicon.svg?barrier=${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`, page.url()).href;
  await page.evaluate((u) => { fetch(u, { cache: 'no-store' }).catch(() => {}); }, url);
  await waitFor(() => urls.includes(url), { what: `the barrier request ${url}` });
}

// ----- seed field fixture --------------------------------------------------------------

const FIXTURE = JSON.parse(readFileSync(join(ROOT, 'tests/fixtures/seed_fields.json'), 'utf8'));
/** Extra fields the server documents (server/README.md, "REST"). */
const DOCUMENTED_EXTRAS = { Session: ['status', 'visitor_bytes'], Visitor: ['missing_capabilities'] };

function jsonType(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v; // string, number, boolean, object
}

/**
 * Asserts `value` is a seed `object` of the fixture: every field present with an
 * allowed JSON type (and allowed value), nested parts checked too; no undocumented
 * extra fields.
 */
export function checkSeed(object, value, path = object) {
  const spec = FIXTURE[object];
  assert.ok(spec, `fixture has no object ${object}`);
  assert.equal(jsonType(value), 'object', `${path}: a ${object} is a JSON object, got ${JSON.stringify(value)}`);
  const fields = spec.fields;
  const missing = Object.keys(fields).filter((k) => !(k in value));
  assert.deepEqual(missing, [], `${path}: ${object} lacks seed fields ${missing.join(', ')}`);
  const extra = Object.keys(value).filter((k) => !(k in fields) && !(DOCUMENTED_EXTRAS[object] || []).includes(k));
  assert.deepEqual(extra, [], `${path}: ${object} has undocumented fields ${extra.join(', ')}`);
  for (const [key, allowed] of Object.entries(fields)) {
    const v = value[key];
    assert.ok(allowed.includes(jsonType(v)), `${path}.${key} is ${jsonType(v)} (${JSON.stringify(v)}); the fixture allows ${allowed.join('|')}`);
    const values = spec.values && spec.values[key];
    if (values && typeof v === 'string') assert.ok(values.includes(v), `${path}.${key}: "${v}" is not one of ${values.join(', ')}`);
    const part = spec.parts && spec.parts[key];
    if (part && v && typeof v === 'object') {
      if (Array.isArray(v)) v.forEach((item, i) => checkSeed(part, item, `${path}.${key}[${i}]`));
      else checkSeed(part, v, `${path}.${key}`);
    }
  }
}

/**
 * The REST objects of a visitor's sessions: the list, each session by id and its
 * communications, all checked against the fixture. Resolves with the sessions (by id).
 */
export async function checkRestObjects(server, shortId) {
  const list = await rest(server, `/api/v1/sessions?visitor_id=${encodeURIComponent(shortId)}`);
  assert.equal(list.status, 200, list.text);
  assert.ok(Array.isArray(list.body.sessions), list.text);
  const out = [];
  for (const [i, s] of list.body.sessions.entries()) {
    checkSeed('Session', s, `sessions[${i}]`);
    assert.equal(s.visitor_id, shortId);
    const one = await rest(server, `/api/v1/sessions/${encodeURIComponent(s.id)}`);
    assert.equal(one.status, 200, one.text);
    checkSeed('Session', one.body, `session ${s.id}`);
    const comms = await rest(server, `/api/v1/sessions/${encodeURIComponent(s.id)}/communications`);
    assert.equal(comms.status, 200, comms.text);
    assert.ok(Array.isArray(comms.body) && comms.body.length >= 2, `one communication per participant: ${comms.text}`);
    comms.body.forEach((c, j) => checkSeed('Cobrowsesession', c, `session ${s.id} communications[${j}]`));
    assert.deepEqual(comms.body.map((c) => c.cobrowseRole).sort().slice(0, 1), ['sharer']);
    out.push({ session: one.body, communications: comms.body });
  }
  const visitor = await rest(server, `/api/v1/visitors/${encodeURIComponent(shortId)}`);
  assert.equal(visitor.status, 200, visitor.text);
  checkSeed('Visitor', visitor.body, `visitor ${shortId}`);
  return out;
}

/** Ends (REST, disconnectType system) every session of the visitor that has not ended. */
export async function endLiveSessions(server, shortId) {
  const list = await rest(server, `/api/v1/sessions?visitor_id=${encodeURIComponent(shortId)}`);
  for (const s of list.body?.sessions || []) {
    if (s.status !== 'ended') await rest(server, `/api/v1/sessions/${encodeURIComponent(s.id)}/end`, { method: 'POST' });
  }
}

// ----- pages ---------------------------------------------------------------------------

/** The demo admin `--dev` creates. */
export const DEMO_ADMIN = { email: 'admin@demo.test', password: 'open-the-demo-console' };

/** Signs in over REST: {cookie, csrf, user} (the cookie as a `Cookie` header value). */
export async function signIn(server, email, password) {
  const res = await fetch(`${server.url}/api/v1/auth/sign_in`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email, password }), signal: AbortSignal.timeout(10000),
  });
  const body = await res.json();
  assert.equal(res.status, 200, `sign-in of ${email}: ${JSON.stringify(body)}`);
  const cookie = (res.headers.getSetCookie?.() || [res.headers.get('set-cookie')]).find((c) => c && c.startsWith('covisit_session='));
  return { cookie: cookie.split(';')[0], csrf: body.csrf_token, user: body.user };
}

/** A REST call as a signed-in user ({cookie, csrf}); resolves with {status, body}. */
export async function asUser(server, who, path, { method = 'GET', body } = {}) {
  const headers = { Cookie: who.cookie };
  if (method !== 'GET') headers['X-CSRF-Token'] = who.csrf;
  if (body) headers['Content-Type'] = 'application/json';
  const res = await fetch(server.url + path, { method, headers, body: body ? JSON.stringify(body) : undefined, signal: AbortSignal.timeout(10000) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body: json, text };
}

/**
 * A user of the demo account with `role`, invited by the demo admin and with a
 * password set through the invite link (REST). Resolves with {email, password, user}.
 */
export async function createUser(server, name, role = 'agent') {
  const admin = await signIn(server, DEMO_ADMIN.email, DEMO_ADMIN.password);
  const email = `${name.toLowerCase().replace(/[^a-z0-9]+/g, '.')}.${Math.random().toString(36).slice(2, 7)}@demo.test`;
  const invited = await asUser(server, admin, '/api/v1/users', { method: 'POST', body: { email, name, role } });
  assert.equal(invited.status, 201, invited.text);
  const token = invited.body.invite_url.split('/').pop();
  const password = `${name} signs in with this`;
  const res = await fetch(`${server.url}/api/v1/auth/accept`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token, password }),
  });
  assert.equal(res.status, 200, await res.text());
  return { email, password, user: invited.body.user };
}

/** Signs in to the console page with email and password; resolves once it is in. */
export async function signInConsole(page, email, password) {
  await page.getByTestId('signin-email').fill(email);
  await page.getByTestId('signin-password').fill(password);
  await page.getByTestId('signin-submit').click();
  await page.getByTestId('visitor-search').waitFor({ state: 'visible' });
}

/**
 * Opens the agent console in its own context (`contextOptions`: Playwright's) as a new
 * user `name` with `role` (an agent unless said otherwise) and signs in. Resolves with
 * the page (`page.user`).
 */
export async function openConsole(browser, server, name = 'Dana', role = 'agent', contextOptions = {}) {
  const who = await createUser(server, name, role);
  const context = await browser.newContext(contextOptions);
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  await page.goto(`${server.url}/agent/`);
  await signInConsole(page, who.email, who.password);
  page.user = who;
  return page;
}

/** A fresh visitor context (own storage: a new visitor). */
export async function openVisitor(browser, url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  page.errors = errors;
  if (url) await page.goto(url);
  return page;
}

/** The visitor's lookup code as the demo shop shows it ("Show my support code"). */
export async function shopLookupCode(page) {
  await page.getByTestId('show-lookup-code').click();
  const out = page.getByTestId('lookup-code');
  await waitFor(async () => /^\d{4}$/.test((await out.textContent()).trim()), { what: 'the lookup code on the shop page' });
  return (await out.textContent()).trim();
}

/** The SDK state through the script-tag API. */
export function sdkState(page) {
  return page.evaluate(() => new Promise((r) => window.Covisit('getState', r)));
}

/** Agent: search by lookup code, open the row, request a session. */
export async function requestByLookupCode(consolePage, code, shortId) {
  await consolePage.getByTestId('visitor-search').fill(code);
  const row = consolePage.locator(`[data-testid="visitor-row"][data-lookup-code="${code}"]`);
  await row.waitFor({ state: 'visible' });
  const id = await row.getAttribute('data-short-id');
  if (shortId) assert.equal(id, shortId);
  // The list re-sorts as visitors change: a click can land where the row was a moment
  // before. Clicked again until the console shows that visitor (at most three times).
  const shown = () => consolePage.evaluate(() => decodeURIComponent(location.hash));
  for (let i = 0; i < 3 && (await shown()) !== `#/visitors/${id}`; i++) {
    await row.click();
    await waitFor(async () => (await shown()) === `#/visitors/${id}`, { timeoutMs: 3000, what: `the console showing ${id}` }).catch(() => {});
  }
  assert.equal(await shown(), `#/visitors/${id}`, 'the console shows the visitor');
  const button = consolePage.getByTestId('request-session');
  await waitFor(async () => (await button.isVisible()) && (await button.isEnabled()), { what: 'a visible, enabled Request session button' });
  await button.click();
}

export function sessionStatus(consolePage) {
  return consolePage.getByTestId('session-status').textContent().then((t) => t.trim());
}

export async function waitForConsoleStatus(consolePage, status, timeoutMs = 10000) {
  await waitFor(async () => (await sessionStatus(consolePage)) === status, { timeoutMs, what: `console session status "${status}"` });
}

/** The default UI in the SDK's shadow root (playwright pierces open shadow roots). */
export function sdkUi(page, which) {
  return page.locator(`covisit-ui [data-covisit="${which}"]`);
}

/**
 * Records the WebSocket frames a page sends and receives through CDP
 * (Network.webSocketFrameSent / Received). Returns {sent, received, urls}.
 */
export async function captureFrames(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const rec = { sent: [], received: [], urls: new Map() };
  cdp.on('Network.webSocketCreated', (e) => rec.urls.set(e.requestId, e.url));
  const parse = (e) => {
    try { return { ...JSON.parse(e.response.payloadData), _socket: rec.urls.get(e.requestId) }; } catch { return { type: '<not json>', raw: e.response.payloadData }; }
  };
  cdp.on('Network.webSocketFrameSent', (e) => rec.sent.push(parse(e)));
  cdp.on('Network.webSocketFrameReceived', (e) => rec.received.push(parse(e)));
  return rec;
}

/** The node ids of the latest snapshot, by `id` attribute, from mirror frames. */
export function nodeIds(msgs) {
  let ids = {};
  for (const m of msgs) {
    if (m.type !== 'mirror') continue;
    for (const r of m.data) {
      if (r[0] === 'S') ids = {};
      if (r[0] !== 'N') continue;
      r.slice(3).forEach((t, i) => { if (t[2] && typeof t[2] === 'object' && t[2].id) ids[t[2].id] = r[1] + i; });
    }
  }
  return ids;
}

/**
 * A raw WebSocket to the server, opened in a page of its own (node 20 has no WebSocket),
 * that sends `hello` first. {send, expect(pred), all, close}.
 */
export async function rawSocket(browser, server, path, hello) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/favicon.svg`);
  await page.evaluate(([url, first]) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    window.ws = ws;
    window.msgs = [];
    ws.onmessage = (e) => window.msgs.push(JSON.parse(e.data));
    ws.onopen = () => { ws.send(JSON.stringify(first)); resolve(); };
    ws.onerror = () => reject(new Error('socket failed'));
  }), [server.url.replace('http', 'ws') + path, hello]);
  let seen = 0;
  return {
    send: (m) => page.evaluate((x) => window.ws.send(JSON.stringify(x)), m),
    all: () => page.evaluate(() => window.msgs),
    /** The next message (after those already expected) matching `pred`. */
    expect: (pred) => waitFor(async () => {
      const msgs = await page.evaluate(() => window.msgs);
      for (let i = seen; i < msgs.length; i++) {
        if (pred(msgs[i])) { seen = i + 1; return msgs[i]; }
      }
      return null;
    }, { what: `a frame matching ${pred}` }),
    close: () => context.close(),
  };
}

// ----- static files --------------------------------------------------------------------

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css', '.ts': 'text/plain',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.webp': 'image/webp', '.woff2': 'font/woff2' };

/** A tiny loopback static server for `root`. Resolves with {url, close}. */
export function serveStatic(root) {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    let file = join(root, path);
    if (!file.startsWith(root)) { res.writeHead(403).end(); return; }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file)) { res.writeHead(404).end('not found'); return; }
    res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream', 'Cache-Control': 'no-store' });
    res.end(readFileSync(file));
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((c) => { server.closeAllConnections?.(); server.close(() => c()); }),
  })));
}

/**
 * The set-up most test files share: before their tests, the real server (with the
 * fixture pages), headless Chromium and an agent console signed in as `name`, handed to
 * `assign({server, browser, agent})`; after them, all of it stopped.
 */
export function useServerAndConsole(assign, { name = 'Dana', role = 'agent' } = {}) {
  useServerAndBrowser(async (env) => {
    env.agent = await openConsole(env.browser, env.server, name, role);
    assign(env);
  });
}

/**
 * Starts a server (with the fixtures) and a browser before the tests of the file or
 * suite it is called in, hands them to `assign({server, browser})` (it may be async);
 * after them, both stopped.
 */
export function useServerAndBrowser(assign) {
  const env = {};
  before(async () => {
    requireBuilt();
    env.server = await startServer({ fixtures: true });
    env.browser = await launchBrowser();
    await assign(env);
  }, { timeout: 60000 });
  after(async () => {
    await env.browser?.close();
    await env.server?.stop();
  }, { timeout: 30000 });
}
