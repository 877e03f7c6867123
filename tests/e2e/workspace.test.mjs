// The agent's workspace (issue 16), end to end in Chromium against the real server: the
// mirror-first session view at common window sizes (and a screenshot of it for people,
// in target/e2e-artifacts/), pointing and drawing without control as the visitor sees
// it (same place relative to the content, fading, pinning, hiding), several agents'
// inks, allowAgentDrawing refused by the SDK even for a forged frame, the visitor's tabs
// and control tied to its tab, and an accessibility scan (axe-core) of the console.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as L from './lib.mjs';

let server;
let browser;
let agent;
L.useServerAndConsole((env) => ({ server, browser, agent } = env));

const ARTIFACTS = join(L.ROOT, 'target/e2e-artifacts');
const AXE = readFileSync(join(L.ROOT, 'node_modules/axe-core/axe.min.js'), 'utf8');

const LIVE_FRAME = '.mirror-session:not([hidden]) .mirror-viewport:not([hidden]) iframe[data-testid="mirror-frame"]';

function mirrorFrame(page = agent) {
  return page.frameLocator(LIVE_FRAME);
}

async function waitLive(page = agent) {
  await page.locator(LIVE_FRAME.replace('[data-testid="mirror-frame"]', '[data-state="live"]')).waitFor({ timeout: 15000 });
}

/** A visitor on `path` (optionally with an SDK config), in a live session with `console`. */
async function liveVisitor(path, { console: cons = agent, config } = {}) {
  const page = await L.openVisitor(browser);
  const url = server.url + path + (config ? `?config=${encodeURIComponent(JSON.stringify(config))}` : '');
  await page.goto(url);
  await L.waitFor(() => page.evaluate(() => typeof window.Covisit === 'function' && !window.Covisit.q), { what: 'the SDK to load' });
  const code = await page.evaluate(() => new Promise((r) => window.Covisit('getLookupCode', r)));
  const shortId = (await L.sdkState(page)).visitor.short_id;
  await L.requestByLookupCode(cons, code, shortId);
  await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
  await L.waitForConsoleStatus(cons, 'active');
  await waitLive(cons);
  return { page, shortId };
}

async function endSession(page, shortId) {
  await L.endLiveSessions(server, shortId);
  await page.context().close();
}

/** The mirror's scale in the console (the frame's CSS transform). */
async function mirrorScale(page = agent) {
  const t = await page.locator(LIVE_FRAME).evaluate((f) => f.style.transform);
  return Number(/scale\(([\d.]+)\)/.exec(t)[1]);
}

/** The inks on the visitor's page: where each starts (viewport px), its name tag, state. */
function visitorInks(page) {
  return page.evaluate(() => {
    const root = document.querySelector('covisit-ui')?.shadowRoot;
    if (!root) return [];
    return [...root.querySelectorAll('[data-covisit="ink"]')].map((el) => {
      const r = el.getBoundingClientRect();
      const paths = el.querySelectorAll('path');
      const m = /^M(-?\d+) (-?\d+)/.exec(paths[1].getAttribute('d') || '');
      return {
        x: r.left + Number(m?.[1] ?? NaN), y: r.top + Number(m?.[2] ?? NaN),
        name: el.querySelector('[data-covisit="ink-name"]').textContent,
        nameHtml: el.querySelector('[data-covisit="ink-name"]').children.length,
        color: paths[1].getAttribute('stroke'), state: el.dataset.state, pinned: el.dataset.pinned, agent: el.dataset.agent,
      };
    });
  });
}

/** Draws a stroke with the console's mouse from `from` to `to` (page pixels), in steps. */
async function drag(page, from, to, steps = 8) {
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  for (let i = 1; i <= steps; i++) await page.mouse.move(from.x + ((to.x - from.x) * i) / steps, from.y + ((to.y - from.y) * i) / steps);
  await page.mouse.up();
}

async function features(sessionShortId) {
  const s = await L.rest(server, `/api/v1/sessions?visitor_id=${sessionShortId}`);
  return s.body.sessions[0].features_used;
}

/** axe-core's serious and critical violations on the console page as it is now. The
 * mirror of the visitor's page is left out: its content is the visitor's site's. */
async function axeProblems(page) {
  await page.evaluate(AXE); // page.evaluate is not held by the page's CSP, a script tag would be
  const result = await page.evaluate(() => window.axe.run({ exclude: [['iframe[data-testid="mirror-frame"]']] }, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | ')}`);
}

describe('the agent workspace', () => {
  it('once the session is active the mirror is in view without scrolling at 1280×800 and 1920×1080, fit and 1:1, and a screenshot at 1440×900 is kept', { timeout: 90000 }, async () => {
    await agent.setViewportSize({ width: 1280, height: 800 });
    const { page, shortId } = await liveVisitor('/fixtures/mirror.html');
    try {
      assert.equal(await agent.getByTestId('visitor-view').getAttribute('data-layout'), 'session');
      // The session's actions moved into the bar with the tools.
      assert.ok(await agent.getByTestId('session-toolbar').getByTestId('end-session').isVisible());
      assert.ok(await agent.getByTestId('session-toolbar').getByTestId('request-control').isVisible());
      for (const [width, height] of [[1280, 800], [1920, 1080], [1440, 900]]) {
        await agent.setViewportSize({ width, height });
        const box = await L.waitFor(async () => {
          const b = await agent.locator('.mirror-session:not([hidden]) .mirror-viewport:not([hidden])').boundingBox();
          const fits = b && b.x >= 0 && b.y >= 0 && b.x + b.width <= width + 0.5 && b.y + b.height <= height + 0.5;
          return fits && b;
        }, { what: `the mirror inside a ${width}×${height} window` });
        const scroll = await agent.evaluate(() => [document.scrollingElement.scrollTop, document.scrollingElement.scrollHeight, innerHeight]);
        assert.equal(scroll[0], 0, 'the console did not scroll');
        assert.ok(scroll[1] <= scroll[2] + 1, `the console page does not scroll at ${width}×${height}: ${scroll}`);
        // It takes the largest part of the window.
        assert.ok(box.width * box.height > 0.4 * width * height, `the mirror is ${box.width}×${box.height} in ${width}×${height}`);
        if (width === 1920) assert.equal(await mirrorScale(), 1, 'a 1280 px visitor is shown 1:1 on a 1920 px screen');
      }
      mkdirSync(ARTIFACTS, { recursive: true });
      await agent.screenshot({ path: join(ARTIFACTS, 'session-1440x900.png') });

      // 1:1 shows the page at its size (the stage scrolls), Fit brings it back; by keyboard too.
      await agent.setViewportSize({ width: 1280, height: 800 });
      await agent.getByTestId('view-actual').click();
      await L.waitFor(async () => (await mirrorScale()) === 1, { what: 'the mirror at 1:1' });
      assert.equal(await agent.getByTestId('mirror-stage').first().getAttribute('data-zoom'), 'actual');
      await agent.locator('body').press('f');
      await L.waitFor(async () => (await mirrorScale()) < 1, { what: 'the mirror fitted again (F)' });
      assert.equal(await agent.getByTestId('view-fit').getAttribute('aria-pressed'), 'true');
      // The details panel folds away and comes back; the help lists the shortcuts.
      await agent.getByTestId('toggle-panel').click();
      assert.equal(await agent.locator('#side-panel').isVisible(), false);
      await agent.locator('body').press(']');
      assert.equal(await agent.locator('#side-panel').isVisible(), true);
      await agent.locator('body').press('?');
      await agent.getByTestId('shortcuts').waitFor({ state: 'visible' });
      assert.match(await agent.getByTestId('shortcuts').textContent(), /Laser pointer/);
      await agent.keyboard.press('Escape');
      await agent.getByTestId('shortcuts').waitFor({ state: 'hidden' });
    } finally {
      await agent.setViewportSize({ width: 1280, height: 800 });
      await endSession(page, shortId);
    }
    // After the session the view is as it was before.
    await L.waitFor(async () => (await agent.getByTestId('visitor-view').getAttribute('data-layout')) === 'browse', { what: 'the browse layout back' });
    assert.ok(await agent.locator('.session-card [data-testid="request-session"]').count() === 1, 'the session actions are back in the session card');
  });

  it('a stroke shows on the visitor\'s page at the same place relative to the content, stays on it when the visitor scrolls, fades; pinned ink stays; the visitor hides it in one click', { timeout: 90000 }, async () => {
    const { page, shortId } = await liveVisitor('/fixtures/mirror.html');
    try {
      const target = await mirrorFrame().locator('#counter').boundingBox();
      const scale = await mirrorScale();
      await agent.getByTestId('tool-pen').click();
      const from = { x: target.x + 6, y: target.y + 4 };
      await drag(agent, from, { x: from.x + 90, y: from.y + 30 });
      const [ink] = await L.waitFor(async () => {
        const inks = await visitorInks(page);
        return inks.length === 1 && inks[0].state !== 'drawing' && inks;
      }, { what: "the stroke on the visitor's page" });
      const counter = await page.locator('#counter').boundingBox();
      // The same place relative to the element drawn on: the console's offset, unscaled.
      const want = { x: (from.x - target.x) / scale, y: (from.y - target.y) / scale };
      assert.ok(Math.abs(ink.x - counter.x - want.x) <= 2 && Math.abs(ink.y - counter.y - want.y) <= 2,
        `ink at ${ink.x - counter.x},${ink.y - counter.y} from #counter, the agent drew at ${want.x},${want.y}`);
      assert.equal(ink.name, agent.user.user.name);
      // The visitor scrolls: the ink stays on the content.
      await page.evaluate(() => window.scrollTo(0, 150));
      await L.waitFor(async () => {
        const [moved] = await visitorInks(page);
        const c = await page.locator('#counter').boundingBox();
        return moved && Math.abs(moved.y - c.y - want.y) <= 2 && Math.abs(moved.x - c.x - want.x) <= 2;
      }, { what: 'the ink to follow the scroll' });
      // Unpinned, it fades and goes.
      await L.waitFor(async () => (await visitorInks(page)).length === 0, { timeoutMs: 9000, what: 'the stroke to fade away' });
      assert.ok((await features(shortId)).includes('drawing'));

      // Pinned ink stays: a pinned stroke, then an unpinned one; once the later unpinned
      // one has faded, the earlier pinned one is still there.
      await page.evaluate(() => window.scrollTo(0, 0));
      await agent.getByTestId('pin-ink').click();
      assert.equal(await agent.getByTestId('pin-ink').getAttribute('aria-pressed'), 'true');
      const t2 = await mirrorFrame().locator('#greeting').boundingBox();
      await drag(agent, { x: t2.x + 5, y: t2.y + 5 }, { x: t2.x + 80, y: t2.y + 10 });
      await L.waitFor(async () => (await visitorInks(page)).some((i) => i.pinned === 'true' && i.state === 'shown'), { what: 'the pinned stroke' });
      await agent.locator('body').press('p');
      assert.equal(await agent.getByTestId('pin-ink').getAttribute('aria-pressed'), 'false');
      const t3 = await mirrorFrame().locator('#item-1').boundingBox();
      await drag(agent, { x: t3.x + 5, y: t3.y + 5 }, { x: t3.x + 60, y: t3.y + 5 });
      await L.waitFor(async () => (await visitorInks(page)).length === 2, { what: 'both strokes' });
      await L.waitFor(async () => (await visitorInks(page)).length === 1, { timeoutMs: 9000, what: 'the unpinned stroke to fade' });
      assert.equal((await visitorInks(page))[0].pinned, 'true', 'the pinned stroke stayed');

      // The visitor hides the drawings with one click, and can show them again.
      const hide = L.sdkUi(page, 'hide-drawings');
      assert.equal((await hide.textContent()).trim(), 'Hide drawings');
      const inkPath = page.locator('covisit-ui [data-covisit="ink"] path').last();
      await inkPath.waitFor({ state: 'visible' });
      await hide.click();
      await inkPath.waitFor({ state: 'hidden' });
      assert.equal((await hide.textContent()).trim(), 'Show drawings');
      await hide.click();
      await inkPath.waitFor({ state: 'visible' });
      // The agent clears its ink.
      await agent.getByTestId('clear-ink').click();
      await L.waitFor(async () => (await visitorInks(page)).length === 0, { what: 'the cleared ink gone' });
      await agent.keyboard.press('Escape');
      assert.equal(await agent.getByTestId('tool-pen').getAttribute('aria-pressed'), 'false');
      assert.deepEqual(page.errors, []);
    } finally {
      await endSession(page, shortId);
    }
  });

  it('the laser dot follows the agent\'s pointer on the visitor\'s page', { timeout: 60000 }, async () => {
    const { page, shortId } = await liveVisitor('/fixtures/mirror.html');
    try {
      await agent.locator('body').press('l');
      assert.equal(await agent.getByTestId('tool-laser').getAttribute('aria-pressed'), 'true');
      const scale = await mirrorScale();
      const laserAt = () => page.evaluate(() => {
        const el = document.querySelector('covisit-ui')?.shadowRoot?.querySelector('[data-covisit="laser"]');
        if (!el || el.classList.contains('off')) return null;
        const r = el.getBoundingClientRect();
        return { x: r.left + scrollX, y: r.top + scrollY, name: el.querySelector('[data-covisit="ink-name"]').textContent };
      });
      // The laser is anchored to the page (document coordinates): the dot is where the
      // agent's pointer is in the mirrored page, wherever the visitor has scrolled.
      for (const [id, scrollTo] of [['#title', 0], ['#counter', 0], ['#scroller', 120]]) {
        if (scrollTo) {
          await page.evaluate((y) => window.scrollTo(0, y), scrollTo);
          await L.waitFor(() => agent.locator(LIVE_FRAME).evaluate((f, y) => f.contentWindow.scrollY === y, scrollTo), { what: 'the mirror scrolled' });
        }
        const box = await mirrorFrame().locator(id).boundingBox();
        const frame = await agent.locator(LIVE_FRAME).boundingBox();
        const at = { x: box.x + 12, y: box.y + 6 };
        await agent.mouse.move(at.x - 20, at.y - 10);
        await agent.mouse.move(at.x, at.y, { steps: 4 });
        const want = { x: (at.x - frame.x) / scale, y: (at.y - frame.y) / scale + scrollTo };
        const seen = await L.waitFor(async () => {
          const l = await laserAt();
          return l && Math.abs(l.x - want.x) <= 2 && Math.abs(l.y - want.y) <= 2 && l;
        }, { what: `the laser dot over ${id} at ${JSON.stringify(want)}` });
        assert.equal(seen.name, agent.user.user.name);
      }
      // The agent sees its own dot in the mirror too.
      assert.ok(await agent.locator('.mirror-session:not([hidden]) [data-testid="ink-laser"]').count() >= 1);
      assert.ok((await features(shortId)).includes('laser'));
      await agent.getByTestId('tool-laser').click();
      assert.equal(await agent.getByTestId('tool-laser').getAttribute('aria-pressed'), 'false');
    } finally {
      await endSession(page, shortId);
    }
  });

  it('two agents\' inks carry their own names and colours, on the visitor\'s page and in each other\'s console', { timeout: 90000 }, async () => {
    const { page, shortId } = await liveVisitor('/fixtures/mirror.html');
    const ola = await L.openConsole(browser, server, 'Ola', 'supervisor');
    try {
      await ola.setViewportSize({ width: 1280, height: 800 });
      await ola.getByTestId('visitor-search').fill(shortId);
      await ola.locator(`[data-testid="visitor-row"][data-short-id="${shortId}"]`).click();
      await ola.getByTestId('join-session').click();
      await waitLive(ola);
      for (const [who, target] of [[agent, '#greeting'], [ola, '#item-2']]) {
        await who.getByTestId('tool-pen').click();
        await who.getByTestId('pin-ink').click();
        const b = await mirrorFrame(who).locator(target).boundingBox();
        await drag(who, { x: b.x + 4, y: b.y + 4 }, { x: b.x + 70, y: b.y + 12 });
      }
      const inks = await L.waitFor(async () => {
        const all = await visitorInks(page);
        return all.length === 2 && all.every((i) => i.state === 'shown') && all;
      }, { what: "both agents' strokes on the visitor's page" });
      const names = inks.map((i) => i.name).sort();
      assert.deepEqual(names, [agent.user.user.name, ola.user.user.name].sort());
      assert.notEqual(inks[0].color, inks[1].color, 'each agent has its own colour');
      assert.notEqual(inks[0].agent, inks[1].agent);
      // Each console shows the other's ink with the other's name.
      const tagIn = (who) => who.locator('.mirror-session:not([hidden]) [data-testid="ink"] .tag').allTextContents();
      await L.waitFor(async () => (await tagIn(agent)).includes(ola.user.user.name), { what: "Ola's ink in Dana's console" });
      await L.waitFor(async () => (await tagIn(ola)).includes(agent.user.user.name), { what: "Dana's ink in Ola's console" });
      // For a person to look at: both sides with two agents' ink.
      mkdirSync(ARTIFACTS, { recursive: true });
      await agent.screenshot({ path: join(ARTIFACTS, 'session-two-agents-ink.png') });
      await page.screenshot({ path: join(ARTIFACTS, 'visitor-two-agents-ink.png') });
      for (const who of [agent, ola]) {
        await who.getByTestId('clear-ink').click();
        await who.getByTestId('pin-ink').click();
        await who.keyboard.press('Escape');
      }
      await L.waitFor(async () => (await visitorInks(page)).length === 0, { what: 'both cleared' });
    } finally {
      await ola.context().close();
      await endSession(page, shortId);
    }
  });

  it('allowAgentDrawing: false: the console is refused, and the SDK refuses drawing even when a forged frame asks for it', { timeout: 90000 }, async () => {
    // The visitor's socket runs through the test (Playwright's WebSocket route) so that a
    // frame the server would never send can be put in front of the SDK.
    const open = async (config) => {
      const page = await L.openVisitor(browser);
      const fetched = [];
      page.on('requestfinished', (r) => fetched.push(r.url()));
      let route = null;
      await page.routeWebSocket(/\/ws\/visitor$/, (ws) => { route = ws; ws.connectToServer(); });
      await page.addInitScript(() => {
        window.errors = [];
        window.Covisit = window.Covisit || function () { (window.Covisit.q = window.Covisit.q || []).push(arguments); };
        window.Covisit('on', 'error', (e) => window.errors.push(e.code));
      });
      await page.goto(`${server.url}/fixtures/mirror.html?config=${encodeURIComponent(JSON.stringify(config))}`);
      await L.waitFor(() => page.evaluate(() => typeof window.Covisit === 'function' && !window.Covisit.q), { what: 'the SDK to load' });
      const code = await page.evaluate(() => new Promise((r) => window.Covisit('getLookupCode', r)));
      const shortId = (await L.sdkState(page)).visitor.short_id;
      await L.requestByLookupCode(agent, code, shortId);
      await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
      await L.waitForConsoleStatus(agent, 'active');
      await waitLive();
      let barrier = 0;
      return {
        page, shortId, fetched,
        inject: (frame) => route.send(JSON.stringify(frame)),
        /** Sends an error frame after what was injected and waits for the page to hear it:
         * everything injected before it has been handled then. */
        settle: async () => {
          const code = `e2e_barrier_${++barrier}`;
          route.send(JSON.stringify({ type: 'error', code, message: 'barrier' }));
          await L.waitFor(() => page.evaluate((c) => window.errors.includes(c), code), { what: `the page to handle ${code}` });
        },
      };
    };
    const hostile = '<img src=x onerror="window.__pwned=1">Mallory';
    const forged = (ink, name = hostile) => ({ type: 'draw', agent_id: 'u_forger', name, color: 3, ink });
    const stroke = { kind: 'stroke', id: 9, node: 0, ox: 0, oy: 0, shape: 'free', pinned: true, done: true, points: [[40, 40], [200, 60]] };

    // Drawing off: the server refuses the console, and the SDK shows nothing of a forged
    // frame; it never even loads the drawing layer.
    const off = await open({ allowAgentDrawing: false });
    try {
      await agent.getByTestId('tool-pen').click();
      const b = await mirrorFrame().locator('#greeting').boundingBox();
      await drag(agent, { x: b.x + 4, y: b.y + 4 }, { x: b.x + 60, y: b.y + 10 });
      await L.waitFor(async () => /does not allow/.test(await agent.getByTestId('tb-note').textContent()), { what: 'the console told drawing is refused' });
      off.inject(forged(stroke));
      off.inject(forged({ kind: 'laser', node: 0, ox: 0, oy: 0, x: 10, y: 10 }));
      await off.settle();
      assert.deepEqual(await visitorInks(off.page), []);
      assert.equal(await off.page.locator('covisit-ui [data-covisit="draw-layer"], covisit-ui [data-covisit="laser"]').count(), 0);
      assert.ok(!off.fetched.some((u) => u.includes('covisit-draw')), 'the drawing layer was never loaded');
      assert.equal(await off.page.evaluate(() => window.__pwned), undefined);
      assert.ok(!(await features(off.shortId)).includes('drawing'));
      await agent.keyboard.press('Escape');
    } finally {
      await endSession(off.page, off.shortId);
    }

    // Drawing on (the default), the same forged frame shows, its name as text; huge and
    // malformed frames break nothing and run nothing.
    const on = await open({});
    try {
      await L.waitFor(() => on.fetched.some((u) => u.endsWith('/sdk/covisit-draw.js')), { what: 'the drawing layer fetched once the session is active' });
      on.inject(forged({ ...stroke, points: Array.from({ length: 3000 }, (_, i) => [i, i]) }));
      on.inject({ type: 'draw', agent_id: 'u_forger', name: 'x', color: 99, ink: stroke });
      on.inject({ type: 'draw', agent_id: 'u_forger', name: { toString: 'x' }, color: 1, ink: stroke });
      on.inject(forged({ kind: 'stroke', id: 'x', node: -1, ox: 'a', oy: null, shape: '<b>', pinned: 'yes', done: true, points: [['a', {}], 5, [1e12, -1e12]] }));
      on.inject(forged({ kind: 'eval', code: 'window.__pwned=2' }));
      on.inject(forged(stroke));
      await on.settle();
      const inks = await L.waitFor(async () => {
        const all = await visitorInks(on.page);
        return all.some((i) => i.name === hostile) && all;
      }, { what: 'the forged stroke shown' });
      const shown = inks.find((i) => i.name === hostile);
      assert.equal(shown.nameHtml, 0, 'the name is text, not markup');
      const errors = await on.page.evaluate(() => window.errors);
      assert.ok(errors.filter((c) => c === 'malformed_frame').length >= 3, `oversized and malformed frames were refused: ${errors}`);
      assert.equal(await on.page.evaluate(() => window.__pwned), undefined, 'nothing ran');
      assert.deepEqual(on.page.errors, []);
      // The page still works: the agent's own ink shows.
      await agent.getByTestId('tool-pen').click();
      const b = await mirrorFrame().locator('#greeting').boundingBox();
      await drag(agent, { x: b.x + 4, y: b.y + 4 }, { x: b.x + 60, y: b.y + 10 });
      await L.waitFor(async () => (await visitorInks(on.page)).some((i) => i.name === agent.user.user.name), { what: "the agent's stroke" });
      await agent.keyboard.press('Escape');
    } finally {
      await endSession(on.page, on.shortId);
    }
  });

  it('the visitor\'s tabs: listed with title and address, the agent switches the mirrored page, control stays in its tab', { timeout: 120000 }, async () => {
    const frames = await L.captureFrames(agent);
    const { page: a, shortId } = await liveVisitor('/fixtures/mirror.html');
    try {
      const tabA = (await L.sdkState(a)).connection.uniqueConnectionId;
      // The visitor opens a second tab, then goes back to the first (headless pages all
      // have focus: play the browser's part) and grants control there.
      const b = await a.context().newPage();
      await b.goto(`${server.url}/fixtures/mirror-next.html`);
      await L.waitFor(() => b.evaluate(() => typeof window.Covisit === 'function' && !window.Covisit.q), { what: 'the SDK in the second tab' });
      const tabB = await L.waitFor(async () => (await L.sdkState(b)).connection?.uniqueConnectionId, { what: "the second tab's id" });
      const tabs = agent.locator('.mirror-session:not([hidden]) [data-testid="mirror-tab"]');
      await L.waitFor(async () => (await tabs.count()) === 2 && (await tabs.evaluateAll((els) => els.every((e) => !e.disabled))), { what: 'two tabs listed' });
      // (The first tab never lost focus as far as its own page knows, so it blurs first
      // for its focus to be news to the server.)
      await a.bringToFront();
      await b.evaluate(() => window.dispatchEvent(new Event('blur')));
      await a.evaluate(() => window.dispatchEvent(new Event('blur')));
      await a.evaluate(() => window.dispatchEvent(new Event('focus')));
      await L.waitFor(async () => (await agent.locator(`[data-testid="mirror-tab"][data-tab="${tabA}"]`).getAttribute('data-focused')) === 'true'
        && (await agent.locator(`[data-testid="mirror-tab"][data-tab="${tabB}"]`).getAttribute('data-focused')) === 'false', { what: 'the visitor back in the first tab' });
      await agent.getByTestId('request-control').click();
      await L.sdkUi(a, 'control-prompt').getByRole('button', { name: 'Allow control' }).click();
      await L.waitFor(async () => (await agent.getByTestId('control-status').getAttribute('data-control')) === 'you', { what: 'control granted' });
      await L.waitFor(async () => /You control this tab/.test(await agent.locator(`[data-testid="mirror-tab"][data-tab="${tabA}"]`).textContent()), { what: 'the controlled tab marked' });
      const list = await tabs.evaluateAll((els) => els.map((e) => ({ tab: e.dataset.tab, text: e.textContent, pressed: e.getAttribute('aria-pressed') })));
      const rowA = list.find((r) => r.tab === tabA);
      const rowB = list.find((r) => r.tab === tabB);
      assert.ok(rowA && /covisit e2e: mirror/.test(rowA.text) && /fixtures\/mirror\.html/.test(rowA.text) && /You control this tab/.test(rowA.text), JSON.stringify(list));
      assert.ok(rowB && /second page/.test(rowB.text) && /mirror-next\.html/.test(rowB.text), JSON.stringify(list));
      assert.equal(rowA.pressed, 'true', 'the controlled tab is shown');

      // The agent switches to the second tab: the mirror shows it; the server is told
      // (set_active_connection) and says so back; control stays in the first tab.
      await agent.locator(`[data-testid="mirror-tab"][data-tab="${tabB}"]`).click();
      await L.waitFor(async () => (await mirrorFrame().locator('#second').count()) === 1, { what: 'the second tab mirrored' });
      await L.waitFor(() => frames.sent.some((f) => f.type === 'set_active_connection' && f.uniqueConnectionId === tabB), { what: 'set_active_connection sent' });
      const echoed = await L.waitFor(() => frames.received.find((f) => f.type === 'session_update' && Object.values(f.watching || {}).includes(tabB)), { what: 'the server recording the watched tab' });
      assert.equal(echoed.control.tab, tabA, 'control stays in the tab it was granted in');
      assert.equal(await agent.getByTestId('control-status').getAttribute('data-control'), 'you');
      assert.equal(await agent.locator('.mirror-session:not([hidden]) .mirror-viewport:not([hidden])').getAttribute('data-control'), 'false', 'the watched tab is view-only');
      // A click in the watched tab's mirror acts on nothing: no action leaves the console.
      const sentBefore = frames.sent.length;
      await mirrorFrame().locator('#second').click({ force: true });
      // Back to the controlled tab: control works there.
      await agent.locator(`[data-testid="mirror-tab"][data-tab="${tabA}"]`).click();
      await mirrorFrame().locator('#counter').waitFor();
      await mirrorFrame().locator('#counter').click();
      await L.waitFor(async () => (await a.locator('#counter').textContent()) === 'Clicked 1 times', { what: 'the click in the controlled tab' });
      const actions = frames.sent.slice(sentBefore).filter((f) => f.type === 'remote_action');
      assert.ok(actions.length >= 1 && actions.every((f) => f.tab === tabA), `remote actions only for the controlled tab: ${JSON.stringify(actions)}`);
      // Follow the visitor again.
      await agent.getByTestId('follow-visitor').click();
      await L.waitFor(() => frames.received.some((f) => f.type === 'session_update' && Object.keys(f.watching || {}).length === 0 && f.connections?.length === 2), { what: 'following the visitor again' });
      // A closed tab leaves the list.
      await b.close();
      await L.waitFor(async () => (await tabs.count()) === 1, { what: 'the closed tab gone from the list' });
    } finally {
      await endSession(a, shortId);
    }
  });

  it('axe-core finds no serious or critical problem on the sign-in, visitor list and session views', { timeout: 90000 }, async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(10000);
    await page.setViewportSize({ width: 1440, height: 900 });
    try {
      await page.goto(`${server.url}/agent/`);
      await page.getByTestId('signin-email').waitFor();
      assert.deepEqual(await axeProblems(page), [], 'sign-in view');
      const who = await L.createUser(server, 'Axel', 'agent');
      await L.signInConsole(page, who.email, who.password);
      const visitor = await L.openVisitor(browser, `${server.url}/fixtures/mirror.html`);
      await page.locator('[data-testid="visitor-row"]').first().waitFor();
      assert.deepEqual(await axeProblems(page), [], 'visitor list view');
      await L.waitFor(() => visitor.evaluate(() => typeof window.Covisit === 'function' && !window.Covisit.q), { what: 'the SDK to load' });
      const code = await visitor.evaluate(() => new Promise((r) => window.Covisit('getLookupCode', r)));
      await L.requestByLookupCode(page, code);
      await L.sdkUi(visitor, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
      await L.waitForConsoleStatus(page, 'active');
      await waitLive(page);
      assert.deepEqual(await axeProblems(page), [], 'session view');
      await page.getByTestId('tool-pen').click();
      await page.getByTestId('view-actual').click();
      assert.deepEqual(await axeProblems(page), [], 'session view with a tool and 1:1');
      const shortId = (await L.sdkState(visitor)).visitor.short_id;
      await endSession(visitor, shortId);
    } finally {
      await context.close();
    }
  });
});
