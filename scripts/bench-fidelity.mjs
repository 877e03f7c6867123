// Mirror fidelity benchmark: `npm run bench:fidelity [-- --pages bootstrap,chart] [-- --tolerance 16] [-- --costs-only]`.
//
// A corpus of real pages the project builds itself from npm packages (bench/fidelity/:
// Bootstrap, a React app styled with styled-components in production mode, Shoelace web
// components, Chart.js canvases and a WebGL canvas, native dialogs and popovers, same-origin
// iframes), served from a loopback origin other than the covisit server's. Each page is
// shared with an agent through the real server and console (headless Chromium, the built
// SDK, a debug server), and recorded at the same time by rrweb's recorder (the `rrweb`
// devDependency, default options), whose events rrweb's Replayer renders in a page of its
// own on a third origin. Before and after one interaction per page, three screenshots of
// the same size: the visitor's tab, our console's mirror, rrweb's replay; the score is the
// share of the visitor's pixels that the mirror shows within a tolerance (every channel
// within 16 of 255 by default). Prints a table per page and the medians, what each side
// loads from hosts other than its own, and the costs of the capture's fidelity work
// (following CSSOM rules, canvas images per frame). Saves the images and results.json
// under target/bench-fidelity/. Figures, not assertions.
import { existsSync, readFileSync, writeFileSync, mkdirSync, rmSync, cpSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';
import pngjs from 'pngjs';
import * as L from '../tests/e2e/lib.mjs';

const { PNG } = pngjs;
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const TOLERANCE = Number(opt('--tolerance', '16'));
const ROOT = L.ROOT;
const OUT = join(ROOT, 'target/bench-fidelity');
const SITE = join(OUT, 'site');
const CORPUS = join(ROOT, 'bench/fidelity');
const NM = join(ROOT, 'node_modules');
const VIEW = { width: 1024, height: 720 };
const FRAME = '.mirror-session:not([hidden]) .mirror-viewport:not([hidden]) iframe[data-testid="mirror-frame"]';
// The console's mirror is put at the top left of the console's window for the screenshots
// (whole pixels: a mirror at a fractional position is drawn blurred), without the
// visitor's pointer drawn over it: the mirror is compared, not the console around it.
const MIRROR_AT = 2; // inside the viewport's 2 px border
/** Puts the shown mirror at the console's top left and hides the pointer (through the
 * CSSOM: the console's Content-Security-Policy refuses an injected <style>). */
function placeMirror(agent) {
  return agent.locator(FRAME).evaluate((f) => {
    const wrap = f.parentElement;
    for (const [k, v] of [['position', 'fixed'], ['left', '0'], ['top', '0'], ['z-index', '2147483647']]) wrap.style.setProperty(k, v, 'important');
    wrap.querySelector('.mirror-pointer').style.setProperty('display', 'none', 'important');
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The pages, each with its one interaction, and how long the mirrors get to settle
// (canvas images come at most every 0.5 s; Chart.js animates for 1 s).
const PAGES = [
  { name: 'bootstrap', file: 'bootstrap.html', what: 'Bootstrap 5 page: navbar, cards, accordion, form; opens its modal',
    interact: (p) => p.click('#open-modal'), settle: 2000 },
  { name: 'styled', file: 'styled.html', what: 'React 19 + styled-components 6 (production: insertRule); opens a panel rendered for the first time',
    interact: (p) => p.click('#details'), settle: 2000 },
  { name: 'components', file: 'components.html', what: 'Shoelace 2 web components (shadow roots, adopted sheets, :not(:defined)); opens sl-dialog',
    interact: (p) => p.click('#upgrade-button'), settle: 2500, ready: (p) => p.waitForFunction(() => customElements.get('sl-dialog') && document.querySelectorAll('sl-icon').length > 0) },
  { name: 'chart', file: 'chart.html', what: 'Chart.js 4 bar, doughnut and line charts, a WebGL canvas; hides a dataset from the legend',
    interact: clickLegend, settle: 3500 },
  { name: 'dialogs', file: 'dialogs.html', what: 'native <details>, <select> and checkboxes set by script, a scrolled list, a popover; opens a modal <dialog>',
    interact: (p) => p.click('#delete'), settle: 2000 },
  { name: 'iframes', file: 'iframes.html', what: 'two same-origin iframes with doctypes (a table, a chat scrolled to its end); switches the pricing inside one',
    interact: (p) => p.frameLocator('#pricing').locator('#yearly').click(), settle: 2000 },
  // Not self-contained: a photo and a CSS background by URL (issue 15 item 5, not done).
  { name: 'assets', file: 'assets.html', what: 'a product page with a photo and a CSS background by URL; adds to the cart',
    interact: (p) => p.click('#add'), settle: 2000, byUrl: true },
];
const only = opt('--pages', '');
// --costs-only: the cost measurements alone (no page compared).
const pages = args.includes('--costs-only') ? [] : only ? PAGES.filter((p) => only.split(',').includes(p.name)) : PAGES;

/** Chart.js: click the first legend item of the bar chart (hides that dataset). */
async function clickLegend(page) {
  const hit = await page.evaluate(() => {
    const c = window.charts.bar;
    const b = c.legend.legendHitBoxes[0];
    const r = c.canvas.getBoundingClientRect();
    return { x: r.left + b.left + b.width / 2, y: r.top + b.top + b.height / 2 };
  });
  await page.mouse.click(hit.x, hit.y);
}

// ----- the corpus --------------------------------------------------------------------------

/** Builds the corpus into target/bench-fidelity/site: bundles, library files, and each page
 * twice: with the SDK (from `server`) and without it (`*.plain.html`, for the cost runs). */
async function buildCorpus(server) {
  rmSync(SITE, { recursive: true, force: true });
  mkdirSync(SITE, { recursive: true });
  const common = { bundle: true, minify: true, format: 'iife', target: 'es2022', logLevel: 'warning', legalComments: 'none' };
  await build({ ...common, entryPoints: [join(CORPUS, 'src/styled-app.jsx')], outfile: join(SITE, 'styled-app.js'), jsx: 'automatic', define: { 'process.env.NODE_ENV': '"production"' } });
  // ignoreAnnotations: the project's package.json "sideEffects" would drop base-path.js.
  await build({ ...common, entryPoints: [join(CORPUS, 'src/components.js')], outfile: join(SITE, 'components.js'), ignoreAnnotations: true });
  cpSync(join(NM, 'bootstrap/dist/js/bootstrap.bundle.min.js'), join(SITE, 'bootstrap.bundle.min.js'));
  cpSync(join(NM, 'chart.js/dist/chart.umd.min.js'), join(SITE, 'chart.umd.min.js'));
  cpSync(join(NM, '@shoelace-style/shoelace/dist/assets/icons'), join(SITE, 'shoelace/assets/icons'), { recursive: true });
  const strip = (css) => css.replace(/\/\*# sourceMappingURL=[^*]*\*\//g, '');
  const inline = {
    '/*BOOTSTRAP_CSS*/': strip(readFileSync(join(NM, 'bootstrap/dist/css/bootstrap.min.css'), 'utf8')),
    '/*SHOELACE_CSS*/': strip(readFileSync(join(NM, '@shoelace-style/shoelace/dist/themes/light.css'), 'utf8')),
  };
  const sdk = `<script>window.Covisit = window.Covisit || function () { (Covisit.q = Covisit.q || []).push(arguments); };
Covisit('init', { apiKey: '${L.PUBLIC_KEY}', server: '${server.url}' });</script>
<script async src="${server.url}/sdk/covisit.js"></script>`;
  writeFileSync(join(SITE, 'photo.png'), picture(640, 400, (x, y) => [120 + 80 * Math.sin(x / 40), 80 + y / 5, 40 + 60 * Math.cos(y / 30)]));
  writeFileSync(join(SITE, 'pattern.png'), picture(64, 64, (x, y) => ((x >> 3) + (y >> 3)) % 2 ? [122, 75, 29] : [92, 55, 20]));
  for (const f of ['bootstrap', 'styled', 'components', 'chart', 'dialogs', 'iframes', 'widget-pricing', 'widget-chat', 'assets']) {
    let html = readFileSync(join(CORPUS, `pages/${f}.html`), 'utf8');
    for (const [k, v] of Object.entries(inline)) html = html.split(k).join(v);
    writeFileSync(join(SITE, `${f}.html`), html.replace('<!--COVISIT-->', sdk));
    writeFileSync(join(SITE, `${f}.plain.html`), html.replace('<!--COVISIT-->', ''));
  }
}

/** A PNG of w×h whose pixel (x, y) is rgb(...f(x, y)). */
function picture(w, h, f) {
  const png = new PNG({ width: w, height: h });
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 4;
      const [r, g, b] = f(x, y);
      png.data[i] = r;
      png.data[i + 1] = g;
      png.data[i + 2] = b;
      png.data[i + 3] = 255;
    }
  }
  return PNG.sync.write(png);
}

/** The rrweb replayer's page, on an origin of its own. */
function replaySite() {
  const dir = mkdtempSync(join(tmpdir(), 'covisit-bench-replay-'));
  cpSync(join(NM, 'rrweb/dist/rrweb.umd.min.cjs'), join(dir, 'rrweb.js'));
  cpSync(join(NM, 'rrweb/dist/style.css'), join(dir, 'rrweb.css'));
  writeFileSync(join(dir, 'index.html'), `<!doctype html><html><head><meta charset="utf-8"><title>rrweb replay</title>
<link rel="stylesheet" href="rrweb.css"><script src="rrweb.js"></script>
<style>body { margin: 0; } .replayer-wrapper iframe { border: 0; display: block; }</style></head>
<body><div id="root"></div><script>
window.play = (events) => {
  const r = new rrweb.Replayer(events, { root: document.getElementById('root'), mouseTail: false, showWarning: false, triggerFocus: false });
  // pause(t) applies the events before t only: 1 ms after the last one, all of them.
  r.pause(events[events.length - 1].timestamp - events[0].timestamp + 1);
  window.replayer = r;
};
</script></body></html>`);
  return dir;
}

// rrweb's recorder in the visitor's top page from its first script on, default options but
// for a blockSelector meant to keep our SDK's own UI out (ours never captures it; the
// UI is hidden in every screenshot anyway, see replayShot).
const RRWEB_RECORD = `${readFileSync(join(NM, 'rrweb/dist/rrweb.umd.min.cjs'), 'utf8')}
;if (window === top) { window.__rrweb = []; rrweb.record({ emit(e) { window.__rrweb.push(e); }, blockSelector: 'covisit-ui, covisit-pointer' }); }`;

// ----- images ------------------------------------------------------------------------------

/** The share of `a`'s pixels that `b` has within TOLERANCE in every channel (pixels outside
 * `b` count as different), and a diff image: matches faded, differences red. */
function compare(a, b) {
  const diff = new PNG({ width: a.width, height: a.height });
  let same = 0;
  for (let y = 0; y < a.height; y++) {
    for (let x = 0; x < a.width; x++) {
      const i = (y * a.width + x) * 4;
      const j = (y * b.width + x) * 4;
      const inside = x < b.width && y < b.height;
      const ok = inside && Math.abs(a.data[i] - b.data[j]) <= TOLERANCE && Math.abs(a.data[i + 1] - b.data[j + 1]) <= TOLERANCE && Math.abs(a.data[i + 2] - b.data[j + 2]) <= TOLERANCE;
      if (ok) {
        same++;
        const g = 200 + ((a.data[i] + a.data[i + 1] + a.data[i + 2]) / 3) * 0.2;
        diff.data[i] = diff.data[i + 1] = diff.data[i + 2] = g;
      } else {
        diff.data[i] = 230;
        diff.data[i + 1] = diff.data[i + 2] = 20;
      }
      diff.data[i + 3] = 255;
    }
  }
  return { share: same / (a.width * a.height), diff: PNG.sync.write(diff) };
}

// ----- one page ----------------------------------------------------------------------------

async function runPage(p, env) {
  const { server, corpus, replay, browser, agent } = env;
  const dir = join(OUT, p.name);
  mkdirSync(dir, { recursive: true });
  const context = await browser.newContext({ viewport: VIEW, deviceScaleFactor: 1, reducedMotion: 'reduce' });
  await context.addInitScript({ content: RRWEB_RECORD });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // What the visitor's page loads by URL from its own origin that a mirror must render
  // (images, style sheets, fonts, media): our console loads none of it (issue 15 item 5).
  const assets = new Set();
  page.on('request', (r) => { if (['image', 'stylesheet', 'font', 'media'].includes(r.resourceType()) && r.url().startsWith(corpus.url)) assets.add(r.url().slice(corpus.url.length)); });
  await page.goto(`${corpus.url}/${p.file}`);
  if (p.ready) await p.ready(page);
  await L.waitFor(() => page.evaluate(() => typeof window.Covisit === 'function' && !window.Covisit.q), { what: 'the SDK to load', timeoutMs: 20000 });
  await L.waitFor(async () => (await L.sdkState(page)).visitor?.short_id, { what: 'the welcome' });
  const code = await page.evaluate(() => new Promise((r) => window.Covisit('getLookupCode', r)));
  const shortId = (await L.sdkState(page)).visitor.short_id;
  await L.requestByLookupCode(agent, code, shortId);
  await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
  await L.waitForConsoleStatus(agent, 'active');
  await agent.locator(`${FRAME}[data-state="live"]`).waitFor({ timeout: 20000 });
  await placeMirror(agent);
  const scale = await agent.locator(FRAME).evaluate((f) => f.style.transform);
  if (scale !== 'scale(1)') console.warn(`[bench] ${p.name}: the console shows the mirror at ${scale}, not 1:1`);
  const box = await agent.locator(FRAME).boundingBox();
  if (box.x !== MIRROR_AT || box.y !== MIRROR_AT) console.warn(`[bench] ${p.name}: the mirror is at ${box.x},${box.y}`);
  await page.mouse.move(VIEW.width - 5, VIEW.height - 5); // out of the way of hover styles
  const result = { page: p.name, what: p.what, byUrl: Boolean(p.byUrl), phases: {}, assets: [], rrwebOtherHosts: [], errors };
  for (const phase of ['before', 'after']) {
    if (phase === 'after') await p.interact(page);
    await sleep(p.settle);
    const events = await page.evaluate(() => window.__rrweb.slice());
    // The console marks the visitor's focused element; the visitor's page shows its own.
    await agent.locator(FRAME).evaluate((f) => {
      const roots = [f.contentDocument];
      while (roots.length) {
        const r = roots.pop();
        for (const el of r.querySelectorAll('*')) {
          el.removeAttribute('data-covisit-focus');
          if (el.shadowRoot) roots.push(el.shadowRoot);
          if (el.localName === 'iframe' && el.contentDocument) roots.push(el.contentDocument);
        }
      }
    });
    const mirror = await agent.screenshot({ clip: { x: MIRROR_AT, y: MIRROR_AT, ...VIEW }, animations: 'disabled' });
    const rr = await replayShot(env, replay, events, result);
    const visitor = await page.screenshot({ animations: 'disabled', style: '[data-covisit] { visibility: hidden !important }' });
    const v = PNG.sync.read(visitor);
    const ours = compare(v, PNG.sync.read(mirror));
    const theirs = compare(v, PNG.sync.read(rr));
    for (const [k, buf] of Object.entries({ visitor, covisit: mirror, rrweb: rr, 'covisit-diff': ours.diff, 'rrweb-diff': theirs.diff })) writeFileSync(join(dir, `${phase}-${k}.png`), buf);
    result.phases[phase] = { covisit: ours.share, rrweb: theirs.share, rrwebEvents: events.length };
    process.stdout.write(`[bench] ${p.name} ${phase}: covisit ${(ours.share * 100).toFixed(1)} %, rrweb ${(theirs.share * 100).toFixed(1)} %\n`);
  }
  result.assets = [...assets];
  await L.endLiveSessions(server, shortId);
  await context.close();
  return result;
}

/** rrweb's Replayer renders `events` at their end in a page of its own; a screenshot of its
 * iframe. Notes what the replay requested from hosts other than its page's. */
async function replayShot(env, replay, events, result) {
  const context = await env.browser.newContext({ viewport: { width: VIEW.width + 200, height: VIEW.height + 200 }, deviceScaleFactor: 1, reducedMotion: 'reduce' });
  const page = await context.newPage();
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(replay.url) && !u.startsWith('data:') && !u.startsWith('blob:')) result.rrwebOtherHosts.push(`${r.resourceType()} ${u}`);
  });
  await page.goto(`${replay.url}/index.html`);
  await page.evaluate((ev) => window.play(ev), events);
  await page.waitForLoadState('networkidle').catch(() => {});
  await sleep(500);
  // Our SDK's own UI is left out of every screenshot: rrweb's blockSelector did not keep it
  // out of its recording (it is replayed unstyled), so it is hidden here as on the visitor's.
  const shot = await page.locator('.replayer-wrapper iframe').screenshot({ animations: 'disabled', style: '.replayer-mouse { display: none !important } [data-covisit] { visibility: hidden !important }' });
  await context.close();
  return shot;
}

// ----- costs of the fidelity work (the capture alone, in the corpus pages) ----------------

/** The capture (dist/covisit-capture.js) started alone in `file` (the page without the SDK);
 * `fn` runs in the page with the Mirror instance once its snapshot is done. */
async function withCapture(env, file, fn, arg) {
  const context = await env.browser.newContext({ viewport: VIEW, deviceScaleFactor: 1, reducedMotion: 'reduce' });
  const page = await context.newPage();
  await page.goto(`${env.corpus.url}/${file}`);
  await sleep(1500);
  const r = await page.evaluate(async ([url, src, a]) => {
    const { Mirror } = await import(url);
    let bytes = 0;
    const m = new Mirror((b) => { bytes += b.length; return true; }, '[]');
    m.start();
    while (m.walking || m.next === undefined) await new Promise((res) => setTimeout(res, 20));
    await new Promise((res) => setTimeout(res, 300));
    const out = await (0, eval)(src)(m, a);
    m.destroy();
    return { ...out, snapshotBytes: bytes };
  }, [`${env.server.url}/sdk/covisit-capture.js`, fn.toString(), arg]);
  await context.close();
  return r;
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN; };

/** What following CSSOM rules costs: a flush with nothing changed (lengths and sheet
 * identities only, every flush), and one whole periodic comparison (every rule of every
 * sheet; the capture does at most 4 ms of it every 250 ms). */
async function cssomCost(env, file) {
  return withCapture(env, file, async (m) => {
    // Timers are coarse in a page (100 µs): each figure is the mean of 200 runs.
    const time = (f) => { const t = performance.now(); for (let i = 0; i < 200; i++) f(); return (performance.now() - t) / 200; };
    clearInterval(m.iv);
    const quickMs = time(() => m.flush(false));
    const fullMs = time(() => { for (const S of m.sheets.values()) m.checkSheet(S, true); for (const [r] of m.adopted) m.adopt(r, m.ids.get(r)); });
    let rules = 0;
    for (const S of m.sheets.values()) rules += S.rules.length;
    return { sheets: m.sheets.size, rules, quickMs, fullMs };
  });
}

/** What a page's insertRule costs with no recorder, with our capture running, and with
 * rrweb's recorder running (which wraps insertRule); and our first flush after them. */
async function insertRuleCost(env) {
  const runs = { none: [], covisit: [], rrweb: [] };
  // Three rounds, interleaved (the machine's load varies): the median of each.
  for (let round = 0; round < 3; round++) for (const who of Object.keys(runs)) runs[who].push(await insertRuleRun(env, who));
  const out = {};
  for (const [who, rs] of Object.entries(runs)) {
    const by = (k) => median(rs.map((r) => r[k]));
    out[who] = { perCallUs: by('perCallUs'), flushMs: who === 'covisit' ? by('flushMs') : null, allMs: who === 'covisit' ? by('allMs') : null };
  }
  return out;
}

function insertRuleRun(env, who) {
  {
    return withCapture(env, 'dialogs.plain.html', async (m, w) => {
      m.destroy();
      let stop = null;
      if (w === 'covisit') m.start();
      if (w === 'rrweb') {
        await new Promise((res, rej) => { const s = document.createElement('script'); s.src = '/rrweb.js'; s.onload = res; s.onerror = rej; document.head.append(s); });
        stop = window.rrweb.record({ emit() {} });
      }
      await new Promise((res) => setTimeout(res, 500));
      const style = document.createElement('style');
      document.head.append(style);
      await new Promise((res) => setTimeout(res, 300));
      const n = 10000;
      const t = performance.now();
      for (let i = 0; i < n; i++) style.sheet.insertRule(`.r${i} { color: rgb(${i % 255}, 0, 0); }`, style.sheet.cssRules.length);
      const perCallUs = ((performance.now() - t) / n) * 1000;
      let flushMs = null;
      let allMs = null;
      if (w === 'covisit') {
        // The flush that finds them writes one slice; tasks after it write the rest.
        const t2 = performance.now();
        m.flush(false);
        flushMs = performance.now() - t2;
        while ([...m.sheets.values()].some((S) => S.pend)) await new Promise((res) => setTimeout(res, 5));
        allMs = performance.now() - t2;
      }
      if (stop) stop();
      return { perCallUs, flushMs, allMs };
    }, who);
  }
}

/** Canvas images per frame on the chart page: our pipeline (at the next rendering update,
 * createImageBitmap, encoded by OffscreenCanvas.convertToBlob, as PNG or as WebP) against a
 * plain toDataURL, per canvas: the main thread's share (inside our code, and the whole main
 * thread from a trace), wall time (ours waits for a frame), bytes. */
async function canvasCost(env) {
  const context = await env.browser.newContext({ viewport: VIEW, deviceScaleFactor: 1, reducedMotion: 'reduce' });
  const page = await context.newPage();
  // ?static: the WebGL canvas drawn once (preserveDrawingBuffer) instead of in a render
  // loop, so that the page is idle and the main thread's time is the capture's.
  await page.goto(`${env.corpus.url}/chart.plain.html?static`);
  await sleep(2000); // Chart.js animations done
  const url = `${env.server.url}/sdk/covisit-capture.js`;
  await page.evaluate(async (u) => {
    const { Mirror } = await import(u);
    window.m = new Mirror(() => true, '[]');
    window.m.start();
    while (window.m.walking || window.m.next === undefined) await new Promise((res) => setTimeout(res, 20));
    clearInterval(window.m.iv); // no periodic pass of its own during the measurement
  }, url);
  // The page's own main-thread work (its WebGL render loop draws every frame), per ms of
  // wall time: taken off each measurement below in proportion to its wall time.
  const traced = async (fn) => {
    await env.browser.startTracing(page, { categories: ['toplevel', 'devtools.timeline', 'disabled-by-default-devtools.timeline', 'blink.user_timing'] });
    const r = await fn();
    const { main, mark } = L.readTrace(await env.browser.stopTracing(), 'frames-start');
    const a = mark('frames-start');
    const b = mark('frames-end');
    const busy = main.filter((e) => e.name === 'RunTask' && a && b && e.ts >= a.ts && e.ts + e.dur <= b.ts).reduce((x, e) => x + e.dur, 0) / 1000;
    return { ...r, busy, span: a && b ? (b.ts - a.ts) / 1000 : NaN };
  };
  const idle = await traced(() => page.evaluate(async () => {
    performance.mark('frames-start');
    await new Promise((res) => setTimeout(res, 1000));
    performance.mark('frames-end');
    return {};
  }));
  const idleRate = idle.busy / idle.span;
  const rows = [];
  for (const id of ['bar', 'doughnut', 'line', 'gl']) {
    for (const how of ['covisit (PNG)', 'covisit (WebP)', 'toDataURL png', 'toDataURL webp']) {
      const r = await traced(() => page.evaluate(async ([cid, h]) => {
        const el = document.getElementById(cid);
        const n = 10;
        const m = window.m;
        const st = { due: 0, gap: 500, last: '', scale: 1, off: false, webp: h.includes('WebP') };
        m.imgStats = null;
        let bytes = 0;
        performance.mark('frames-start');
        const t = performance.now();
        for (let i = 0; i < n; i++) {
          if (h.startsWith('covisit')) {
            st.last = '';
            await m.frameGrab(el, m.ids.get(el), st);
            bytes = st.last.length;
          } else {
            bytes = el.toDataURL(h.endsWith('png') ? 'image/png' : 'image/webp', 0.8).length;
            await new Promise((res) => setTimeout(res, 0));
          }
        }
        const wall = (performance.now() - t) / n;
        performance.mark('frames-end');
        const s = m.imgStats;
        return { w: el.width, h: el.height, wallMs: wall, ourSyncMs: h.startsWith('covisit') && s ? s.ms / s.images : null, bytes, n };
      }, [id, how]));
      rows.push({ canvas: id, how, ...r, mainMs: Math.max(0, r.busy - idleRate * r.span) / r.n });
    }
  }
  await context.close();
  rows.idleRate = idleRate;
  return rows;
}

// ----- main --------------------------------------------------------------------------------

for (const [file, what, cmd] of [['dist/covisit_wasm_bg.wasm', 'the SDK', ['bash', ['scripts/build']]], ['target/debug/covisit-server', 'covisit-server', ['cargo', ['build', '-p', 'covisit-server']]]]) {
  if (!existsSync(join(ROOT, file))) {
    console.log(`[bench] building ${what}`);
    execFileSync(cmd[0], cmd[1], { cwd: ROOT, stdio: 'inherit', timeout: 900000 });
  }
}
mkdirSync(OUT, { recursive: true });
const server = await L.startServer();
const replayDir = replaySite();
const replay = await L.serveStatic(replayDir);
await buildCorpus(server);
cpSync(join(NM, 'rrweb/dist/rrweb.umd.min.cjs'), join(SITE, 'rrweb.js')); // for the insertRule cost run
const corpus = await L.serveStatic(SITE);
const browser = await L.launchBrowser();
const env = { server, corpus, replay, browser };
const results = [];
let costs = {};
try {
  env.agent = await L.openConsole(browser, server, 'Bench', 'agent', { viewport: { width: 1500, height: 1100 }, deviceScaleFactor: 1, reducedMotion: 'reduce' });
  const consoleHosts = [];
  env.agent.context().on('request', (r) => { if (!r.url().startsWith(server.url) && !/^(data|blob|about):/.test(r.url())) consoleHosts.push(r.url()); });
  for (const p of pages) results.push(await runPage(p, env));
  console.log('[bench] costs');
  costs = {
    cssom: { styled: await cssomCost(env, 'styled.plain.html'), bootstrap: await cssomCost(env, 'bootstrap.plain.html'), components: await cssomCost(env, 'components.plain.html') },
    insertRule: await insertRuleCost(env),
    canvas: await canvasCost(env),
  };
  report(results, costs, consoleHosts);
  writeFileSync(join(OUT, 'results.json'), JSON.stringify({ tolerance: TOLERANCE, viewport: VIEW, results, costs, consoleHosts }, null, 2));
} finally {
  await browser.close();
  await corpus.close();
  await replay.close();
  await server.stop();
  rmSync(replayDir, { recursive: true, force: true });
}

function report(res, c, consoleHosts) {
  const pct = (x) => `${(x * 100).toFixed(1)} %`;
  const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '—');
  console.log(`\nShare of the visitor's pixels (${VIEW.width}×${VIEW.height}) the agent sees within ${TOLERANCE}/255 per channel:`);
  console.log('| page | before: covisit | before: rrweb | after the interaction: covisit | after: rrweb |');
  console.log('|---|---|---|---|---|');
  for (const r of res) console.log(`| ${r.page}${r.byUrl ? ' (assets by URL)' : ''} | ${pct(r.phases.before.covisit)} | ${pct(r.phases.before.rrweb)} | ${pct(r.phases.after.covisit)} | ${pct(r.phases.after.rrweb)} |`);
  const med = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
  const own = res.filter((r) => !r.byUrl);
  for (const [label, set] of [[`self-contained pages (${own.length})`, own], [`all pages (${res.length})`, res]]) {
    if (!set.length) continue;
    const m = (phase, who) => pct(med(set.map((r) => r.phases[phase][who])));
    console.log(`| **median, ${label}** | ${m('before', 'covisit')} | ${m('before', 'rrweb')} | ${m('after', 'covisit')} | ${m('after', 'rrweb')} |`);
  }
  const all = (set, who) => set.flatMap((r) => [r.phases.before[who], r.phases.after[who]]);
  console.log(`\nMedian over every phase of the self-contained pages: covisit ${pct(med(all(own, 'covisit')))}, rrweb ${pct(med(all(own, 'rrweb')))}; of all pages: covisit ${pct(med(all(res, 'covisit')))}, rrweb ${pct(med(all(res, 'rrweb')))}.`);
  console.log('\nWhat loads from other hosts:');
  console.log(`- the agent's console: ${consoleHosts.length ? consoleHosts.length + ' requests: ' + consoleHosts.slice(0, 5).join(', ') : 'nothing (it contacts only the covisit server)'}`);
  for (const r of res) {
    const kinds = {};
    for (const x of r.rrwebOtherHosts) { const k = x.split(' ')[0]; kinds[k] = (kinds[k] || 0) + 1; }
    console.log(`- ${r.page}: the page loads ${r.assets.length ? r.assets.length + ' assets by URL (not in our mirror: ' + r.assets.slice(0, 4).join(', ') + (r.assets.length > 4 ? ', …' : '') + ')' : 'no image, style sheet, font or media by URL (all inline)'}; rrweb's replay requested ${r.rrwebOtherHosts.length ? Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(', ') + ' from the page\'s host' : 'nothing from other hosts'}${r.errors.length ? `; page errors: ${r.errors.join(' / ')}` : ''}`);
  }
  console.log('\nFollowing CSSOM rules (the capture alone in the page; ms on the main thread):');
  console.log('| page | sheets followed | rules | every flush (nothing changed) | one whole comparison (250 ms pass does ≤ 4 ms of it) |');
  console.log('|---|---|---|---|---|');
  for (const [k, v] of Object.entries(c.cssom)) console.log(`| ${k} | ${v.sheets} | ${v.rules} | ${f(v.quickMs, 3)} ms | ${f(v.fullMs)} ms |`);
  const ir = c.insertRule;
  console.log(`\ninsertRule × 10,000 on the page, per call: no recorder ${f(ir.none.perCallUs)} µs, with our capture ${f(ir.covisit.perCallUs)} µs (nothing wrapped), with rrweb's recorder ${f(ir.rrweb.perCallUs)} µs (it wraps insertRule); our flush that finds them takes ${f(ir.covisit.flushMs)} ms and the rules are all sent ${f(ir.covisit.allMs, 0)} ms later, in slices.`);
  console.log(`\nCanvas images per frame (chart page, its WebGL canvas drawn once; 10 frames each; "main thread": every task on the page's main thread meanwhile, from a trace, less the idle page's ${f(c.canvas.idleRate * 1000, 1)} ms per second; "in our code": the capture's own synchronous work, sending included; wall: ours waits for a rendering update):`);
  console.log('| canvas | size | how | main thread | in our code | wall | bytes (data: URL) |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of c.canvas) console.log(`| ${r.canvas} | ${r.w}×${r.h} | ${r.how} | ${f(r.mainMs)} ms | ${r.ourSyncMs === null ? '—' : f(r.ourSyncMs) + ' ms'} | ${f(r.wallMs)} ms | ${(r.bytes / 1024).toFixed(1)} KB |`);
  console.log(`\nImages: ${OUT}/<page>/{before,after}-{visitor,covisit,rrweb,covisit-diff,rrweb-diff}.png; all figures in results.json.`);
}
