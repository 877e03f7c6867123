// Consent and masking against hostile timing and hostile pages (tests/e2e/fixtures/
// consent.html, assets-host.html): a prompt is answered only by a deliberate act of the
// visitor, never by keys meant for the page; the support-code shortcut never fires
// during copy and paste; content is never written out before the mask that hides it,
// whatever the order of the page's changes; a field that is or was a password stays
// masked; and the agent's console contacts no host but the covisit server, whatever the
// page (or a forged frame) names. Every check is made on what crosses the wire (CDP
// captures of the visitor's and the agent's sockets, requests of the console's context).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as L from './lib.mjs';

let server;
let browser;
let agent;
L.useServerAndConsole((env) => ({ server, browser, agent } = env));

const SENTINEL = 'SECRET-4c1d';
const TEXT = 'the quick brown fox jumps over the lazy dog\nand keeps typing, space after space\n';

/** A visitor page at `path` with its socket frames recorded from the first byte. */
async function visitorPage(path) {
  const page = await L.openVisitor(browser);
  const frames = await L.captureFrames(page);
  await page.goto(server.url + path);
  await L.waitFor(() => page.evaluate(() => typeof window.Covisit === 'function' && !window.Covisit.q), { what: 'the SDK to load' });
  await L.waitFor(async () => (await L.sdkState(page)).visitor?.short_id, { what: 'the welcome' });
  const shortId = (await L.sdkState(page)).visitor.short_id;
  return { page, frames, shortId };
}

/** An agent socket (as a console would open it) that requests a session with `shortId`. */
async function rawAgent(shortId, name = 'Remy') {
  const ra = await L.rawSocket(browser, server, '/ws/agent', { type: 'hello', protocol_version: 1, secret_key: L.SECRET, name, external_id: `e2e-${name}` });
  await ra.expect((m) => m.type === 'welcome');
  await ra.send({ type: 'request_session', short_id: shortId, found_by: 'search' });
  const sessionId = (await ra.expect((m) => m.type === 'session_update' && m.session.visitor_id === shortId)).session.id;
  return { ra, sessionId };
}

/** Every text frame a capture saw in direction `which`, as raw text. */
function raw(rec, which) {
  return rec[which].map((f) => (f.raw !== undefined ? f.raw : JSON.stringify(f)));
}

async function allow(page) {
  await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
}

async function activeElementId(page) {
  return page.evaluate(() => document.activeElement && document.activeElement.id);
}

describe('prompts answer only to the visitor', () => {
  it('keys typed before and while the session and control prompts appear neither answer them nor get lost', { timeout: 90000 }, async () => {
    const { page, frames, shortId } = await visitorPage('/fixtures/consent.html');
    await page.locator('#message').focus();
    // Typing starts before the request and goes on while the prompt appears.
    const typing = page.keyboard.type(TEXT, { delay: 20 });
    await L.waitFor(async () => (await page.locator('#message').inputValue()).length > 0, { what: 'the typing to start' });
    const { ra, sessionId } = await rawAgent(shortId);
    await L.sdkUi(page, 'session-prompt').waitFor();
    await typing;
    await page.keyboard.press('Space');
    await page.keyboard.press('Enter');
    assert.equal(await page.locator('#message').inputValue(), `${TEXT} \n`, 'every key reached the field');
    assert.equal(await activeElementId(page), 'message', 'the prompt took no focus');
    assert.equal((await L.sdkState(page)).session.status, 'authorizing', 'typing did not answer the prompt');
    assert.ok(!raw(frames, 'sent').some((f) => /"type":"(authorize|deny)"/.test(f)), 'no answer crossed the wire');
    assert.equal(await L.sdkUi(page, 'session-prompt').count(), 1, 'the prompt is still there');
    // Announced to assistive technology instead.
    await L.waitFor(async () => /Allow screen sharing/.test(await page.locator('covisit-ui [role="status"]').first().textContent()), { what: 'the live announcement' });

    await allow(page);
    await ra.expect((m) => m.type === 'session_update' && m.status === 'active');

    // The control prompt: a sentence typed across its appearance grants nothing.
    await page.locator('#name').focus();
    const sentence = page.keyboard.type('typing a sentence with spaces and more spaces', { delay: 20 });
    await L.waitFor(async () => (await page.locator('#name').inputValue()).length > 0, { what: 'the typing to start' });
    await ra.send({ type: 'request_control', session_id: sessionId });
    await L.sdkUi(page, 'control-prompt').waitFor();
    await sentence;
    await page.keyboard.press('Enter');
    assert.equal(await page.locator('#name').inputValue(), 'typing a sentence with spaces and more spaces');
    assert.equal(await activeElementId(page), 'name');
    assert.ok(!raw(frames, 'sent').some((f) => f.includes('"type":"control_grant"')), 'control was not granted by typing');
    const msgs = await ra.all();
    assert.ok(!msgs.some((m) => m.type === 'session_update' && m.control?.state === 'granted'), 'the agent never got control');
    await L.sdkUi(page, 'control-prompt').getByRole('button', { name: 'Deny' }).click();
    await ra.expect((m) => m.type === 'session_update' && m.control?.state === 'none' && m.control?.reason === 'denied');
    await L.endLiveSessions(server, shortId);
    await ra.close();
    await page.context().close();
  });

  it('a click that lands as the prompt appears, a key held from before, and a script click are ignored; Alt+Shift+Y and a later click answer', { timeout: 90000 }, async () => {
    const { page, frames, shortId } = await visitorPage('/fixtures/consent.html');
    await page.locator('#name').focus();
    // A key that went down before the prompt appeared.
    await page.keyboard.down('KeyQ');
    const { ra, sessionId } = await rawAgent(shortId);
    const prompt = L.sdkUi(page, 'session-prompt');
    await prompt.waitFor();
    const allowButton = prompt.getByRole('button', { name: 'Allow' });
    const box = await allowButton.boundingBox();
    // A click right where the button appeared, at once (the visitor meant the page).
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    // Long after it appeared, but with the old key still held. The wait is what is tested:
    // the buttons arm ARM_MS (700 ms, src/web/glue.js) after the prompt appears unless a key
    // held from before is still down, so time has to pass beyond that first.
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(await allowButton.getAttribute('aria-disabled'), 'true', 'the buttons wait while the old key is held');
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    // A script of the page clicking the button (no user gesture).
    await page.evaluate(() => document.querySelector('covisit-ui').shadowRoot.querySelector('[data-covisit="session-prompt"] button.primary').click());
    assert.equal((await L.sdkState(page)).session.status, 'authorizing');
    assert.ok(!raw(frames, 'sent').some((f) => f.includes('"type":"authorize"')));
    await page.keyboard.up('KeyQ');
    await L.waitFor(async () => (await allowButton.getAttribute('aria-disabled')) === null, { what: 'the buttons to arm' });

    // Deliberate: Alt+Shift+Y moves to the prompt, Enter answers; focus comes back.
    await page.keyboard.press('Alt+Shift+KeyY');
    assert.equal(await prompt.getByRole('button', { name: 'Deny' }).evaluate((b) => b.getRootNode().activeElement === b), true);
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await ra.expect((m) => m.type === 'session_update' && m.status === 'active');
    assert.equal(await activeElementId(page), 'name', 'focus went back to the field');
    assert.equal(await page.locator('#name').inputValue(), 'q', 'the held key typed once, into the field');
    await L.endLiveSessions(server, shortId);
    await ra.close();
    await page.context().close();
    void sessionId;
  });

  it('the rating prompt (a later prompt) follows the same rule', { timeout: 60000 }, async () => {
    const config = encodeURIComponent(JSON.stringify({ enableSessionRating: true }));
    const { page, frames, shortId } = await visitorPage(`/fixtures/consent.html?config=${config}`);
    const { ra } = await rawAgent(shortId);
    await allow(page);
    await ra.expect((m) => m.type === 'session_update' && m.status === 'active');
    await page.locator('#message').focus();
    const typing = page.keyboard.type(TEXT, { delay: 20 });
    await L.waitFor(async () => (await page.locator('#message').inputValue()).length > 0, { what: 'the typing to start' });
    await L.endLiveSessions(server, shortId);
    const rating = L.sdkUi(page, 'rating');
    await rating.waitFor();
    await typing;
    await page.keyboard.press('Enter');
    assert.equal(await page.locator('#message').inputValue(), `${TEXT}\n`);
    assert.equal(await activeElementId(page), 'message');
    assert.equal(await rating.count(), 1, 'the rating prompt stays until the visitor answers it');
    assert.ok(!raw(frames, 'sent').some((f) => f.includes('"type":"rate"')), 'no rating was sent by typing');
    await rating.getByRole('button', { name: '4 of 5' }).click();
    await rating.getByRole('button', { name: 'Send' }).click();
    await L.waitFor(() => raw(frames, 'sent').some((f) => f.includes('"type":"rate"') && f.includes('"rating":4')), { what: 'the rating' });
    await ra.close();
    await page.context().close();
  });

  it('Ctrl+A/C/V never shows the support code; five lone Ctrl presses do, without taking focus', { timeout: 60000 }, async () => {
    const { page } = await visitorPage('/fixtures/consent.html');
    await page.locator('#message').focus();
    await page.keyboard.type('copy me');
    for (let i = 0; i < 3; i++) {
      for (const k of ['a', 'c', 'v']) await page.keyboard.press(`Control+${k}`);
    }
    await page.keyboard.type(' typed on');
    assert.equal(await L.sdkUi(page, 'lookup-code').count(), 0, 'no support code during copy and paste');
    assert.equal(await activeElementId(page), 'message');
    // Ctrl held while clicking (open in a new tab) is no lone press either.
    const title = await page.locator('#title').boundingBox();
    for (let i = 0; i < 5; i++) {
      await page.keyboard.down('Control');
      await page.mouse.click(title.x + 5, title.y + 5);
      await page.keyboard.up('Control');
    }
    assert.equal(await L.sdkUi(page, 'lookup-code').count(), 0, 'Ctrl with a click does not count');
    await page.locator('#message').focus();
    for (let i = 0; i < 5; i++) await page.keyboard.press('Control');
    const code = L.sdkUi(page, 'lookup-code');
    await code.waitFor();
    assert.match(await code.locator('[data-covisit="code"]').textContent(), /^\d{4}$/);
    assert.equal(await activeElementId(page), 'message', 'the code took no focus');
    await page.keyboard.type('!');
    assert.match(await page.locator('#message').inputValue(), /typed on!$/);
    await page.context().close();
  });
});

describe('masking holds against the order of changes', () => {
  it('a same-turn mask-and-fill never puts the text on the wire: classes, attributes, selectors of ancestors, moves, shadow roots, iframes, either order, and during the sliced snapshot', { timeout: 120000 }, async () => {
    const agentFrames = await L.captureFrames(agent);
    const { page, frames, shortId } = await visitorPage('/fixtures/consent.html');
    // During the snapshot: as soon as the first slice went out, mask the big block the
    // walk is inside and fill the last row of it (page code, as a page would do it).
    await page.evaluate((s) => {
      const send = WebSocket.prototype.send;
      let done = false;
      WebSocket.prototype.send = function (data) {
        if (!done && typeof data === 'string' && data.startsWith('{"type":"mirror"') && data.includes('["S",')) {
          done = true;
          queueMicrotask(() => {
            const bulk = document.getElementById('bulk');
            bulk.classList.add('private');
            bulk.lastElementChild.lastElementChild.textContent = `${s}-slice`;
          });
        }
        return send.call(this, data);
      };
    }, SENTINEL);
    await L.requestByLookupCode(agent, await page.evaluate(() => new Promise((r) => window.Covisit('getLookupCode', r))), shortId);
    await allow(page);
    await L.waitForConsoleStatus(agent, 'active');
    await agent.locator('.mirror-session:not([hidden]) iframe[data-state="live"]').waitFor({ timeout: 15000 });

    await page.evaluate((s) => {
      const $ = (id) => document.getElementById(id);
      // Built-in mask class, then text.
      $('p-class').classList.add('covisit-mask');
      $('p-class').textContent = `${s}-class`;
      // A masked element's background (a photo, say) is its content too: no URL of it.
      $('p-class').style.backgroundImage = `url("/img/${s}-bg.png")`;
      $('p-attr').style.background = `url(${location.origin}/img/${s}-attr-bg.png) no-repeat`;
      // The attribute, then a new element with text.
      $('p-attr').setAttribute('data-covisit-mask', '');
      const b = document.createElement('b');
      b.textContent = `${s}-attr`;
      $('p-attr').append(b);
      // A maskedElements class (the element's own).
      $('p-private').className = 'private';
      $('p-private').firstChild.data = `${s}-private`;
      // A maskedElements selector that matches by an ancestor ('.vault p').
      $('p-vault').className = 'vault';
      $('p-vault-inner').textContent = `${s}-vault`;
      // Text first, then the mask: the records come in the other order.
      $('p-order').firstChild.data = `${s}-order`;
      $('p-order').classList.add('covisit-mask');
      // A node moved into a container that becomes masked in the same turn.
      const moved = document.createElement('span');
      moved.textContent = `${s}-moved`;
      $('p-move-target').append(moved);
      $('p-move-target').setAttribute('data-covisit-mask', '');
      // Inside a shadow root, and a shadow root inside that.
      const sr = $('p-shadow-host').shadowRoot;
      sr.getElementById('s-place').classList.add('covisit-mask');
      sr.getElementById('s-place').textContent = `${s}-shadow`;
      const deep = sr.getElementById('s-nest');
      deep.classList.add('covisit-mask');
      deep.shadowRoot.getElementById('s-deep').textContent = `${s}-deep`;
      // Inside a same-origin iframe.
      const fd = $('frame').contentDocument;
      fd.getElementById('f-place').classList.add('covisit-mask');
      fd.getElementById('f-place').textContent = `${s}-frame`;
    }, SENTINEL);
    // A page change after those, unmasked: once it is in the console, everything before it is too.
    await page.evaluate(() => { document.getElementById('visible').textContent = 'CONTROL-AFTER'; });
    await L.waitFor(() => raw(agentFrames, 'received').some((f) => f.includes('CONTROL-AFTER')), { what: 'the control change in the console' });
    // And in the visitor's own capture (another CDP session, in no order with the console's).
    await L.waitFor(() => raw(frames, 'sent').some((f) => f.includes('CONTROL-AFTER')), { what: 'the control change on the visitor\'s socket' });
    const sent = raw(frames, 'sent');
    const received = raw(agentFrames, 'received');
    assert.ok(sent.some((f) => f.includes('Visible control text')), 'the capture ran');
    for (const f of sent) assert.ok(!f.includes(SENTINEL), `the visitor page sent masked content: ${f.slice(Math.max(0, f.indexOf(SENTINEL) - 200), f.indexOf(SENTINEL) + 100)}`);
    for (const f of received) assert.ok(!f.includes(SENTINEL), 'the console received masked content');
    // The masked places are boxes in the console.
    const mirror = agent.frameLocator('.mirror-session:not([hidden]) .mirror-viewport:not([hidden]) iframe[data-testid="mirror-frame"]');
    for (const id of ['p-class', 'p-attr', 'p-private', 'p-order', 'p-move-target']) {
      await L.waitFor(async () => (await mirror.locator(`#${id}`).getAttribute('data-covisit-box')) === '', { what: `#${id} as a box` });
    }
    await L.endLiveSessions(server, shortId);
    await page.context().close();
  });

  it('a password field toggled to text before the session, and fields marked secret by autocomplete, never go out in clear', { timeout: 90000 }, async () => {
    const { page, frames, shortId } = await visitorPage('/fixtures/consent.html');
    // Before any session: the visitor types a password, then shows it.
    await page.locator('#pw').fill(`${SENTINEL}-pw`);
    await page.locator('#pw-toggle').click();
    assert.equal(await page.locator('#pw').getAttribute('type'), 'text');
    // A password field the page adds later and toggles by script, never focused.
    await page.evaluate((s) => {
      const f = document.createElement('input');
      f.type = 'password';
      f.id = 'late-pw';
      document.getElementById('later').append(f);
      f.value = `${s}-late`;
      setTimeout(() => { f.type = 'text'; }, 0);
    }, SENTINEL);
    // A password field in a shadow root, typed in, then shown.
    await page.evaluate(() => {
      const host = document.createElement('div');
      host.id = 'shadow-form';
      document.getElementById('later').append(host);
      host.attachShadow({ mode: 'open' }).innerHTML = '<input id="shadow-pw" type="password">';
    });
    await page.locator('#shadow-form').locator('#shadow-pw').fill(`${SENTINEL}-shadowpw`);
    await page.evaluate(() => { document.getElementById('shadow-form').shadowRoot.getElementById('shadow-pw').type = 'text'; });
    for (const id of ['ac-current', 'ac-new', 'ac-otp', 'ac-cc', 'ac-csc']) await page.locator(`#${id}`).fill(`${SENTINEL}-${id}`);

    const { ra } = await rawAgent(shortId);
    await allow(page);
    await ra.expect((m) => m.type === 'mirror' && m.data.some((r) => r[0] === 'E'));
    // During the session: more typing into every one of them.
    await page.locator('#pw').pressSequentially('-more', { delay: 5 });
    await page.locator('#shadow-form').locator('#shadow-pw').pressSequentially('-more', { delay: 5 });
    for (const id of ['ac-current', 'ac-otp', 'ac-cc']) await page.locator(`#${id}`).pressSequentially(`-${SENTINEL}`, { delay: 5 });
    // Toggled back and forth during the session too.
    await page.locator('#pw-toggle').click();
    await page.locator('#pw-toggle').click();
    await page.locator('#name').fill('CONTROL-VALUE');
    // The capture writes the fields' values in the order they changed, on one ordered path:
    // once this later value is on both ends, every value before it is too.
    await L.waitFor(async () => JSON.stringify(await ra.all()).includes('CONTROL-VALUE'), { what: 'the unmasked control value' });
    await L.waitFor(() => raw(frames, 'sent').some((f) => f.includes('CONTROL-VALUE')), { what: 'the unmasked control value on the visitor\'s socket' });
    const sent = raw(frames, 'sent');
    const received = (await ra.all()).map((m) => JSON.stringify(m));
    for (const f of [...sent, ...received]) assert.ok(!f.includes(SENTINEL), `a secret crossed the wire: ${f.slice(Math.max(0, f.indexOf(SENTINEL) - 200), f.indexOf(SENTINEL) + 60)}`);
    // They are shown as bullets of the right length.
    const ids = L.nodeIds(await ra.all());
    const lastValue = (id) => {
      let v = null;
      for (const m of received.map((x) => JSON.parse(x))) {
        if (m.type !== 'mirror') continue;
        for (const r of m.data) {
          if (r[0] === 'V' && r[1] === ids[id]) v = r[2];
          if (r[0] === 'N') r.slice(3).forEach((t, i) => { if (r[1] + i === ids[id] && t[2]) v = t[2].value; });
        }
      }
      return v;
    };
    assert.equal(lastValue('pw'), '•'.repeat(`${SENTINEL}-pw-more`.length));
    assert.equal(lastValue('ac-cc'), '•'.repeat(`${SENTINEL}-ac-cc-${SENTINEL}`.length));
    await L.endLiveSessions(server, shortId);
    await ra.close();
    await page.context().close();
  });
});

describe('the console contacts only the covisit server', () => {
  let tracker;
  const hits = [];
  before(async () => {
    tracker = createServer((req, res) => { hits.push(req.url); res.writeHead(404).end(); });
    await new Promise((r) => tracker.listen(0, '127.0.0.1', r));
  });
  after(() => new Promise((r) => { tracker.closeAllConnections?.(); tracker.close(() => r()); }));

  /** Every request the console's browser context makes, and CDP's view of the page. */
  async function watchConsole() {
    const urls = [];
    agent.context().on('request', (r) => urls.push(r.url()));
    const cdp = await agent.context().newCDPSession(agent);
    await cdp.send('Network.enable');
    cdp.on('Network.requestWillBeSent', (e) => urls.push(e.request.url));
    return urls;
  }

  const MIRROR = '.mirror-session:not([hidden]) .mirror-viewport:not([hidden]) iframe[data-testid="mirror-frame"]';

  function foreign(urls) {
    const own = new URL(server.url).origin;
    return urls.filter((u) => !u.startsWith('data:') && !u.startsWith('blob:') && !u.startsWith('about:') && new URL(u).origin !== own);
  }

  it('rendering a page that names other hosts everywhere (attributes, srcset, CSS, @import, image-set, escapes, SVG) requests nothing from them', { timeout: 90000 }, async () => {
    const trackerUrl = `http://127.0.0.1:${tracker.address().port}`;
    const html = readFileSync(join(L.ROOT, 'tests/e2e/fixtures/assets-host.html'), 'utf8').replaceAll('TRACKER', trackerUrl);
    writeFileSync(join(server.dir, 'www/fixtures/assets-host-live.html'), html);
    const urls = await watchConsole();
    const { page, shortId } = await visitorPage('/fixtures/assets-host-live.html');
    await L.requestByLookupCode(agent, await page.evaluate(() => new Promise((r) => window.Covisit('getLookupCode', r))), shortId);
    await allow(page);
    await L.waitForConsoleStatus(agent, 'active');
    const mirror = agent.frameLocator('.mirror-session:not([hidden]) .mirror-viewport:not([hidden]) iframe[data-testid="mirror-frame"]');
    await L.waitFor(async () => (await mirror.locator('#hostile-assets').count()) === 1, { what: 'the page in the mirror' });
    // Changes after the snapshot name other hosts too.
    await page.evaluate((t) => {
      const d = document.getElementById('added');
      d.innerHTML = `<img src="${t}/added.png"><div style="background:url(${t}/added-bg.png)">x</div><style>@import "${t}/added.css"; p { background: url(${t}/added-style.png) }</style>`;
      document.getElementById('img').setAttribute('src', `${t}/changed.png`);
      document.querySelector('style').append(`\n#bg { border-image: url(${t}/appended.png) 30 }`);
    }, trackerUrl);
    await L.waitFor(async () => (await mirror.locator('#added img').count()) === 1, { what: 'the added nodes in the mirror' });
    // The mirror has rendered all of it (the loads it would make are started), and a
    // request the console makes after that is seen: any foreign one would be seen before.
    await L.settled(agent.locator(MIRROR));
    await L.requestBarrier(agent, urls);
    const bad = foreign(urls);
    assert.deepEqual(bad, [], `the console asked other hosts: ${bad.join(', ')}`);
    // Same-server URLs still work: the local image and link keep their address.
    assert.equal(await mirror.locator('#local-img').getAttribute('src'), `${new URL(server.url).origin}/favicon.svg`);
    assert.equal(await mirror.locator('#link').getAttribute('href'), '#', 'a link elsewhere keeps its look, not its target');
    assert.ok(urls.some((u) => u.includes('/agent/mirror.html')), 'the console was watched');
    await L.endLiveSessions(server, shortId);
    await page.context().close();
  });

  it('a forged mirror frame naming other hosts makes the console request nothing from them', { timeout: 90000 }, async () => {
    // Under a path of its own: the previous test's visitor page (closed, but its last
    // requests may still be on their way) loaded that page's URLs itself.
    const t = `http://127.0.0.1:${tracker.address().port}/forged`;
    hits.length = 0;
    const urls = await watchConsole();
    const forger = await L.rawSocket(browser, server, '/ws/visitor', {
      type: 'hello', protocol_version: 1, api_key: L.PUBLIC_KEY, short_id: null,
      connection: { uniqueConnectionId: null, currentUrl: `${t}/page`, screenWidth: 800, screenHeight: 600, audioSupported: false, hasFocus: true, userAgent: 'forger' },
      config: {},
    });
    const welcome = await forger.expect((m) => m.type === 'welcome');
    await L.requestByLookupCode(agent, welcome.lookup_code, welcome.short_id);
    await forger.expect((m) => m.type === 'session_request');
    await forger.send({ type: 'authorize' });
    await L.waitForConsoleStatus(agent, 'active');
    const tuples = [
      [0, 'html'], [1, 'head'],
      [2, 'link', { rel: 'stylesheet', href: `${t}/f.css` }],
      [2, 'link', { rel: 'icon', href: `${t}/f.ico` }],
      [2, 'style'], [5, 0, `@import url(${t}/imp.css); @\\69mport "${t}/imp2.css"; body { background: url(${t}/b.png) } @font-face { font-family: X; src: url(${t}/x.woff) }`],
      [1, 'body', { background: `${t}/body.png`, style: `background-image: image-set("${t}/s1.png" 1x)` }],
      [7, 'img', { id: 'forged-img', src: `${t}/i.png`, srcset: `${t}/i2.png 2x`, style: `content: url(${t}/c.png)` }],
      [7, 'h1', { id: 'forged-title' }], [9, 0, 'Forged page'],
      [7, 'video', { poster: `${t}/p.png`, src: `${t}/v.mp4` }],
      [7, 'svg'], [12, 'image', { href: `${t}/si.png`, 'xlink:href': `${t}/si2.png` }],
      [12, 'rect', { fill: `url(${t}/paint.svg#p)`, width: '9', height: '9' }],
      [7, 'input', { type: 'image', src: `${t}/in.png` }],
      [7, 'a', { id: 'forged-link', href: `${t}/go`, ping: `${t}/ping` }],
      [7, 'div', { style: `--x: \\75 rl(${t}/esc.png); background: var(--x)` }],
    ].map(([parent, ...rest], i) => [i + 1 - parent, ...rest]);
    await forger.send({ type: 'mirror', data: [['S', 1, `${t}/page`, 800, 600, 1], ['N', 1, 0, ...tuples], ['y', 0, `@import url(${t}/adopted.css); div { background: url(${t}/adopted.png) }`], ['E']] });
    const mirror = agent.frameLocator('.mirror-session:not([hidden]) .mirror-viewport:not([hidden]) iframe[data-testid="mirror-frame"]');
    await L.waitFor(async () => (await mirror.locator('#forged-title').count()) === 1, { what: 'the forged page in the mirror' });
    await forger.send({ type: 'mirror', data: [['A', 8, { src: `${t}/later.png` }], ['T', 6, `p { background: url(${t}/later-style.png) }`], ['X', 5, `div { background: url(${t}/chunk.png) }`]] });
    // A later change on the same path (the forger's socket, then the console applying
    // frames in order): once it shows, the frame before it has been applied.
    await forger.send({ type: 'mirror', data: [['T', 10, 'Forged page, later']] });
    await L.waitFor(async () => (await mirror.locator('#forged-title').textContent()) === 'Forged page, later', { what: 'the later change in the mirror' });
    await L.settled(agent.locator(MIRROR));
    await L.requestBarrier(agent, urls);
    const bad = foreign(urls);
    assert.deepEqual(bad, [], `the console asked other hosts: ${bad.join(', ')}`);
    assert.deepEqual(hits.filter((h) => h.startsWith('/forged/')), [], 'nothing reached the other host');
    await L.endLiveSessions(server, welcome.short_id);
    await forger.close();
  });
});

describe('the console, smaller things', () => {
  it('a page with nothing focused has no focus mark; a visitor without a name is "Visitor <id>" once; the history shows the live length', { timeout: 60000 }, async () => {
    const { page, shortId } = await visitorPage('/fixtures/consent.html');
    await L.requestByLookupCode(agent, await page.evaluate(() => new Promise((r) => window.Covisit('getLookupCode', r))), shortId);
    await allow(page);
    await L.waitForConsoleStatus(agent, 'active');
    const mirror = agent.frameLocator('.mirror-session:not([hidden]) .mirror-viewport:not([hidden]) iframe[data-testid="mirror-frame"]');
    await agent.locator('.mirror-session:not([hidden]) iframe[data-state="live"]').waitFor({ timeout: 15000 });
    // Focus reaches the mirror as a mark; when the visitor's page then has nothing focused, the mark goes.
    await page.focus('#name');
    await mirror.locator('#name[data-covisit-focus]').waitFor({ timeout: 10000 });
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    await mirror.locator('[data-covisit-focus]').waitFor({ state: 'detached', timeout: 10000 });
    assert.equal(await mirror.locator('[data-covisit-focus]').count(), 0, 'nothing is marked focused');
    // A field's blur is not the tab's: the tab the visitor is in stays "in use".
    const tabFocused = await agent.locator('.mirror-session:not([hidden]) [data-testid="mirror-tab"]').first().getAttribute('data-focused');
    assert.equal(tabFocused, String(await page.evaluate(() => document.hasFocus())), 'the tab keeps its focus state');
    const title = (await agent.locator('#visitor-title').textContent()).trim();
    assert.equal(title, `Visitor ${shortId}`);
    const sub = (await agent.locator('#visitor-sub').textContent()).trim();
    assert.ok(!sub.includes(shortId), `the id is said once: "${title}" / "${sub}"`);
    // The clock has to advance for the length to be live: wait until the card shows it did.
    await L.waitFor(async () => (await agent.locator('#session-length').textContent()).trim() !== '00:00', { timeoutMs: 5000, what: 'the session length to pass 00:00' });
    // Both read in one task of the console's page: two round trips could straddle its once-a-second repaint.
    const { card, row } = await agent.evaluate(() => ({
      card: document.getElementById('session-length').textContent.trim(),
      row: document.querySelector('#history-body tr').querySelectorAll('td')[2].textContent.trim(),
    }));
    assert.equal(row, card, 'the history row and the session card show the same length');
    assert.notEqual(card, '00:00');
    await L.endLiveSessions(server, shortId);
    await page.context().close();
  });
});
