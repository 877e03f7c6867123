// Co-browsing capture benchmark: `npm run bench:mirror [-- --sizes 1000,10000,100000]`.
//
// Headless Chromium, generated pages of 1,000 / 10,000 / 100,000 DOM nodes (elements and
// text), each recorder on a fresh page of the same browser run:
//   - ours: src/web/mirror.js, the capture the SDK ships (bundled into dist/ by the build);
//   - rrweb's recorder (the `rrweb` devDependency), default options;
//   - with --websys: the same walk written in Rust with web-sys (bench/websys-walker,
//     built for this measurement only), to compare where the DOM walk should live.
// Per recorder and size: full-snapshot time (ours: the work of every slice, and the wall
// time until the last record, yields included), snapshot bytes raw and gzipped, the time
// to process a burst of 10,000 mutations, and the longest main-thread task (the longest
// slice measured inside the page, and PerformanceObserver 'longtask' entries, >= 50 ms).
// Then the wire encoding (our JSON records vs a compact binary encoding of the same
// records, 10,000-node snapshot) and the visitor-change-to-agent-render latency through
// the real server (debug build) between a visitor page with the preview SDK and the agent
// console, on loopback. Prints tables; timings are figures, not assertions.
import { existsSync, readFileSync, writeFileSync, mkdtempSync, cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { ROOT, startServer, launchBrowser, openConsole, requestByLookupCode, waitForConsoleStatus, sdkUi, waitFor, readTrace } from '../tests/e2e/lib.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const SIZES = opt('--sizes', '1000,10000,100000').split(',').map(Number);
const BURST = 10000;
const LATENCY_SAMPLES = Number(opt('--samples', '60'));
const sdkDir = join(ROOT, 'dist');

// The latency part runs the whole SDK, as a page loads it.
if (!existsSync(join(sdkDir, 'covisit_wasm_bg.wasm'))) {
  console.log('[bench] building the SDK into dist/');
  execFileSync('bash', ['scripts/build'], { cwd: ROOT, stdio: 'inherit', timeout: 600000 });
}
if (!existsSync(join(ROOT, 'target/debug/covisit-server'))) {
  console.log('[bench] building covisit-server');
  execFileSync('cargo', ['build', '-p', 'covisit-server'], { cwd: ROOT, stdio: 'inherit', timeout: 900000 });
}

// The capture alone, as an ES module the bench page imports (the SDK bundles the same file);
// `--capture FILE` benches another version of it (an A/B against an older mirror.js).
const MIRROR_JS = opt('--capture', join(ROOT, 'src/web/mirror.js'));
const snippet = '/bench/mirror.js';

// The generator runs in the page: nested sections of realistic markup until `n` nodes.
function generate(n) {
  const root = document.getElementById('root');
  let count = 0;
  const el = (tag, attrs, parent) => {
    const e = document.createElement(tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    parent.append(e);
    count++;
    return e;
  };
  const text = (s, parent) => { parent.append(s); count++; };
  for (let i = 0; count < n; i++) {
    const section = el('section', { class: 'card product-list', id: `s${i}` }, root);
    const h = el('h2', { class: 'title' }, section);
    text(`Section ${i}: outdoor gear`, h);
    const p = el('p', { class: 'lead muted' }, section);
    text('Light, tough and made to last. ', p);
    const a = el('a', { href: `/product.html?id=${i}`, class: 'link' }, p);
    text('See the details', a);
    const ul = el('ul', { class: 'items' }, section);
    for (let j = 0; j < 4 && count < n; j++) {
      const li = el('li', { class: 'item', 'data-sku': `SKU-${i}-${j}` }, ul);
      const img = el('img', { src: '/favicon.svg', alt: `Item ${j}`, width: '16', height: '16' }, li);
      void img;
      const span = el('span', { class: 'name' }, li);
      text(`Trail item ${i}.${j}`, span);
      const price = el('span', { class: 'price', style: 'color: #0b5cff; font-weight: 600' }, li);
      text(`€${(i * 7 + j * 3) % 300}.00`, price);
    }
    if (i % 5 === 0) {
      const f = el('form', { class: 'form' }, section);
      el('input', { type: 'text', name: `q${i}`, placeholder: 'Search' }, f);
      el('input', { type: 'password', name: `pw${i}` }, f);
      const b = el('button', { type: 'button', class: 'btn' }, f);
      text('Go', b);
    }
  }
  return count;
}

// The burst: 10,000 mutations of four kinds on the generated page.
function burst(n) {
  const items = document.querySelectorAll('li.item');
  const spans = document.querySelectorAll('span.name');
  const root = document.getElementById('root');
  const q = n / 4;
  for (let i = 0; i < q; i++) {
    const d = document.createElement('div');
    d.className = 'added';
    d.textContent = `added ${i}`;
    root.append(d);
  }
  for (let i = 0; i < q; i++) items[i % items.length].setAttribute('data-state', `s${i}`);
  for (let i = 0; i < q; i++) spans[i % spans.length].firstChild.data = `renamed ${i}`;
  const added = root.querySelectorAll('div.added');
  for (let i = 0; i < q; i++) added[i].remove();
}

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>mirror bench</title>
<link rel="stylesheet" href="/shop.css"><script src="/bench/rrweb.js"></script></head>
<body><div id="root"></div></body></html>`;

async function newPage(browser, server, traceBurst) {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Called by the page right before its burst: with `traceBurst`, a Chromium trace of
  // what follows, to tell the recorder's work from the page's own rendering (see burstTrace).
  await page.exposeFunction('beforeBurst', async () => {
    if (traceBurst) await browser.startTracing(page, { categories: ['toplevel', 'devtools.timeline', 'disabled-by-default-devtools.timeline', 'blink.user_timing'] });
  });
  page.traceBurst = traceBurst;
  await page.goto(`${server.url}/bench/index.html`);
  await page.evaluate(() => {
    window.longTasks = [];
    new PerformanceObserver((l) => l.getEntries().forEach((e) => window.longTasks.push(e))).observe({ type: 'longtask', buffered: true });
    // The longest long task that started at or after `t` (the page's own tasks before it,
    // e.g. the generator or the burst itself, do not count).
    window.longestSince = (t) => Math.max(0, ...window.longTasks.filter((e) => e.startTime >= t).map((e) => e.duration));
    // A page that has been displayed: laid out once, as a visitor's page is.
    window.settle = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 50)));
  });
  return page;
}

async function runOurs(page, n) {
  const nodes = await page.evaluate(generate, n);
  const r = await page.evaluate(async ([url, burstN, burstFn]) => {
    const { Mirror } = await import(url);
    const batches = [];
    const slices = [];
    const flushes = [];
    let sliceStart = 0;
    const walk = Mirror.prototype.walk;
    Mirror.prototype.walk = function (st, deadline) {
      if (deadline) sliceStart = performance.now();
      return walk.call(this, st, deadline);
    };
    const send = Mirror.prototype.send;
    Mirror.prototype.send = function () {
      send.call(this);
      if (sliceStart) { slices.push(performance.now() - sliceStart); sliceStart = 0; }
    };
    const measure = Mirror.prototype.measure;
    Mirror.prototype.measure = function () {
      const t = performance.now();
      measure.call(this);
      slices.push(performance.now() - t);
    };
    const flush = Mirror.prototype.flush;
    Mirror.prototype.flush = function () {
      const t = performance.now();
      flush.call(this);
      flushes.push(performance.now() - t);
    };
    let done;
    const finished = new Promise((r) => { done = r; });
    let t0 = 0;
    let wall = 0;
    const m = new Mirror((b) => {
      batches.push(b);
      if (!wall && b.includes('["E"]')) { wall = performance.now() - t0; done(); }
      return true;
    }, '[]');
    await window.settle();
    t0 = performance.now();
    m.start();
    await finished;
    const snapshot = batches.slice();
    const work = slices.reduce((a, b) => a + b, 0);
    const maxSlice = Math.max(...slices);
    await new Promise((r) => setTimeout(r, 200));
    const snapLong = window.longestSince(t0);
    await window.settle();
    batches.length = 0;
    flushes.length = 0;
    await window.beforeBurst();
    // eslint-disable-next-line no-new-func
    new Function('n', `(${burstFn})(n)`)(burstN);
    const tEnd = performance.now();
    performance.mark('burst-end');
    await new Promise((r) => setTimeout(r, 600));
    performance.mark('burst-settled');
    const burstWork = flushes.reduce((a, b) => a + b, 0);
    const burstMax = Math.max(0, ...flushes);
    const burstLong = window.longestSince(tEnd);
    m.stop();
    return { snapshot, work, wall, maxSlice, snapLong, burstWork, burstMax, burstLong };
  }, [snippet, BURST, burst.toString()]);
  // On the wire each batch is one frame: {"type":"mirror","data":<batch>}.
  const frames = r.snapshot.map((b) => `{"type":"mirror","data":${b}}`);
  const raw = frames.reduce((a, f) => a + Buffer.byteLength(f), 0);
  const gz = gzipSync(frames.join('\n')).length;
  return { nodes, snapshotMs: r.work, wallMs: r.wall, raw, gz, frames: frames.length, burstMs: r.burstWork, longest: Math.max(r.maxSlice, r.burstMax), snapLong: r.snapLong, burstLong: r.burstLong, records: r.snapshot };
}

async function runRrweb(page, n) {
  const nodes = await page.evaluate(generate, n);
  const r = await page.evaluate(async ([burstN, burstFn]) => {
    const events = [];
    let tMut = 0;
    let mutDone = 0;
    let t1 = 0;
    await window.settle();
    const t0 = performance.now();
    const stop = window.rrweb.record({
      emit(e) {
        events.push(e);
        if (e.type === 2) t1 = performance.now();
        if (e.type === 3 && e.data.source === 0 && tMut) mutDone = performance.now();
      },
    });
    const snapshotMs = (t1 || performance.now()) - t0;
    const full = events.find((e) => e.type === 2);
    const meta = events.find((e) => e.type === 4);
    await new Promise((r) => setTimeout(r, 200));
    const snapLong = window.longestSince(t0);
    await window.settle();
    const before = events.length;
    await window.beforeBurst();
    tMut = performance.now();
    // eslint-disable-next-line no-new-func
    new Function('n', `(${burstFn})(n)`)(burstN);
    const tEnd = performance.now();
    performance.mark('burst-end');
    await new Promise((r) => setTimeout(r, 600));
    performance.mark('burst-settled');
    // rrweb processes mutations inside the task that made them (a microtask): that task
    // is the burst's own, so its processing time stands in for the longest task.
    const burstLong = mutDone ? mutDone - tEnd : 0;
    const mutEvents = events.slice(before).filter((e) => e.type === 3 && e.data.source === 0);
    stop();
    return {
      snapshotMs,
      full: JSON.stringify([meta, full]),
      burstMs: mutDone ? mutDone - tEnd : NaN,
      burstBytes: JSON.stringify(mutEvents).length,
      snapLong,
      burstLong,
    };
  }, [BURST, burst.toString()]);
  return { nodes, snapshotMs: r.snapshotMs, wallMs: r.snapshotMs, raw: Buffer.byteLength(r.full), gz: gzipSync(r.full).length, burstMs: r.burstMs, longest: Math.max(r.snapshotMs, r.burstMs), snapLong: Math.max(r.snapLong, r.snapshotMs >= 50 ? r.snapshotMs : 0), burstLong: r.burstLong };
}

// The page's rendering of a frame (style, layout, paint), when no script of the task
// asked for it: the same work happens without a recorder.
const RENDERING = new Set(['UpdateLayoutTree', 'Layout', 'PrePaint', 'Paint', 'Layerize', 'Commit', 'UpdateLayer', 'UpdateLayerTree', 'CompositeLayers', 'IntersectionObserverController::computeIntersections']);
const SCRIPT = new Set(['FunctionCall', 'EvaluateScript', 'v8.callFunction', 'RunMicrotasks', 'FireAnimationFrame', 'TimerFire', 'EventDispatch']);

/**
 * The longest main-thread task after the burst (from the trace of it) and how much of it
 * was the page's rendering (style, layout, paint not forced by a script), so that a long
 * task of the page's own rendering is not taken for the recorder's.
 */
function burstTrace(trace) {
  const { main, mark } = readTrace(trace, 'burst-end');
  const end = mark('burst-end');
  const settled = mark('burst-settled');
  if (!end || !settled) return null;
  const inside = (e, t) => e !== t && e.ts >= t.ts && e.ts + e.dur <= t.ts + t.dur;
  // From the burst until the page has settled (not the harness reading the results back).
  const tasks = main.filter((e) => e.name === 'RunTask' && e.ts >= end.ts && e.ts + e.dur <= settled.ts);
  let worst = null;
  for (const t of tasks) {
    if (worst && t.dur <= worst.dur) continue;
    const within = main.filter((e) => inside(e, t));
    const scripts = within.filter((e) => SCRIPT.has(e.name));
    const rendering = within.filter((e) => RENDERING.has(e.name) && !scripts.some((x) => inside(e, x)));
    const outer = rendering.filter((e) => !rendering.some((x) => inside(e, x)));
    worst = { dur: t.dur, rendering: outer.reduce((a, e) => a + e.dur, 0) };
  }
  return worst && { longestMs: worst.dur / 1000, renderingMs: worst.rendering / 1000 };
}

/** No recorder: the long tasks the generated page has on its own (images, layout). */
async function runNone(page, n) {
  const nodes = await page.evaluate(generate, n);
  const r = await page.evaluate(async ([burstN, burstFn]) => {
    await window.settle();
    const t0 = performance.now();
    await new Promise((res) => setTimeout(res, 1000));
    const idle = window.longestSince(t0);
    await window.settle();
    await window.beforeBurst();
    // eslint-disable-next-line no-new-func
    new Function('n', `(${burstFn})(n)`)(burstN);
    const tEnd = performance.now();
    performance.mark('burst-end');
    await new Promise((res) => setTimeout(res, 600));
    performance.mark('burst-settled');
    return { idle, burst: window.longestSince(tEnd) };
  }, [BURST, burst.toString()]);
  return { nodes, snapshotMs: NaN, wallMs: NaN, raw: NaN, gz: NaN, burstMs: NaN, longest: NaN, snapLong: r.idle, burstLong: r.burst };
}

async function runWebsys(page, n, server) {
  const nodes = await page.evaluate(generate, n);
  const r = await page.evaluate(async (base) => {
    const mod = await import(`${base}/bench/websys/websys_walker.js`);
    await mod.default();
    await window.settle();
    const t0 = performance.now();
    const out = mod.snapshot('[]');
    const ms = performance.now() - t0;
    return { ms, bytes: out.length, out };
  }, server.url);
  return { nodes, snapshotMs: r.ms, wallMs: r.ms, raw: Buffer.byteLength(r.out), gz: gzipSync(r.out).length, burstMs: NaN, longest: r.ms, snapLong: r.ms >= 50 ? r.ms : 0, burstLong: NaN };
}

// ----- the wire encoding: JSON records vs a compact binary encoding of the same ---------

/** A MessagePack-like encoding: varint numbers, length-prefixed strings, tagged arrays/maps. */
function binary(value, out = []) {
  const varint = (n) => { while (n > 127) { out.push((n & 127) | 128); n = Math.floor(n / 128); } out.push(n); };
  if (value === null) out.push(0);
  else if (typeof value === 'number' && Number.isInteger(value) && value >= 0) { out.push(1); varint(value); }
  else if (typeof value === 'number') { out.push(2); varint(Math.round(Math.abs(value))); }
  else if (typeof value === 'string') { const b = Buffer.from(value); out.push(3); varint(b.length); for (const x of b) out.push(x); }
  else if (Array.isArray(value)) { out.push(4); varint(value.length); value.forEach((v) => binary(v, out)); }
  else { const k = Object.keys(value); out.push(5); varint(k.length); k.forEach((key) => { binary(key, out); binary(value[key], out); }); }
  return out;
}

function encodings(records) {
  const json = records.map((b) => `{"type":"mirror","data":${b}}`);
  const t0 = performance.now();
  const parsed = records.map((b) => JSON.parse(b));
  const tParse = performance.now() - t0;
  const t1 = performance.now();
  const again = parsed.map((d) => JSON.stringify({ type: 'mirror', data: d }));
  const tJson = performance.now() - t1;
  const t2 = performance.now();
  const bin = parsed.map((d) => Buffer.from(binary(d)));
  const tBin = performance.now() - t2;
  void again;
  return {
    jsonRaw: json.reduce((a, f) => a + Buffer.byteLength(f), 0),
    jsonGz: gzipSync(json.join('\n')).length,
    binRaw: bin.reduce((a, b) => a + b.length, 0),
    binGz: gzipSync(Buffer.concat(bin)).length,
    tJson,
    tBin,
    tParse,
  };
}

// ----- latency through the real server ---------------------------------------------------------

async function latency(browser, server) {
  const agent = await openConsole(browser, server, 'Bench');
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.url}/bench/live.html`);
  await page.evaluate(generate, 1000);
  await waitFor(() => page.evaluate(() => typeof window.Covisit === 'function' && !window.Covisit.q), { what: 'the SDK' });
  const code = await page.evaluate(() => new Promise((r) => window.Covisit('getLookupCode', r)));
  await requestByLookupCode(agent, code);
  await sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
  await waitForConsoleStatus(agent, 'active');
  const frame = agent.locator('.mirror-session:not([hidden]) iframe[data-testid="mirror-frame"][data-state="live"]');
  await frame.waitFor({ timeout: 20000 });
  await agent.evaluate(() => {
    window.renders = [];
    const f = document.querySelector('.mirror-session:not([hidden]) iframe[data-testid="mirror-frame"]');
    const doc = f.contentDocument;
    new MutationObserver(() => {
      const el = doc.getElementById('clock');
      const m = el && /^T(\d+)$/.exec(el.textContent);
      if (m && !window.renders.some((r) => r.t === Number(m[1]))) window.renders.push({ t: Number(m[1]), lag: Date.now() - Number(m[1]) });
    }).observe(doc, { subtree: true, childList: true, characterData: true });
  });
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    await page.evaluate(() => { document.getElementById('clock').textContent = `T${Date.now()}`; });
    await new Promise((r) => setTimeout(r, 60));
  }
  await new Promise((r) => setTimeout(r, 500));
  const lags = (await agent.evaluate(() => window.renders.map((r) => r.lag))).sort((a, b) => a - b);
  await context.close();
  await agent.context().close();
  const q = (p) => lags[Math.min(lags.length - 1, Math.floor(p * (lags.length - 1)))];
  return { n: lags.length, p50: q(0.5), p95: q(0.95), max: lags[lags.length - 1] };
}

// ----- main ------------------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'covisit-bench-mirror-'));
cpSync(join(ROOT, 'www'), join(dir, 'www'), { recursive: true });
cpSync(join(ROOT, 'node_modules/rrweb/dist/rrweb.umd.min.cjs'), join(dir, 'www/bench-rrweb.js'));
const benchDir = join(dir, 'www/bench');
cpSync(join(dir, 'www/bench-rrweb.js'), join(benchDir, 'rrweb.js'));
writeFileSync(join(benchDir, 'index.html'), PAGE);
cpSync(MIRROR_JS, join(benchDir, 'mirror.js'));
writeFileSync(join(benchDir, 'live.html'), `<!doctype html><html><head><meta charset="utf-8"><title>live</title>
<script>window.Covisit = window.Covisit || function () { (Covisit.q = Covisit.q || []).push(arguments); };
Covisit('init', { apiKey: 'pk_demo', server: location.origin });</script><script async src="/sdk/covisit.js"></script></head>
<body><p id="clock">T0</p><div id="root"></div></body></html>`);
const websys = args.includes('--websys');
if (websys) {
  console.log('[bench] building bench/websys-walker (the web-sys walk, for comparison only)');
  execFileSync('bash', ['bench/websys-walker/build.sh'], { cwd: ROOT, stdio: 'inherit', timeout: 900000 });
  const wasm = readFileSync(join(ROOT, 'bench/websys-walker/pkg/websys_walker_bg.wasm'));
  const glue = readFileSync(join(ROOT, 'bench/websys-walker/pkg/websys_walker.js'));
  const ours = readFileSync(MIRROR_JS);
  console.log(`[bench] size, gzip: web-sys walker wasm ${(gzipSync(wasm).length / 1024).toFixed(1)} KB + its JS glue ${(gzipSync(glue).length / 1024).toFixed(1)} KB; mirror.js (whole capture, unminified source) ${(gzipSync(ours).length / 1024).toFixed(1)} KB`);
}
if (websys) cpSync(join(ROOT, 'bench/websys-walker/pkg'), join(benchDir, 'websys'), { recursive: true });

const server = await startServer({ www: join(dir, 'www'), sdkDir });
const browser = await launchBrowser();
const rows = [];
let tenK = null;
try {
  for (const n of SIZES) {
    for (const [name, run] of [['(page alone)', runNone], ['covisit', runOurs], ['rrweb', runRrweb], ...(websys ? [['web-sys walk', runWebsys]] : [])]) {
      const traced = n === Math.max(...SIZES) && name !== 'web-sys walk';
      const page = await newPage(browser, server, traced);
      const r = await run(page, n, server);
      if (traced) r.burstTrace = burstTrace(await browser.stopTracing());
      await page.context().close();
      rows.push({ name, ...r });
      if (name === 'covisit' && n === 10000) tenK = r.records;
      process.stdout.write(`[bench] ${name} ${n}: done\n`);
    }
  }
  const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '—');
  const kb = (x) => (Number.isFinite(x) ? `${(x / 1024).toFixed(1)} KB` : '—');
  console.log('\n"longest slice/task": the longest stretch of recorder work measured in the page (ours: a snapshot');
  console.log('slice or a mutation flush; rrweb: its synchronous snapshot or mutation processing). "long tasks":');
  console.log("PerformanceObserver('longtask') entries of any cause, during the snapshot / after the burst (the");
  console.log("page's own rendering of the burst too: Chromium reports a rendering task as a long task only when a");
  console.log('script ran in it, e.g. a recorder\'s requestAnimationFrame callback; see the trace table below).');
  const lt = (x) => (x > 0 ? `${f(x)} ms` : (Number.isFinite(x) ? 'none' : '—'));
  console.log('\n| recorder | nodes | snapshot work | snapshot wall | bytes raw | bytes gzip | 10k-mutation burst | longest slice/task | long tasks: snapshot / burst |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.name} | ${r.nodes} | ${f(r.snapshotMs)} ms | ${f(r.wallMs)} ms | ${kb(r.raw)} | ${kb(r.gz)} | ${f(r.burstMs)} ms | ${f(r.longest)} ms | ${lt(r.snapLong)} / ${lt(r.burstLong)} |`);
  }
  const traced = rows.filter((r) => r.burstTrace);
  if (traced.length) {
    console.log(`\nThe longest main-thread task after the burst at ${traced[0].nodes} nodes, from a Chromium trace: how much of it`);
    console.log('is the page rendering the burst (style, layout, paint not forced by a script), the same with or without a recorder:');
    console.log('| recorder | longest task | the page\'s rendering in it | the rest (scripts, the recorder\'s included) |');
    console.log('|---|---|---|---|');
    for (const r of traced) {
      const t = r.burstTrace;
      console.log(`| ${r.name} | ${f(t.longestMs)} ms | ${f(t.renderingMs)} ms | ${f(t.longestMs - t.renderingMs)} ms |`);
    }
  }
  if (tenK) {
    const e = encodings(tenK);
    console.log('\nWire encoding of the 10,000-node snapshot (same records):');
    console.log('| encoding | raw | gzip | encode (node) |');
    console.log('|---|---|---|---|');
    console.log(`| JSON records (shipping) | ${kb(e.jsonRaw)} | ${kb(e.jsonGz)} | ${f(e.tJson)} ms (JSON.stringify) |`);
    console.log(`| varint/length-prefixed binary | ${kb(e.binRaw)} | ${kb(e.binGz)} | ${f(e.tBin)} ms (JS encoder) |`);
  }
  const lat = await latency(browser, server);
  console.log(`\nVisitor change to agent render through the server (loopback, debug server, ${lat.n} samples): p50 ${lat.p50} ms, p95 ${lat.p95} ms, max ${lat.max} ms`);
} finally {
  await browser.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
