// Co-browsing end to end (docs/MIRROR.md): the visitor's page (tests/e2e/fixtures/
// mirror.html with the preview SDK) and the agent console in separate browser contexts
// against the real server. The console's mirror must follow the page; masked content
// must cross no wire (checked on the frames the visitor page sends and the frames the
// console receives, through CDP); hostile page content and forged frames must run
// nothing in the console; remote control must act only with consent.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as L from './lib.mjs';

let server;
let browser;
let agent;
L.useServerAndConsole((env) => ({ server, browser, agent } = env));

/** The mirror iframe of the session the console shows. */
const MIRROR = '.mirror-session:not([hidden]) .mirror-viewport:not([hidden]) iframe[data-testid="mirror-frame"]';

function mirrorFrame(page = agent) {
  return page.frameLocator(MIRROR);
}

async function waitLive(page = agent) {
  await page.locator('.mirror-session:not([hidden]) .mirror-viewport:not([hidden]) iframe[data-state="live"]').waitFor({ timeout: 15000 });
}

/** A text inside the mirror, polled until `want` (a string or RegExp) matches. */
async function mirrorText(selector, want, page = agent) {
  const loc = mirrorFrame(page).locator(selector);
  return L.waitFor(async () => {
    const text = (await loc.count()) ? await loc.first().textContent() : null;
    return (typeof want === 'string' ? text === want : want.test(text || '')) && text;
  }, { what: `mirror ${selector} to show ${want}` });
}

/** A visitor on `path` with frames recorded from the first byte, in a live session with the console. */
async function liveVisitor(path, { allow = true } = {}) {
  const page = await L.openVisitor(browser);
  const frames = await L.captureFrames(page);
  await page.goto(server.url + path);
  await L.waitFor(() => page.evaluate(() => typeof window.Covisit === 'function' && !window.Covisit.q), { what: 'the SDK to load' });
  const code = await page.evaluate(() => new Promise((r) => window.Covisit('getLookupCode', r)));
  const shortId = (await L.sdkState(page)).visitor.short_id;
  await L.requestByLookupCode(agent, code, shortId);
  await L.sdkUi(page, 'session-prompt').waitFor();
  if (allow) {
    await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
    await L.waitForConsoleStatus(agent, 'active');
    await waitLive();
  }
  return { page, frames, shortId };
}

async function endSession(page, shortId) {
  await L.endLiveSessions(server, shortId);
  await page.context().close();
}

/** Every text frame a page's sockets sent or received, as raw text. */
function rawFrames(rec, which) {
  return rec[which].map((f) => (f.raw !== undefined ? f.raw : JSON.stringify(f)));
}

describe('co-browsing', () => {
  it('the mirror shows the page and follows adds, removes, attributes, text, values, scrolling, an iframe and navigation', { timeout: 90000 }, async () => {
    const { page, shortId } = await liveVisitor('/fixtures/mirror.html');
    await mirrorText('#greeting', 'Hello from the visitor page');
    await mirrorText('#item-2', 'Second item');
    // Same-origin iframe content.
    assert.equal(await mirrorFrame().frameLocator('#frame').locator('#inframe').textContent(), 'Inside the iframe');
    // Stylesheets are resolved: the linked shop.css arrives as text.
    assert.ok(await mirrorFrame().locator('style[data-href$="/shop.css"]').count() === 1, 'the linked stylesheet is inlined');
    // Ignored content never arrives; scripts neither.
    assert.equal(await mirrorFrame().locator('#ignored').count(), 0);
    assert.equal(await mirrorFrame().locator('script').count(), 0);

    await page.evaluate(() => {
      const li = document.createElement('li');
      li.id = 'item-3';
      li.textContent = 'Third item';
      document.getElementById('list').append(li);
    });
    await mirrorText('#item-3', 'Third item');
    await page.evaluate(() => {
      const li = document.createElement('li');
      li.id = 'item-0';
      li.textContent = 'Zeroth item';
      document.getElementById('list').prepend(li);
    });
    await L.waitFor(async () => (await mirrorFrame().locator('#list li').first().getAttribute('id')) === 'item-0', { what: 'an insert before the first item' });
    await page.evaluate(() => document.getElementById('item-1').remove());
    await L.waitFor(async () => (await mirrorFrame().locator('#item-1').count()) === 0, { what: 'the removed item to go' });
    await page.evaluate(() => document.getElementById('greeting').setAttribute('data-mood', 'happy'));
    await L.waitFor(async () => (await mirrorFrame().locator('#greeting').getAttribute('data-mood')) === 'happy', { what: 'an attribute change' });
    // An attribute outside the box's few on a masked element: not sent, and the capture
    // goes on (it used to throw there and stop following the page).
    await page.evaluate(() => {
      document.getElementById('account').setAttribute('data-balance', '1234');
      document.getElementById('greeting').firstChild.data = 'Text changed';
    });
    await mirrorText('#greeting', 'Text changed');
    assert.equal(await mirrorFrame().locator('#account').getAttribute('data-balance'), null);
    // Links arrive absolute: a path from the root, one with dot segments, a relative one.
    await page.evaluate(() => {
      const add = (id, href) => { const a = document.createElement('a'); a.id = id; a.href = href; a.textContent = id; document.body.append(a); };
      add('link-root', '/fixtures/x.html?a=1&b=two#top');
      add('link-dots', '/fixtures/../shop.css');
      add('link-relative', 'mirror-next.html?q=it%27s');
    });
    const origin = new URL(server.url).origin;
    await L.waitFor(async () => (await mirrorFrame().locator('#link-relative').count()) === 1, { what: 'the new links' });
    assert.equal(await mirrorFrame().locator('#link-root').getAttribute('href'), `${origin}/fixtures/x.html?a=1&b=two#top`);
    assert.equal(await mirrorFrame().locator('#link-dots').getAttribute('href'), `${origin}/shop.css`);
    assert.equal(await mirrorFrame().locator('#link-relative').getAttribute('href'), `${origin}/fixtures/mirror-next.html?q=it%27s`);
    // Moves keep the node: the second item goes to the end.
    await page.evaluate(() => document.getElementById('list').append(document.getElementById('item-2')));
    await L.waitFor(async () => (await mirrorFrame().locator('#list li').last().getAttribute('id')) === 'item-2', { what: 'a moved node' });

    await page.locator('#name').fill('Ada Visible');
    await L.waitFor(async () => (await mirrorFrame().locator('#name').inputValue()) === 'Ada Visible', { what: 'the typed value' });
    await page.evaluate(() => { document.querySelector('#frame').contentDocument.getElementById('inframe').textContent = 'Iframe changed'; });
    await L.waitFor(async () => (await mirrorFrame().frameLocator('#frame').locator('#inframe').textContent()) === 'Iframe changed', { what: 'a change inside the iframe' });

    await page.evaluate(() => window.scrollTo(0, 900));
    await L.waitFor(() => agent.locator('.mirror-session:not([hidden]) iframe[data-testid="mirror-frame"]').evaluate((f) => f.contentWindow.scrollY === 900), { what: 'the mirror scrolled to 900' });
    await page.evaluate(() => { document.getElementById('scroller').scrollTop = 60; });
    await L.waitFor(() => mirrorFrame().locator('#scroller').evaluate((el) => el.scrollTop === 60), { what: 'the box scrolled' });

    // The visitor's focus and pointer are shown.
    await page.locator('#name').focus();
    await L.waitFor(async () => (await mirrorFrame().locator('#name').getAttribute('data-covisit-focus')) === '', { what: 'the focused field marked' });
    await page.mouse.move(120, 140);
    await L.waitFor(() => agent.locator('.mirror-session:not([hidden]) [data-testid="mirror-pointer"]').isVisible(), { what: "the visitor's pointer" });

    // A new page of the same visitor: a new snapshot.
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.locator('#next').click();
    await page.waitForURL('**/mirror-next.html');
    await mirrorText('#second', 'Second page');
    assert.equal(await mirrorFrame().locator('#greeting').count(), 0, 'the old page is gone');
    await endSession(page, shortId);
  });

  it('a second agent who joins gets a snapshot; a storm of mutations degrades to a fresh one', { timeout: 90000 }, async () => {
    const { page, shortId } = await liveVisitor('/fixtures/mirror.html');
    const ola = await L.openConsole(browser, server, 'Ola', 'supervisor');
    try {
      await ola.getByTestId('visitor-search').fill(shortId);
      await ola.locator(`[data-testid="visitor-row"][data-short-id="${shortId}"]`).click();
      await ola.getByTestId('join-session').click();
      // The console asks for a snapshot (mirror_resync) when none arrives: a new epoch.
      await waitLive(ola);
      await mirrorText('#greeting', 'Hello from the visitor page', ola);
      await page.evaluate(() => { document.getElementById('greeting').textContent = 'Seen by both'; });
      await mirrorText('#greeting', 'Seen by both', ola);
      await mirrorText('#greeting', 'Seen by both');

      const frames = await L.captureFrames(agent);
      await page.evaluate(() => {
        const box = document.createElement('div');
        box.id = 'storm';
        document.body.append(box);
        for (let i = 0; i < 25000; i++) box.append(document.createElement('span'));
        box.lastChild.textContent = 'last of the storm';
      });
      await L.waitFor(async () => (await mirrorFrame().locator('#storm span').count()) === 25000, { timeoutMs: 20000, what: 'the storm in the mirror' });
      await mirrorText('#storm span:last-child', 'last of the storm');
      const starts = frames.received.filter((f) => f.type === 'mirror' && f.data.some((r) => r[0] === 'S'));
      assert.ok(starts.length >= 1, 'the storm started a new epoch');
      assert.ok(frames.received.every((f) => JSON.stringify(f).length < 70 * 1024), 'every frame stays under the limit');
    } finally {
      await ola.context().close();
      await endSession(page, shortId);
    }
  });

  it('two tabs: the console shows the tab the visitor is in, and marks it', { timeout: 90000 }, async () => {
    const { page: a, shortId } = await liveVisitor('/fixtures/mirror.html');
    const b = await a.context().newPage();
    await b.goto(`${server.url}/fixtures/mirror-next.html`);
    const tabs = agent.locator('.mirror-session:not([hidden]) [data-testid="mirror-tab"]');
    await L.waitFor(async () => (await tabs.count()) === 2, { what: 'two tabs in the console' });
    // The visitor moves to the second tab (headless pages all have focus: play the browser's
    // part). Each tab reports focus in its own stream, so the console may hear the new tab's
    // focus before the old tab's blur: that order, the harder one, is played here.
    await b.evaluate(() => window.dispatchEvent(new Event('focus')));
    await L.waitFor(() => tabs.evaluateAll((els) => els.some((e) => e.dataset.focused === 'true' && /mirror-next/.test(e.textContent))), { what: 'the console to hear the second tab\'s focus' });
    await a.evaluate(() => window.dispatchEvent(new Event('blur')));
    await mirrorText('#second', 'Second page');
    const marks = await tabs.evaluateAll((els) => els.map((e) => [e.dataset.focused, e.getAttribute('aria-pressed'), e.textContent]));
    assert.deepEqual(marks.map((m) => m[0]).sort(), ['false', 'true'], JSON.stringify(marks));
    assert.ok(marks.some((m) => m[0] === 'true' && m[1] === 'true' && /mirror-next/.test(m[2])), JSON.stringify(marks));
    await endSession(a, shortId);
  });

  it('privacy sentinel: masked values and text cross no wire; nothing before the visitor allows', { timeout: 90000 }, async () => {
    const SENTINEL = 'SENTINEL-7f3a9c';
    const agentFrames = await L.captureFrames(agent);
    agentFrames.received.length = 0;
    const { page, frames, shortId } = await liveVisitor('/fixtures/mirror.html', { allow: false });
    // Before the visitor answers: no mirror frame, no page text. The capture loads once the
    // session is requested, and would start as soon as it loaded: wait until it has (the
    // page's own import of the module settles after the SDK's), then track an event. That
    // goes out on the same socket, TRACK_BATCH_MS later, behind any frame the capture made.
    await page.waitForFunction(() => performance.getEntriesByType('resource').some((e) => e.name.includes('covisit-capture')));
    await page.evaluate(async () => {
      await import(performance.getEntriesByType('resource').find((e) => e.name.includes('covisit-capture')).name);
      window.Covisit('track', 'before_consent_marker');
    });
    await L.waitFor(() => rawFrames(frames, 'sent').some((f) => f.includes('before_consent_marker')), { what: 'the marker event on the visitor\'s socket' });
    const sentBefore = rawFrames(frames, 'sent');
    assert.ok(sentBefore.length > 0);
    for (const f of sentBefore) {
      assert.ok(!f.includes('"type":"mirror"'), `a mirror frame before authorization: ${f.slice(0, 200)}`);
      for (const t of ['Hello from the visitor page', 'First item', 'Mirror fixture']) assert.ok(!f.includes(t), `page content before authorization: ${f.slice(0, 200)}`);
    }
    assert.ok(!rawFrames(agentFrames, 'received').some((f) => f.includes('"type":"mirror"')), 'the console got no mirror frame before authorization');

    // Secrets typed before sharing starts, then while it runs.
    await page.locator('#password').fill(`${SENTINEL}-pw-early`);
    await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
    await L.waitForConsoleStatus(agent, 'active');
    await waitLive();
    for (const [sel, how] of [['#password', 'fill'], ['#card', 'type'], ['#secret', 'type'], ['#masked-inner', 'type']]) {
      const value = `${SENTINEL}-${sel.slice(1)}`;
      if (how === 'fill') await page.locator(sel).fill(value);
      else await page.locator(sel).pressSequentially(value, { delay: 5 });
    }
    await page.locator('#frame').contentFrame().locator('#frame-password').fill(`${SENTINEL}-frame`);
    await page.evaluate((s) => {
      document.getElementById('account').textContent = `${s}-account`;
      document.querySelector('#data-mask').append(` ${s}-data`);
    }, SENTINEL);
    // A control value that is not masked, so the capture demonstrably ran.
    await page.locator('#name').fill('visible-control-value');
    await L.waitFor(async () => (await mirrorFrame().locator('#name').inputValue()) === 'visible-control-value', { what: 'the unmasked value in the mirror' });
    // The masked ones show as bullets of the same length, and masked text as a box.
    const pw = await mirrorFrame().locator('#password').inputValue();
    assert.equal(pw, '•'.repeat(`${SENTINEL}-password`.length));
    assert.equal(await mirrorFrame().locator('#account').textContent(), '', 'a masked element is an empty box');
    assert.equal(await mirrorFrame().locator('#account').getAttribute('data-covisit-box'), '');
    // The capture writes changes in the order they happened, on one ordered path: once the
    // later, unmasked value is in both captures, everything typed before it is too.
    await L.waitFor(() => rawFrames(frames, 'sent').some((f) => f.includes('visible-control-value')), { what: 'the unmasked value on the visitor\'s socket' });
    await L.waitFor(() => rawFrames(agentFrames, 'received').some((f) => f.includes('visible-control-value')), { what: 'the unmasked value on the console\'s socket' });

    const sent = rawFrames(frames, 'sent');
    const received = rawFrames(agentFrames, 'received');
    assert.ok(sent.some((f) => f.includes('visible-control-value')), 'the visitor sent the unmasked value');
    assert.ok(received.some((f) => f.includes('visible-control-value')), 'the console received the unmasked value');
    for (const f of sent) assert.ok(!f.includes(SENTINEL), `the visitor page sent a masked value: ${f.slice(0, 300)}`);
    for (const f of received) assert.ok(!f.includes(SENTINEL), `the console received a masked value: ${f.slice(0, 300)}`);
    for (const t of ['ACME-SECRET-ACCOUNT', 'DATA-MASKED-TEXT', 'IGNORED-CONTENT']) {
      assert.ok(![...sent, ...received].some((f) => f.includes(t)), `${t} crossed the wire`);
    }
    await endSession(page, shortId);
  });

  it('hostile page content runs nothing in the console', { timeout: 90000 }, async () => {
    const { page, shortId } = await liveVisitor('/fixtures/hostile.html');
    await mirrorText('#hostile-title', 'Hostile content');
    await page.evaluate(() => {
      const d = document.getElementById('added');
      d.innerHTML = '<img src="/nope.png" onerror="top.__pwned=\'added-onerror\'"><a id="added-link" href="javascript:top.__pwned=\'added-href\'">x</a>';
      d.setAttribute('onclick', "top.__pwned='attr'");
    });
    await L.waitFor(async () => (await mirrorFrame().locator('#added-link').count()) === 1, { what: 'the added hostile nodes' });
    await L.settled(agent.locator(MIRROR)); // images fail, their events fire
    assert.equal(await agent.evaluate(() => window.__pwned), undefined, 'nothing ran in the console');
    const f = mirrorFrame();
    assert.equal(await f.locator('script').count(), 0, 'no script element in the mirror');
    assert.equal(await f.locator('[onerror],[onload],[ontoggle],[onclick]').count(), 0, 'no event handler attribute');
    assert.equal(await f.locator('#js-link').getAttribute('href'), null, 'javascript: URL removed');
    assert.equal(await f.locator('#srcdoc').getAttribute('srcdoc'), null);
    const sandbox = await agent.locator('.mirror-session:not([hidden]) iframe[data-testid="mirror-frame"]').getAttribute('sandbox');
    assert.equal(sandbox, 'allow-same-origin', 'the mirror frame may not run scripts');
    await endSession(page, shortId);
  });

  it('a forged mirror frame sent to the server as the visitor runs nothing in the console', { timeout: 90000 }, async () => {
    const raw = await rawSocket('/ws/visitor', {
      type: 'hello', protocol_version: 1, api_key: L.PUBLIC_KEY, short_id: null,
      connection: { uniqueConnectionId: null, currentUrl: `${server.url}/forged`, screenWidth: 800, screenHeight: 600, audioSupported: false, hasFocus: true, userAgent: 'forger' },
      config: {},
    });
    const welcome = await raw.expect((m) => m.type === 'welcome');
    await L.requestByLookupCode(agent, welcome.lookup_code, welcome.short_id);
    await raw.expect((m) => m.type === 'session_request');
    await raw.send({ type: 'authorize' });
    await L.waitForConsoleStatus(agent, 'active');
    const p = "top.__pwned='forged'";
    await raw.send({
      type: 'mirror',
      data: [
        ['S', 1, 'javascript:top.__pwned=1', 800, 600, 1],
        // Tuples name their parent by id; the frame gives distances (id - parent id).
        ['N', 1, 0, ...[
          [0, 'html'], [1, 'head'], [2, 'meta', { 'http-equiv': 'refresh', content: `0;url=javascript:${p}` }],
          [2, 'base', { href: 'javascript:x' }],
          [1, 'body', { onload: p }],
          [5, 'script', {}], [6, 0, p],
          [5, 'img', { src: 'x', onerror: p }],
          [5, 'a', { id: 'forged-link', href: `javascript:${p}` }],
          [5, 'iframe', { srcdoc: `<script>${p}</script>`, src: `javascript:${p}` }],
          [5, 'svg', { onload: p }], [11, 'script'], [12, 0, p],
          [5, 'object', { data: `javascript:${p}` }],
          [5, 'embed', { src: `javascript:${p}` }],
          [5, 'form', { action: `javascript:${p}` }],
          [5, 'h1', { id: 'forged-title' }], [17, 0, 'Forged page'],
          [5, 'style'], [19, 0, 'body { background: url("javascript:top.__pwned=1") }'],
          [5, 'svg'], [21, 'set', { attributeName: 'onload', to: p }],
          [5, 'details', { open: '', ontoggle: p }],
          [5, '"><img src=x onerror=top.__pwned=1>'],
        ].map(([parent, ...rest], i) => [i + 1 - parent, ...rest])],
        ['A', 8, { onerror: p, src: 'y' }],
        ['A', 9, { href: `  JaVaScRiPt:${p}` }],
        ['A', 5, { onclick: p }],
        ['E'],
      ],
    });
    await mirrorText('#forged-title', 'Forged page');
    await L.settled(agent.locator(MIRROR)); // images fail, their events fire
    assert.equal(await agent.evaluate(() => window.__pwned), undefined, 'nothing ran in the console');
    const f = mirrorFrame();
    assert.equal(await f.locator('script, object, embed, meta, base').count(), 0);
    assert.equal(await f.locator('#forged-link').getAttribute('href'), null);
    assert.equal(await f.locator('[onload],[onerror],[ontoggle]').count(), 0);
    // The socket survives a malformed one.
    await raw.send({ type: 'mirror', data: 'not an array' });
    assert.equal((await raw.expect((m) => m.type === 'error')).code, 'invalid_mirror_frame');
    await L.endLiveSessions(server, welcome.short_id);
    await raw.close();
  });

  it('remote control acts only with consent: not before the grant, not after revoke or end, not without permission, never on masked elements', { timeout: 120000 }, async () => {
    const config = encodeURIComponent(JSON.stringify({ allowRemoteScroll: false }));
    const page = await L.openVisitor(browser);
    await page.goto(`${server.url}/fixtures/mirror.html?config=${config}`);
    await L.waitFor(() => page.evaluate(() => typeof window.Covisit === 'function' && !window.Covisit.q), { what: 'the SDK to load' });
    const shortId = (await L.sdkState(page)).visitor.short_id;
    // A second agent socket drives the actions (raw frames, as a console would send them).
    const ra = await rawSocket('/ws/agent', { type: 'hello', protocol_version: 1, secret_key: L.SECRET, name: 'Remy', external_id: 'e2e-remy' });
    await ra.expect((m) => m.type === 'welcome');
    await ra.send({ type: 'request_session', short_id: shortId, found_by: 'search' });
    const sessionId = (await ra.expect((m) => m.type === 'session_update' && m.session.visitor_id === shortId)).session.id;
    await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
    await ra.expect((m) => m.type === 'mirror' && m.data.some((r) => r[0] === 'E'));
    const ids = L.nodeIds(await ra.all());
    for (const k of ['counter', 'controlled', 'masked-button', 'password', 'name']) assert.ok(ids[k], `node id of #${k}`);
    const act = (action) => ra.send({ type: 'remote_action', session_id: sessionId, action });
    const clickCounter = { kind: 'click', node: ids.counter, x: 3, y: 3 };
    const counterText = () => page.locator('#counter').textContent();

    // Before control is granted: refused, nothing happens.
    await act(clickCounter);
    assert.equal((await ra.expect((m) => m.type === 'error')).code, 'control_not_granted');
    await ra.send({ type: 'request_control', session_id: sessionId });
    await L.sdkUi(page, 'control-prompt').waitFor();
    await act(clickCounter);
    assert.equal((await ra.expect((m) => m.type === 'error')).code, 'control_not_granted');
    assert.equal(await counterText(), 'Clicked 0 times');

    // Granted: a real click and React-style typing.
    await L.sdkUi(page, 'control-prompt').getByRole('button', { name: 'Allow control' }).click();
    await ra.expect((m) => m.type === 'session_update' && m.control?.state === 'granted');
    await act(clickCounter);
    await L.waitFor(async () => (await counterText()) === 'Clicked 1 times', { what: 'the remote click' });
    assert.equal((await ra.expect((m) => m.type === 'remote_result' && m.kind === 'click')).ok, true);
    await act({ kind: 'type', node: ids.controlled, value: 'hello agent' });
    await L.waitFor(async () => (await page.locator('#controlled-echo').textContent()) === 'state: hello agent', { what: 'the controlled input state' });
    assert.equal(await page.locator('#controlled').inputValue(), 'hello agent');
    // The visitor sees the agent's pointer while control is granted.
    await act({ kind: 'pointer', x: 50, y: 60 });
    await page.locator('covisit-pointer').waitFor({ state: 'attached' });

    // Masked targets: refused by the page.
    await act({ kind: 'click', node: ids['masked-button'], x: 1, y: 1 });
    assert.equal((await ra.expect((m) => m.type === 'remote_result' && m.kind === 'click' && !m.ok)).reason, 'masked_target');
    assert.equal(await page.locator('#masked-clicks').textContent(), '0');
    await act({ kind: 'type', node: ids.password, value: 'typed-by-agent' });
    assert.equal((await ra.expect((m) => m.type === 'remote_result' && m.kind === 'type' && !m.ok)).reason, 'masked_target');
    assert.equal(await page.locator('#password').inputValue(), '');
    // A permission that is off (allowRemoteScroll: false) and redirect (off by default).
    await act({ kind: 'scroll', node: 0, x: 0, y: 500 });
    assert.equal((await ra.expect((m) => m.type === 'error')).code, 'permission_denied');
    await act({ kind: 'redirect', url: '/fixtures/mirror-next.html' });
    assert.equal((await ra.expect((m) => m.type === 'error')).code, 'permission_denied');
    assert.equal(await page.evaluate(() => window.scrollY), 0);

    // The visitor takes control back with one click: nothing more happens.
    await L.sdkUi(page, 'indicator').getByRole('button', { name: 'Take back control' }).click();
    await ra.expect((m) => m.type === 'session_update' && m.control?.state === 'none');
    await page.locator('covisit-pointer').waitFor({ state: 'detached' });
    await act(clickCounter);
    assert.equal((await ra.expect((m) => m.type === 'error')).code, 'control_not_granted');
    await act({ kind: 'type', node: ids.name, value: 'after revoke' });
    assert.equal((await ra.expect((m) => m.type === 'error')).code, 'control_not_granted');
    // Granted again, then the session ends: nothing more happens. The request travels the
    // path a wrongly passed action would have (agent socket, server, visitor socket, in
    // order): once its prompt shows, the refused actions did not reach the page.
    await ra.send({ type: 'request_control', session_id: sessionId });
    await L.sdkUi(page, 'control-prompt').waitFor();
    assert.equal(await counterText(), 'Clicked 1 times');
    assert.equal(await page.locator('#name').inputValue(), '');
    await L.sdkUi(page, 'control-prompt').getByRole('button', { name: 'Allow control' }).click();
    await ra.expect((m) => m.type === 'session_update' && m.control?.state === 'granted');
    await L.sdkUi(page, 'indicator').getByRole('button', { name: 'End screen sharing' }).click();
    await ra.expect((m) => m.type === 'session_update' && m.status === 'ended');
    await act(clickCounter);
    assert.equal((await ra.expect((m) => m.type === 'error')).code, 'wrong_session_state');
    // A new request travels the same path after it: once its prompt shows, the click did not
    // reach the page.
    await ra.send({ type: 'request_session', short_id: shortId, found_by: 'search' });
    await L.sdkUi(page, 'session-prompt').waitFor();
    assert.equal(await counterText(), 'Clicked 1 times');
    await L.endLiveSessions(server, shortId);

    // Applied actions are counted in the session's features_used.
    const s = await L.rest(server, `/api/v1/sessions/${sessionId}`);
    assert.ok(s.body.features_used.includes('remote_click'), JSON.stringify(s.body.features_used));
    assert.ok(s.body.features_used.includes('remote_typing'), JSON.stringify(s.body.features_used));
    assert.ok(!s.body.features_used.includes('remote_scroll'));
    await ra.close();
    await page.context().close();
  });

  it('an agent in control clicks, types and scrolls in the console mirror; the page sees real events', { timeout: 90000 }, async () => {
    const config = encodeURIComponent(JSON.stringify({ allowAgentRedirect: true }));
    const { page, shortId } = await liveVisitor(`/fixtures/mirror.html?config=${config}`);
    await agent.getByTestId('request-control').click();
    await L.sdkUi(page, 'control-prompt').getByRole('button', { name: 'Allow control' }).click();
    await L.waitFor(async () => (await agent.getByTestId('control-status').getAttribute('data-control')) === 'you', { what: 'the console in control' });
    await agent.locator('.mirror-session:not([hidden]) .mirror-viewport[data-control="true"]').waitFor();
    const f = mirrorFrame();
    await f.locator('#counter').click();
    await L.waitFor(async () => (await page.locator('#counter').textContent()) === 'Clicked 1 times', { what: 'the click from the mirror' });
    await mirrorText('#counter', 'Clicked 1 times');
    await f.locator('#controlled').pressSequentially('typed in mirror', { delay: 0 });
    await L.waitFor(async () => (await page.locator('#controlled-echo').textContent()) === 'state: typed in mirror', { what: 'typing from the mirror' });
    await f.locator('body').evaluate(() => window.scrollTo(0, 700));
    await L.waitFor(() => page.evaluate(() => window.scrollY === 700), { what: 'the scroll from the mirror' });
    // Redirect (allowAgentRedirect: true here): same origin only.
    await agent.getByTestId('redirect-url').fill('https://elsewhere.example/');
    await agent.getByTestId('redirect-go').click();
    await L.waitFor(async () => /same site/.test(await agent.getByTestId('control-status').locator('xpath=..').textContent()), { what: 'the cross-origin redirect refused' });
    assert.match(page.url(), /mirror\.html/);
    await agent.getByTestId('redirect-url').fill('/fixtures/mirror-next.html');
    await agent.getByTestId('redirect-go').click();
    await page.waitForURL('**/mirror-next.html');
    await mirrorText('#second', 'Second page');
    const s = await L.rest(server, `/api/v1/sessions?visitor_id=${shortId}`);
    const features = s.body.sessions[0].features_used;
    for (const k of ['remote_control', 'remote_click', 'remote_typing', 'remote_scroll', 'agent_redirect']) assert.ok(features.includes(k), `${k} in ${features}`);
    await endSession(page, shortId);
  });
});

/** A raw WebSocket to this file's server (L.rawSocket). */
function rawSocket(path, hello) {
  return L.rawSocket(browser, server, path, hello);
}
