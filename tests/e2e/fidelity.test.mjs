// Mirror fidelity end to end (docs/MIRROR.md, issue 15): what the agent's mirror must
// render as the visitor sees it beyond the DOM: CSSOM rules changed after the snapshot
// (documents and shadow roots), custom elements and their states, the top layer (modal
// dialogs, popovers), canvases (never one inside a mask), document modes, and form and
// scroll states set by script. The visitor page (tests/e2e/fixtures/fidelity.html) and the
// console run in separate contexts against the real server; checks are made on what the
// mirror renders (computed styles, pseudo-classes, pixels) and on what crosses the wire.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import * as L from './lib.mjs';

let server;
let browser;
let agent;
L.useServerAndConsole((env) => ({ server, browser, agent } = env));

const FRAME = '.mirror-session:not([hidden]) .mirror-viewport:not([hidden]) iframe[data-testid="mirror-frame"]';

/** Runs `fn(doc, arg)` in the console against the mirror's document (the console is the
 * same origin as its sandboxed mirror). */
function inMirror(fn, arg) {
  return agent.locator(FRAME).evaluate((f, [src, a]) => (0, eval)(src)(f.contentDocument, a), [fn.toString(), arg]);
}

/** Polls `fn` in the mirror until it returns `want` (compared as JSON). */
async function mirrorSays(fn, want, what, arg) {
  const w = JSON.stringify(want);
  return L.waitFor(async () => JSON.stringify(await inMirror(fn, arg)) === w, { what: `${what} (want ${w}, last ${JSON.stringify(await inMirror(fn, arg).catch((e) => e.message))})` });
}

async function waitLive() {
  await agent.locator(`${FRAME}[data-state="live"]`).waitFor({ timeout: 15000 });
}

/** A visitor on `path` with the frames it sends recorded, in a live session with the console. */
async function liveVisitor(path) {
  const page = await L.openVisitor(browser);
  const frames = await L.captureFrames(page);
  await page.goto(server.url + path);
  await L.waitFor(() => page.evaluate(() => typeof window.Covisit === 'function' && !window.Covisit.q), { what: 'the SDK to load' });
  const code = await page.evaluate(() => new Promise((r) => window.Covisit('getLookupCode', r)));
  const shortId = (await L.sdkState(page)).visitor.short_id;
  await L.requestByLookupCode(agent, code, shortId);
  await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
  await L.waitForConsoleStatus(agent, 'active');
  await waitLive();
  return { page, frames, shortId };
}

async function endSession(page, shortId) {
  await L.endLiveSessions(server, shortId);
  await page.context().close();
}

/** The records of every mirror frame the visitor sent, in order. */
function sentRecords(frames) {
  return frames.sent.filter((f) => f.type === 'mirror').flatMap((f) => f.data);
}

describe('mirror fidelity', () => {
  it('CSSOM changes after the snapshot style the mirror: insertRule/deleteRule, replaceSync on an adopted sheet in a shadow root, adoptedStyleSheets.push, disabled', { timeout: 90000 }, async () => {
    const { page, shortId } = await liveVisitor('/fixtures/fidelity.html');
    const color = (doc, sel) => { const el = doc.querySelector(sel); return el && doc.defaultView.getComputedStyle(el).color; };
    const shadowColor = (doc) => { const p = doc.getElementById('host')?.shadowRoot?.getElementById('shadow-p'); return p && doc.defaultView.getComputedStyle(p).color; };
    await mirrorSays(shadowColor, 'rgb(0, 0, 200)', 'the adopted sheet of the shadow root');

    // An empty <style> that a CSS-in-JS library fills with insertRule (no mutation at all).
    await page.evaluate(() => document.getElementById('dyn').sheet.insertRule('#css-target { color: rgb(1, 2, 3); }', 0));
    await mirrorSays(color, 'rgb(1, 2, 3)', 'the inserted rule in the mirror', '#css-target');
    // Inserted before it, then the first deleted: indexes stay the page's.
    await page.evaluate(() => {
      const s = document.getElementById('dyn').sheet;
      s.insertRule('#card { font-size: 21px; }', 0);
      s.insertRule('@media all { #css-target { background-color: rgb(9, 9, 9); } }', 2);
      s.deleteRule(1);
    });
    await mirrorSays((doc) => [doc.defaultView.getComputedStyle(doc.getElementById('css-target')).color, doc.defaultView.getComputedStyle(doc.getElementById('css-target')).backgroundColor], ['rgb(0, 0, 0)', 'rgb(9, 9, 9)'], 'the deleted rule gone, the one after it kept');
    // A rule changed inside an @media rule (the same number of top-level rules).
    await page.evaluate(() => document.getElementById('dyn').sheet.cssRules[1].insertRule('#css-target { color: rgb(4, 4, 4); }', 0));
    await mirrorSays(color, 'rgb(4, 4, 4)', 'a rule inserted inside an @media rule', '#css-target');

    // replaceSync on the adopted sheet of a shadow root.
    await page.evaluate(() => window.shadowSheet.replaceSync('p { color: rgb(4, 5, 6); }'));
    await mirrorSays(shadowColor, 'rgb(4, 5, 6)', 'replaceSync on the adopted sheet');
    // A sheet pushed onto document.adoptedStyleSheets (no setter runs), then disabled.
    await page.evaluate(() => {
      const s = new CSSStyleSheet();
      s.replaceSync('#css-target { text-decoration: underline; }');
      document.adoptedStyleSheets.push(s);
      window.pushed = s;
    });
    await mirrorSays((doc) => doc.defaultView.getComputedStyle(doc.getElementById('css-target')).textDecorationLine, 'underline', 'a pushed adopted sheet');
    await page.evaluate(() => { window.pushed.disabled = true; });
    await mirrorSays((doc) => doc.defaultView.getComputedStyle(doc.getElementById('css-target')).textDecorationLine, 'none', 'the disabled sheet');
    // The style's text replaced: the browser makes a new sheet, the inserted rules go.
    await page.evaluate(() => { document.getElementById('dyn').textContent = '#css-target { color: rgb(7, 7, 7); }'; });
    await mirrorSays(color, 'rgb(7, 7, 7)', 'the style text replaced', '#css-target');
    // The sheet's media list changed through the CSSOM (the element's attribute did not).
    await page.evaluate(() => { document.getElementById('dyn').sheet.media.mediaText = 'print'; });
    await mirrorSays(color, 'rgb(0, 0, 0)', 'the sheet for print only', '#css-target');
    // The mirror's style element holds the cleaned rules only, never the page's text.
    assert.equal(await inMirror((doc) => doc.querySelector('style#dyn').textContent), '');
    await endSession(page, shortId);
  });

  it('custom elements: hidden by :not(:defined) until defined on the page, a shadow root attached on upgrade (never a masked one\'s), styled by :state(); a new page gets a fresh registry', { timeout: 90000 }, async () => {
    const { page, frames, shortId } = await liveVisitor('/fixtures/fidelity.html');
    const card = (doc) => { const el = doc.getElementById('card'); return el && [el.matches(':defined'), doc.defaultView.getComputedStyle(el).display]; };
    await mirrorSays(card, [false, 'none'], 'the undefined card hidden in the mirror');
    // Its definition attaches a shadow root on upgrade, after the card was mirrored; so
    // does a masked custom element's, mirrored before the card (checked first).
    await page.evaluate(() => {
      const drawing = (html) => class extends HTMLElement {
        constructor() { super(); this.attachShadow({ mode: 'open' }).innerHTML = html; }
      };
      customElements.define('x-secret', drawing('<b>SECRET-CE-SHADOW</b>'));
      customElements.define('x-card', drawing('<slot></slot><b id="card-shadow">drawn by the card</b>'));
    });
    assert.equal(await page.locator('#card').isVisible(), true);
    await mirrorSays(card, [true, 'block'], 'the card shown once defined');
    await mirrorSays((doc) => doc.getElementById('card')?.shadowRoot?.getElementById('card-shadow')?.textContent ?? null, 'drawn by the card', "the card's late shadow root");
    await L.waitFor(() => JSON.stringify(sentRecords(frames)).includes('drawn by the card'), { what: "the card's shadow root on the visitor's socket" });
    assert.ok(!JSON.stringify(frames.sent).includes('SECRET-CE-SHADOW'), "the masked element's shadow root never sent");
    assert.ok(await L.waitFor(() => agent.locator(FRAME).contentFrame().locator('#card').isVisible(), { what: 'the card visible in the mirror' }));

    // A custom state set by the element's own code (no attribute, no mutation).
    await page.evaluate(() => {
      customElements.define('x-toggle', class extends HTMLElement {
        constructor() { super(); this.internals = this.attachInternals(); }
      });
      document.getElementById('toggle').internals.states.add('on');
    });
    const toggle = (doc) => doc.defaultView.getComputedStyle(doc.getElementById('toggle')).color;
    await mirrorSays(toggle, 'rgb(200, 0, 0)', 'the custom state in the mirror');
    await page.evaluate(() => document.getElementById('toggle').internals.states.delete('on'));
    await mirrorSays(toggle, 'rgb(10, 10, 10)', 'the custom state cleared');

    // The visitor goes to a page where x-card is not defined (and which has no doctype):
    // the mirror's new document has neither the old definition nor standards mode.
    await page.goto(`${server.url}/fixtures/fidelity-quirks.html`);
    await mirrorSays((doc) => doc.getElementById('quirks-text')?.textContent, 'A page without a doctype', 'the second page');
    await mirrorSays(card, [false, 'none'], 'x-card undefined again on the new page');
    assert.equal(await inMirror((doc) => doc.compatMode), 'BackCompat');
    await endSession(page, shortId);
  });

  it('the top layer: a modal dialog and a popover show over the backdrop in the mirror, and the agent keeps focus', { timeout: 90000 }, async () => {
    const { page, shortId } = await liveVisitor('/fixtures/fidelity.html');
    // The agent is typing in the console when the visitor opens the dialog.
    await agent.evaluate(() => {
      const i = document.createElement('input');
      i.id = 'agent-typing';
      document.body.append(i);
      i.focus();
    });
    await page.evaluate(() => {
      document.getElementById('dlg').showModal();
      document.getElementById('pop').showPopover();
    });
    const state = (doc) => [doc.getElementById('dlg').matches(':modal'), doc.getElementById('pop').matches(':popover-open')];
    await mirrorSays(state, [true, true], 'the modal dialog and the popover open in the mirror');
    assert.equal(await agent.evaluate(() => document.activeElement.id), 'agent-typing', 'the mirror took no focus from the console');
    // Pixels: the red backdrop covers the page, and the popover (opened after the blue
    // dialog, both centred) is on top of it, as on the visitor's screen.
    const frame = agent.locator(FRAME);
    await frame.scrollIntoViewIfNeeded();
    const box = await frame.boundingBox();
    const vp = page.viewportSize();
    const mirrorAt = async (fx, fy) => pixel(agent, await agent.screenshot({ clip: { x: box.x + box.width * fx, y: box.y + box.height * fy, width: 1, height: 1 } }));
    const visitorAt = async (fx, fy) => pixel(agent, await page.screenshot({ clip: { x: vp.width * fx, y: vp.height * fy, width: 1, height: 1 } }));
    for (const [fx, fy, want, what] of [[0.1, 0.3, [255, 0, 0], 'the backdrop'], [0.5, 0.5, [0, 255, 0], 'the popover on top'], [0.5, 0.5 + 35 / vp.height, [0, 0, 255], 'the dialog under it']]) {
      assert.deepEqual(await visitorAt(fx, fy), want, `${what} on the visitor's page`);
      assert.deepEqual(await L.waitFor(async () => { const p = await mirrorAt(fx, fy); return JSON.stringify(p) === JSON.stringify(want) && p; }, { what: `${what} in the mirror` }), want);
    }
    await agent.evaluate(() => document.getElementById('agent-typing').remove());

    await page.evaluate(() => {
      document.getElementById('pop').hidePopover();
      document.getElementById('dlg').close();
    });
    await mirrorSays(state, [false, false], 'both closed in the mirror');

    // A fullscreen element covers the mirror's viewport, as it covers the visitor's screen.
    await page.click('#fs-go');
    await L.waitFor(() => page.evaluate(() => document.fullscreenElement?.id === 'fs-box'), { what: 'the visitor in full screen' });
    const full = (doc) => {
      const el = doc.getElementById('fs-box');
      const r = el.getBoundingClientRect();
      return [el.hasAttribute('data-covisit-fullscreen'), r.left, r.top, r.width === doc.documentElement.clientWidth, r.height === doc.documentElement.clientHeight];
    };
    await mirrorSays(full, [true, 0, 0, true, true], 'the fullscreen element over the whole mirror');
    await page.evaluate(() => document.exitFullscreen());
    await mirrorSays((doc) => doc.getElementById('fs-box').hasAttribute('data-covisit-fullscreen'), false, 'out of full screen');
    await endSession(page, shortId);
  });

  it("a video's current frame, and whether it plays, reach the mirror", { timeout: 90000 }, async () => {
    const { page, shortId } = await liveVisitor('/fixtures/fidelity.html');
    // A playing video fed by a canvas that is not in the document (its own frames only).
    await page.evaluate(async () => {
      const c = document.createElement('canvas');
      c.width = 160;
      c.height = 90;
      const ctx = c.getContext('2d');
      (function paint() { ctx.fillStyle = 'rgb(0, 160, 0)'; ctx.fillRect(0, 0, 160, 90); requestAnimationFrame(paint); })();
      const v = document.getElementById('vid');
      v.srcObject = c.captureStream(30);
      await v.play();
    });
    const video = (doc) => { const v = doc.getElementById('vid'); return [(v.getAttribute('data-covisit-media') || '').split(' ')[0], /^data:image\/webp;base64,/.test(v.getAttribute('poster') || '')]; };
    await mirrorSays(video, ['playing', true], 'the playing video and its frame as the poster');
    // The stream's first frames may be black: the frame follows while it plays.
    const mirrorVideo = agent.locator(FRAME).contentFrame().locator('#vid');
    await L.waitFor(async () => {
      await mirrorVideo.scrollIntoViewIfNeeded();
      const b = await mirrorVideo.boundingBox();
      const px = await pixel(agent, await agent.screenshot({ clip: { x: b.x + b.width / 2, y: b.y + b.height / 2, width: 1, height: 1 } }));
      return px[1] > 120 && px[0] < 40 && px[2] < 40;
    }, { what: "the video's green frame in the mirror" });
    await page.evaluate(() => document.getElementById('vid').pause());
    await mirrorSays(video, ['paused', true], 'the paused video');
    await endSession(page, shortId);
  });

  it('a canvas appears in the mirror and updates; one inside a masked element never leaves the page', { timeout: 90000 }, async () => {
    const { page, frames, shortId } = await liveVisitor('/fixtures/fidelity.html');
    const draw = (color) => page.evaluate((c) => {
      for (const id of ['cv', 'secret-cv']) {
        const ctx = document.getElementById(id).getContext('2d');
        ctx.fillStyle = id === 'cv' ? c : 'rgb(0, 200, 0)';
        ctx.fillRect(0, 0, 200, 60);
      }
    }, color);
    // What the agent sees at the middle of the mirror's canvas (a document without
    // script draws no canvas bitmap: the console shows the image another way), to within
    // what lossy image encoding changes.
    const mirrorCanvas = agent.locator(FRAME).contentFrame().locator('#cv');
    const seen = async () => {
      await mirrorCanvas.scrollIntoViewIfNeeded();
      const b = await mirrorCanvas.boundingBox();
      const png = await agent.screenshot({ clip: { x: b.x + b.width / 2, y: b.y + b.height / 2, width: 1, height: 1 } });
      return (await pixel(agent, png)).map((v) => Math.round(v / 32) * 32);
    };
    const shows = (want, what) => L.waitFor(async () => JSON.stringify(await seen()) === JSON.stringify(want), { what });
    await draw('rgb(255, 0, 0)');
    await shows([256, 0, 0], 'the red canvas in the mirror');
    await draw('rgb(0, 0, 255)');
    await shows([0, 0, 256], 'the canvas updated to blue');
    // A WebGL canvas drawn in a render loop without preserveDrawingBuffer.
    const gl = agent.locator(FRAME).contentFrame().locator('#gl');
    await L.waitFor(async () => {
      await gl.scrollIntoViewIfNeeded();
      const b = await gl.boundingBox();
      const p = await pixel(agent, await agent.screenshot({ clip: { x: b.x + b.width / 2, y: b.y + b.height / 2, width: 1, height: 1 } }));
      return JSON.stringify(p.map((v) => Math.round(v / 32) * 32)) === JSON.stringify([256, 128, 0]);
    }, { what: 'the orange WebGL canvas in the mirror' });
    // Its size, as the visitor's (the console may show the mirror scaled).
    const scale = await agent.locator(FRAME).evaluate((f) => f.getBoundingClientRect().width / f.offsetWidth);
    const [mb, vb] = [await mirrorCanvas.boundingBox(), await page.locator('#cv').boundingBox()];
    assert.ok(Math.abs(mb.width / scale - vb.width) < 1 && Math.abs(mb.height / scale - vb.height) < 1, `canvas size in the mirror ${JSON.stringify(mb)} at ${scale}, visitor ${JSON.stringify(vb)}`);
    // The masked canvas is a box in the mirror, and no image of it crossed the wire.
    assert.equal(await inMirror((doc) => doc.getElementById('secret-cv')), null);
    const records = sentRecords(frames);
    const ids = L.nodeIds(frames.sent);
    assert.ok(ids.cv, 'the canvas was mirrored');
    assert.equal(ids['secret-cv'], undefined, 'the masked canvas was never sent');
    const images = records.filter((r) => r[0] === 'B');
    assert.ok(images.length >= 2, 'images were sent');
    const from = new Set(images.map((r) => r[1]));
    assert.ok(from.has(ids.cv) && [...from].every((id) => id === ids.cv || id === ids.gl), `images of the two visible canvases only: ${[...from]}`);
    // Nothing else of the page carried image data.
    const other = records.filter((r) => r[0] !== 'B' && JSON.stringify(r).includes('data:image/'));
    assert.deepEqual(other, []);
    await endSession(page, shortId);
  });

  it('documents keep their mode: an iframe with a doctype renders in standards mode, one without in quirks mode', { timeout: 90000 }, async () => {
    const { page, shortId } = await liveVisitor('/fixtures/fidelity.html');
    const modes = (doc) => ['std', 'quirks'].map((id) => doc.getElementById(id)?.contentDocument?.querySelector('p') && doc.getElementById(id).contentDocument.compatMode);
    await mirrorSays(modes, ['CSS1Compat', 'BackCompat'], 'the iframes in their modes');
    assert.equal(await inMirror((doc) => doc.compatMode), 'CSS1Compat');
    assert.equal(await page.evaluate(() => document.getElementById('std').contentDocument.compatMode), 'CSS1Compat');
    await endSession(page, shortId);
  });

  it('states set by script follow: details, select, checkbox, scroll positions (a shadow root too)', { timeout: 90000 }, async () => {
    const { page, shortId } = await liveVisitor('/fixtures/fidelity.html');
    await page.evaluate(() => {
      document.getElementById('details').open = true;
      document.getElementById('select').value = 'b';
      document.getElementById('check').checked = true;
      document.getElementById('scroller').scrollTop = 50;
      document.getElementById('host').shadowRoot.getElementById('shadow-scroller').scrollTop = 30;
    });
    await mirrorSays((doc) => [
      doc.getElementById('details').open,
      doc.getElementById('select').value,
      doc.getElementById('check').checked,
      doc.getElementById('scroller').scrollTop,
      doc.getElementById('host').shadowRoot.getElementById('shadow-scroller').scrollTop,
    ], [true, 'b', true, 50, 30], 'the states in the mirror');
    await endSession(page, shortId);
  });
});

describe('forged fidelity records', () => {
  let tracker;
  const hits = [];
  before(async () => {
    tracker = createServer((req, res) => { hits.push(req.url); res.writeHead(404).end(); });
    await new Promise((r) => tracker.listen(0, '127.0.0.1', r));
  });
  after(() => new Promise((r) => { tracker.closeAllConnections?.(); tracker.close(() => r()); }));

  it('rules, sheets, long rules, images, doctypes, custom element names and the top layer from a forged visitor run nothing and load nothing from other hosts', { timeout: 90000 }, async () => {
    const t = `http://127.0.0.1:${tracker.address().port}`;
    const urls = [];
    agent.context().on('request', (r) => urls.push(r.url()));
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
    const p = "top.__pwned='forged'";
    // Node ids: 1 html, 2 head, 3 style, 4 body, 5 canvas, 6 video, 7 x-foo, 8 dialog,
    // 9 iframe, 10 its document, 11 h1, 12 its text. Parents by distance.
    const tuples = [
      [0, 'html'], [1, 'head'], [2, 'style', { id: 'forged-style' }], [1, 'body'],
      [4, 'canvas', { id: 'fc', width: '40', height: '20' }], [4, 'video', { id: 'fv' }],
      [4, 'x-foo', { id: 'fx' }], [4, 'dialog', { id: 'fd', open: '' }], [4, 'iframe', { id: 'fi' }],
      [9, 2, ['html', `"><script>${p}</script>`, '']], [4, 'h1', { id: 'forged-title' }], [11, 0, 'Forged page'],
    ].map(([parent, ...rest], i) => [i + 1 - parent, ...rest]);
    await forger.send({
      type: 'mirror',
      data: [
        ['S', 1, `${t}/page`, 800, 600, 1, ['html', '', `${t}/dtd"><img src=x onerror="${p}">`]],
        ['N', 1, 0, ...tuples],
        ['Q', 100, `screen and (min-width: 1px)`, 0],
        ['I', 100, 0, [`div { background: url(${t}/q.png) }`, `@import url(${t}/i.css);`, 'h1 { color: rgb(1, 2, 3) }', `} * { background: url(${t}/brace.png) } x {`]],
        ['Y', 0, [100, 999, 'x']],
        ['I', 3, 0, [`@font-face { font-family: X; src: url(${t}/f.woff) }`, `body { background-image: image-set("${t}/s.png" 1x) }`, `p { --x: \\75 rl(${t}/esc.png); background: var(--x) }`]],
        ['H', 3, 3, `div { background: url(${t}/lo`, 0], ['H', 3, 3, 'ng.png) }', 1],
        ['J', 3, 0, 1], ['G', 3, 0, `screen and (min-width: ${t})`],
        ['e', 0, ['x-foo', 'font-face', 'bad name', `<script>${p}</script>`, 'Upper-Case']],
        ['k', 7, ['on', `<img src=x onerror=${p}>`]],
        ['L', [8, 1, 9999, 2, 5, 7]],
        ['B', 5, `data:image/svg+xml,<svg xmlns="http://www.w3.org/2000/svg" onload="${p}"><image href="${t}/svg.png"/></svg>`, 1],
        ['B', 6, `${t}/poster.png`, 1],
        ['m', 6, 0, 5, 10],
        ['E'],
      ],
    });
    const mirror = agent.frameLocator(FRAME);
    await L.waitFor(async () => (await mirror.locator('#forged-title').count()) === 1, { what: 'the forged page in the mirror' });
    // Images fail or decode, styles apply, loads would start; then a request the console
    // makes after all that is seen, and any foreign one would be seen before it.
    await L.settled(agent.locator(FRAME));
    await L.requestBarrier(agent, urls);
    assert.equal(await agent.evaluate(() => window.__pwned), undefined, 'nothing ran in the console');
    const own = new URL(server.url).origin;
    const bad = urls.filter((u) => !/^(data|blob|about):/.test(u) && new URL(u).origin !== own);
    assert.deepEqual(bad, [], `the console asked other hosts: ${bad.join(', ')}`);
    assert.deepEqual(hits, [], 'nothing reached the other host');
    const seen = await inMirror((doc) => ({
      mode: doc.compatMode,
      frameMode: doc.getElementById('fi').contentDocument.compatMode,
      h1: doc.defaultView.getComputedStyle(doc.getElementById('forged-title')).color,
      modal: doc.getElementById('fd').matches(':modal'),
      defined: doc.getElementById('fx').matches(':defined'),
      poster: doc.getElementById('fv').getAttribute('poster'),
      canvasImg: doc.getElementById('fc').hasAttribute('data-covisit-img'),
      scripts: doc.querySelectorAll('script').length,
    }));
    // The page's doctype had a system id that is not plain: standards mode, nothing written.
    assert.deepEqual(seen, { mode: 'CSS1Compat', frameMode: 'CSS1Compat', h1: 'rgb(1, 2, 3)', modal: true, defined: true, poster: null, canvasImg: false, scripts: 0 });
    await L.endLiveSessions(server, welcome.short_id);
    await forger.close();
  });
});

/** The RGB of a 1×1 PNG screenshot, decoded by the browser. */
function pixel(page, png) {
  return page.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const c = new OffscreenCanvas(1, 1);
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    return [...ctx.getImageData(0, 0, 1, 1).data].slice(0, 3);
  }, png.toString('base64'));
}
