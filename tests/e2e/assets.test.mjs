// Assets through covisit end to end (issue 15 item 5; docs/MIRROR.md, "Assets through
// covisit"): the agent's mirror loads the page's style sheets, fonts and images only from
// the covisit server. A customer's site runs on a loopback origin of its own (a node HTTP
// server here) with `assetsProxyConfigured: true`; the real server and headless Chromium
// do the rest. What the console's browser asks for is recorded (Playwright's request
// events, the mirror's frame included) and must all be on the covisit server's origin.
//
// By default the server refuses loopback addresses, so the site's own assets come from the
// visitor's page (the SDK's fallback); with the operator's `--asset-proxy-allow-private`
// the server fetches the site's and a loopback "CDN"'s public assets itself, and only what
// it cannot have (an image behind the visitor's login) comes from the page.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import * as L from './lib.mjs';

const FRAME = '.mirror-session:not([hidden]) .mirror-viewport:not([hidden]) iframe[data-testid="mirror-frame"]';

/** A font that ships with a dev dependency (an icon font: its glyphs are wide squares,
 * the fallback font draws them otherwise). */
function findFont(dir = join(L.ROOT, 'node_modules/playwright-core/lib')) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) { const f = findFont(p); if (f) return f; } else if (/^codicon.*\.ttf$/.test(name)) return p;
  }
  return null;
}

/** A solid PNG of `w`×`h` pixels of colour [r, g, b]. */
function png(w, h, [r, g, b]) {
  const crcTable = Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0; });
  const crc = (buf) => { let c = 0xffffffff; for (const x of buf) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0; };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4); ihdr[8] = 8; ihdr[9] = 2;
  const row = Buffer.concat([Buffer.from([0]), Buffer.from(Array.from({ length: w }, () => [r, g, b]).flat())]);
  const raw = Buffer.concat(Array.from({ length: h }, () => row));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

const FONT = readFileSync(findFont() || '/nonexistent');
const SECRET_PNG = png(8, 8, [200, 30, 40]);
const MASKED_PNG = png(8, 8, [0, 0, 0]);
const CDN_PNG = png(4, 4, [20, 160, 60]);

/** A loopback HTTP server: `routes[path](req, res)`; counts requests by path. */
async function site(routes) {
  const hits = new Map();
  const srv = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    hits.set(path, (hits.get(path) || 0) + 1);
    const route = routes[path];
    if (route) route(req, res); else res.writeHead(404).end('not found');
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    origin: `http://127.0.0.1:${srv.address().port}`,
    hits,
    close: () => new Promise((r) => { srv.closeAllConnections?.(); srv.close(() => r()); }),
  };
}

/** The customer's site: its page (the SDK from the covisit server at `covisit`), a font
 * served without CORS, an image only for a signed-in visitor (a cookie; otherwise a
 * redirect to a login page), an image inside a masked element, and a style sheet on the
 * CDN (`cdn`, when given). */
function customerRoutes(covisit, cdn) {
  const page = `<!doctype html><html><head><meta charset="utf-8"><title>shop</title>
<script>window.Covisit = window.Covisit || function () { (Covisit.q = Covisit.q || []).push(arguments); };
Covisit('init', { apiKey: 'pk_demo', server: ${JSON.stringify(covisit)}, assetsProxyConfigured: true });</script>
<script async src="${covisit}/sdk/covisit.js"></script>
${cdn ? `<link rel="stylesheet" href="${cdn}/cdn/site.css">` : ''}
<style>
@font-face { font-family: Probe; src: url(/fonts/probe.ttf) format("truetype"); }
#glyphs { font-family: Probe, monospace; font-size: 32px; display: inline-block; }
#secret { width: 40px; height: 40px; display: block; }
</style></head><body>
<p><span id="glyphs">\u{ea60}\u{ea61}\u{ea62}\u{ea63}</span></p>
<img id="secret" src="/img/secret.png" alt="">
<div class="covisit-mask"><img id="masked" src="/img/masked.png" alt=""></div>
<div id="cdn-bg" style="width: 30px; height: 30px"></div>
</body></html>`;
  return {
    '/page.html': (req, res) => res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Set-Cookie': 'shop_login=yes; Path=/; SameSite=Lax',
      'Cache-Control': 'no-store',
    }).end(page),
    // No Access-Control-Allow-Origin: another origin's page could not use this font.
    '/fonts/probe.ttf': (req, res) => res.writeHead(200, { 'Content-Type': 'font/ttf' }).end(FONT),
    '/img/secret.png': (req, res) => {
      if (/(^|;\s*)shop_login=yes/.test(req.headers.cookie || '')) res.writeHead(200, { 'Content-Type': 'image/png', 'Cache-Control': 'no-store' }).end(SECRET_PNG);
      else res.writeHead(302, { Location: '/login' }).end();
    },
    '/login': (req, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end('<form>sign in</form>'),
    '/img/masked.png': (req, res) => res.writeHead(200, { 'Content-Type': 'image/png' }).end(MASKED_PNG),
  };
}

/** The CDN: a style sheet (no CORS: the page cannot read its rules, so the mirror gets a
 * <link> to it) whose own url() names an image next to it. */
const cdnRoutes = {
  '/cdn/site.css': (req, res) => res.writeHead(200, { 'Content-Type': 'text/css' }).end('#cdn-bg { background-image: url("img/dot.png"); }'),
  '/cdn/img/dot.png': (req, res) => res.writeHead(200, { 'Content-Type': 'image/png' }).end(CDN_PNG),
};

/** Runs `fn(doc, arg)` against the mirror's document. */
function inMirror(agent, fn, arg) {
  return agent.locator(FRAME).evaluate((f, [src, a]) => (0, eval)(src)(f.contentDocument, a), [fn.toString(), arg]);
}

async function mirrorSays(agent, fn, want, what, arg) {
  const w = JSON.stringify(want);
  let last;
  return L.waitFor(async () => { last = await inMirror(agent, fn, arg).catch((e) => e.message); return JSON.stringify(last) === w; }, { timeoutMs: 20000, what: `${what} (want ${w}, last ${JSON.stringify(last)})` });
}

/** A visitor on the customer's page in a live session with `agent`. */
async function liveVisitor(env, agent, url) {
  const page = await L.openVisitor(env.browser);
  await page.goto(url);
  await L.waitFor(() => page.evaluate(() => typeof window.Covisit === 'function' && !window.Covisit.q), { what: 'the SDK to load' });
  const code = await page.evaluate(() => new Promise((r) => window.Covisit('getLookupCode', r)));
  // Its state once the socket is up (the tab's id comes with the welcome).
  const state = await L.waitFor(async () => {
    const st = await L.sdkState(page);
    return st && st.visitor && st.connection ? st : null;
  }, { what: 'the SDK connected' });
  await L.requestByLookupCode(agent, code, state.visitor.short_id);
  await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
  await L.waitForConsoleStatus(agent, 'active');
  await agent.locator(`${FRAME}[data-state="live"]`).waitFor({ timeout: 20000 });
  const sessions = await L.rest(env.server, `/api/v1/sessions?visitor_id=${state.visitor.short_id}`);
  const session = sessions.body.sessions.find((s) => s.status === 'active');
  return { page, shortId: state.visitor.short_id, sessionId: session.id, tab: state.connection.uniqueConnectionId };
}

/** What the console's browser asked for, from now on. */
function recordRequests(agent) {
  const urls = [];
  agent.context().on('request', (r) => urls.push(r.url()));
  return urls;
}

function foreign(server, urls) {
  const own = new URL(server.url).origin;
  return urls.filter((u) => !/^(data|blob|about):/.test(u) && new URL(u).origin !== own);
}

/** The asset endpoint, called from the console page with its sign-in. */
function askProxy(agent, sessionId, tab, url) {
  return agent.evaluate(async ([s, t, u]) => {
    const res = await fetch(`/api/v1/sessions/${encodeURIComponent(s)}/assets?tab=${encodeURIComponent(t)}&url=${encodeURIComponent(u)}`, { cache: 'no-store' });
    const text = await res.text();
    let code = null;
    try { code = JSON.parse(text).error.code; } catch { /* a body */ }
    return { status: res.status, code, type: res.headers.get('content-type') };
  }, [sessionId, tab, url]);
}

describe('assets through covisit, the server refusing loopback (the default)', () => {
  const env = {};
  let shop;
  let cdn;
  before(async () => {
    L.requireBuilt();
    assert.ok(FONT.length > 1000, 'the font fixture (playwright-core codicon) was found');
    env.browser = await L.launchBrowser();
    cdn = await site(cdnRoutes);
    // The CDN is listed by the operator, but it is on a loopback address: refused.
    env.server = await L.startServer({ args: ['--asset-origins', cdn.origin] });
    shop = await site(customerRoutes(env.server.url, null));
    env.agent = await L.openConsole(env.browser, env.server, 'Ada');
  }, { timeout: 60000 });
  after(async () => {
    await env.browser?.close();
    await env.server?.stop();
    await shop?.close();
    await cdn?.close();
  }, { timeout: 30000 });

  it('a font served without CORS renders in the mirror, and an image behind the visitor\'s cookie appears, both sent by the visitor\'s SDK; the console asked no other host', { timeout: 90000 }, async () => {
    const urls = recordRequests(env.agent);
    const { page, shortId, sessionId } = await liveVisitor(env, env.agent, `${shop.origin}/page.html`);
    // The font: loaded in the mirror, and the glyphs as wide as on the visitor's page
    // (the fallback draws them otherwise).
    const visitorWidth = await page.evaluate(async () => { await document.fonts.ready; return document.getElementById('glyphs').getBoundingClientRect().width; });
    const fallbackWidth = await page.evaluate(() => { const s = document.createElement('span'); s.style.cssText = 'font: 32px monospace'; s.textContent = document.getElementById('glyphs').textContent; document.body.append(s); const w = s.getBoundingClientRect().width; s.remove(); return w; });
    assert.notEqual(Math.round(visitorWidth), Math.round(fallbackWidth), 'the font changes the glyphs\' width');
    await mirrorSays(env.agent, (doc) => [...doc.fonts].some((f) => f.family.replace(/"/g, '') === 'Probe' && f.status === 'loaded'), true, 'the font loaded in the mirror');
    await mirrorSays(env.agent, (doc) => Math.round(doc.getElementById('glyphs').getBoundingClientRect().width), Math.round(visitorWidth), 'the glyphs as wide as the visitor\'s');
    // The image behind the cookie, with its pixels.
    await mirrorSays(env.agent, (doc) => doc.getElementById('secret').naturalWidth, 8, 'the cookie-protected image in the mirror');
    const colour = await inMirror(env.agent, (doc) => { const c = doc.createElement('canvas'); c.width = c.height = 1; const x = c.getContext('2d'); x.drawImage(doc.getElementById('secret'), 0, 0); return [...x.getImageData(0, 0, 1, 1).data].slice(0, 3); });
    assert.deepEqual(colour, [200, 30, 40]);
    const src = await inMirror(env.agent, (doc) => doc.getElementById('secret').getAttribute('src'));
    assert.ok(src.startsWith(`${env.server.url}/api/v1/sessions/`), src);
    // What the page sent stays out of the agent's browser cache.
    const cacheControl = await env.agent.evaluate(async (u) => (await fetch(u, { cache: 'no-store' })).headers.get('cache-control'), src);
    assert.equal(cacheControl, 'private, no-store');
    // The visitor's page fetched it (its own cookie), the server never did: loopback.
    assert.ok(shop.hits.get('/img/secret.png') >= 1);
    assert.deepEqual(foreign(env.server, urls), [], 'the console asked only the covisit server');
    // What the page sent is counted in the session's bytes.
    const s = await L.rest(env.server, `/api/v1/sessions/${sessionId}`);
    assert.ok(s.body.visitor_bytes.assets > FONT.length, JSON.stringify(s.body.visitor_bytes));
    assert.ok(s.body.visitor_bytes.mirror > s.body.visitor_bytes.assets);
    await L.endLiveSessions(env.server, shortId);
    await page.context().close();
  });

  it('the asset proxy refuses loopback addresses, origins the account does not allow, masked elements\' resources, and agents outside the session', { timeout: 90000 }, async () => {
    const { page, shortId, sessionId, tab } = await liveVisitor(env, env.agent, `${shop.origin}/page.html`);
    // A CDN the operator listed, but on a loopback address: refused, never asked.
    let r = await askProxy(env.agent, sessionId, tab, `${cdn.origin}/cdn/img/dot.png`);
    assert.deepEqual([r.status, r.code], [403, 'asset_address_refused']);
    assert.equal(cdn.hits.get('/cdn/img/dot.png'), undefined);
    // An origin neither the page's, the account's keys' nor the operator's.
    r = await askProxy(env.agent, sessionId, tab, 'http://127.0.0.9:9/x.png');
    assert.deepEqual([r.status, r.code], [403, 'asset_origin_not_allowed']);
    r = await askProxy(env.agent, sessionId, tab, 'http://169.254.169.254/latest/meta-data');
    assert.deepEqual([r.status, r.code], [403, 'asset_origin_not_allowed']);
    r = await askProxy(env.agent, sessionId, tab, 'file:///etc/passwd');
    assert.deepEqual([r.status, r.code], [403, 'asset_origin_not_allowed']);
    // A masked element's image: not in the mirror, and the page refuses to send it (it
    // never sent that URL); the visitor's browser did not fetch it again for the agent.
    await mirrorSays(env.agent, (doc) => doc.getElementById('masked'), null, 'no masked image in the mirror');
    const before = shop.hits.get('/img/masked.png');
    r = await askProxy(env.agent, sessionId, tab, `${shop.origin}/img/masked.png`);
    assert.deepEqual([r.status, r.code], [502, 'asset_unavailable']);
    assert.equal(shop.hits.get('/img/masked.png'), before);
    // Another agent of the account, not in the session.
    const other = await L.openConsole(env.browser, env.server, 'Bob');
    r = await askProxy(other, sessionId, tab, `${shop.origin}/img/secret.png`);
    assert.deepEqual([r.status, r.code], [403, 'not_in_session']);
    await other.context().close();
    // After the session: nothing (the visitor's page is not asked either).
    await L.endLiveSessions(env.server, shortId);
    await L.waitForConsoleStatus(env.agent, 'ended');
    r = await askProxy(env.agent, sessionId, tab, `${shop.origin}/img/secret.png`);
    assert.equal(r.status, 409);
    assert.equal(r.code, 'wrong_session_state');
    await page.context().close();
  });
});

describe('assets through covisit, the operator allowing private addresses', () => {
  const env = {};
  let shop;
  let cdn;
  before(async () => {
    L.requireBuilt();
    env.browser = await L.launchBrowser();
    cdn = await site(cdnRoutes);
    env.server = await L.startServer({ args: ['--asset-proxy-allow-private', '--asset-origins', cdn.origin] });
    shop = await site(customerRoutes(env.server.url, cdn.origin));
    env.agent = await L.openConsole(env.browser, env.server, 'Cy');
  }, { timeout: 60000 });
  after(async () => {
    await env.browser?.close();
    await env.server?.stop();
    await shop?.close();
    await cdn?.close();
  }, { timeout: 30000 });

  it('the server fetches the CDN\'s style sheet and the image it names itself (rewritten to the proxy); the image behind the cookie still comes from the page', { timeout: 90000 }, async () => {
    const urls = recordRequests(env.agent);
    const { page, shortId } = await liveVisitor(env, env.agent, `${shop.origin}/page.html`);
    // The CDN sheet is a <link> in the mirror, loaded from the proxy; its url() too.
    await mirrorSays(env.agent, (doc) => getComputedStyle(doc.getElementById('cdn-bg')).backgroundImage.includes('/api/v1/sessions/'), true, 'the CDN sheet applied in the mirror');
    await L.waitFor(() => cdn.hits.get('/cdn/img/dot.png') >= 1, { what: 'the server fetching the image the CDN sheet names' });
    const cdnImg = urls.find((u) => u.includes(encodeURIComponent(`${cdn.origin}/cdn/img/dot.png`)));
    assert.ok(cdnImg, `the mirror loaded the sheet's image through the proxy: ${urls.join('\n')}`);
    // The server asked the shop for the image without the visitor's cookie, got the
    // login page (not an image), and the visitor's page sent it.
    await mirrorSays(env.agent, (doc) => doc.getElementById('secret').naturalWidth, 8, 'the cookie-protected image in the mirror');
    assert.ok(shop.hits.get('/login') >= 1, 'the server tried itself first');
    // The font, public on the shop's origin, came from the server this time.
    await mirrorSays(env.agent, (doc) => [...doc.fonts].some((f) => f.family.replace(/"/g, '') === 'Probe' && f.status === 'loaded'), true, 'the font loaded in the mirror');
    assert.deepEqual(foreign(env.server, urls), [], 'the console asked only the covisit server');
    await L.endLiveSessions(env.server, shortId);
    await page.context().close();
  });
});
