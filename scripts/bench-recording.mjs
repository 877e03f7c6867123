#!/usr/bin/env node
// Session recordings (issue 18): how much disk a recorded session of the demo shop with
// steady activity takes, and how long the replay takes to reach an arbitrary point.
//
// Starts the real server (`--record-sessions`, SQLite) and headless Chromium itself:
// a visitor on the demo shop in a session with an agent's console, for `--minutes`
// (default 10) of steady activity: the pointer moves every 200 ms, a key is typed every
// second (the account page's name field, a password field too), the page scrolls every 5
// s, and the visitor goes to another shop page every 30 s. Then it ends the session,
// waits for the recording to be ready, prints its size on disk (the gzipped chunk files)
// and raw, downloads the player file, and in it seeks to `--seeks` random points
// (seek + the mirror documents rendered), printing median and worst.
//
//   node scripts/bench-recording.mjs [--minutes 10] [--seeks 20]
import { readdirSync, statSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as L from '../tests/e2e/lib.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const minutes = arg('minutes', 10);
const seeks = arg('seeks', 20);

function du(dir) {
  let n = 0;
  let files = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) {
      const [b, f] = du(p);
      n += b;
      files += f;
    } else {
      n += st.size;
      files += 1;
    }
  }
  return [n, files];
}

const server = await L.startServer({ args: ['--record-sessions'] });
const browser = await L.launchBrowser();
const temp = mkdtempSync(join(tmpdir(), 'covisit-bench-rec-'));
try {
  const agent = await L.openConsole(browser, server, 'Bench', 'agent');
  const page = await L.openVisitor(browser, `${server.url}/account.html`);
  await L.waitFor(() => page.evaluate(() => typeof window.Covisit === 'function' && !window.Covisit.q), { what: 'the SDK' });
  const code = await page.evaluate(() => new Promise((r) => window.Covisit('getLookupCode', r)));
  const shortId = (await L.sdkState(page)).visitor.short_id;
  await L.requestByLookupCode(agent, code, shortId);
  await L.sdkUi(page, 'session-prompt').getByRole('button', { name: 'Allow' }).click();
  await L.waitForConsoleStatus(agent, 'active');
  const sessionId = (await L.sdkState(page)).session.id;

  const pages = ['/account.html', '/index.html', '/product.html', '/checkout.html'];
  const end = Date.now() + minutes * 60_000;
  let tick = 0;
  let pageIndex = 0;
  console.log(`recording ${minutes} min of steady activity on the demo shop…`);
  while (Date.now() < end) {
    tick += 1;
    const x = 100 + ((tick * 37) % 600);
    const y = 100 + ((tick * 53) % 400);
    await page.mouse.move(x, y, { steps: 2 }).catch(() => {});
    if (tick % 5 === 0) {
      const field = await page.$('#acct-name');
      if (field) await page.keyboard.type(String.fromCharCode(97 + (tick % 26))).catch(() => {});
      if (field && tick % 50 === 0) await field.click().catch(() => {});
    }
    if (tick % 25 === 0) await page.mouse.wheel(0, tick % 50 === 0 ? -300 : 300).catch(() => {});
    if (tick % 150 === 0) {
      pageIndex = (pageIndex + 1) % pages.length;
      await page.goto(server.url + pages[pageIndex]).catch(() => {});
      if (pages[pageIndex] === '/account.html') await page.locator('#acct-name').click().catch(() => {});
    }
    if (tick % 300 === 0) console.log(`  ${Math.round((end - Date.now()) / 1000)} s left`);
    await new Promise((r) => setTimeout(r, 200));
  }
  await L.endLiveSessions(server, shortId);
  const ready = await L.waitFor(async () => {
    const s = await L.rest(server, `/api/v1/sessions/${sessionId}`);
    return s.body.video_status === 'ready' && s.body;
  }, { timeoutMs: 30000, what: 'the recording to be ready' });
  const [disk, files] = du(join(server.dir, 'covisit.db-recordings', sessionId));
  const rec = await L.rest(server, `/api/v1/sessions/${sessionId}/recording`);
  const raw = Buffer.byteLength(rec.text);
  const frames = rec.body.records.filter((r) => r[1] === 'm').length;
  const length = (rec.body.records.at(-1)[0] - rec.body.records[0][0]) / 1000;
  console.log(`recorded ${length.toFixed(0)} s: ${rec.body.records.length} records (${frames} mirror frames)`);
  console.log(`on disk: ${(disk / 1024).toFixed(1)} KB in ${files} chunk files (gzip); raw JSON ${(raw / 1024).toFixed(1)} KB; ${(disk / 1024 / (length / 60)).toFixed(1)} KB per minute`);

  const html = await (await fetch(ready.secret_video_url)).text();
  console.log(`downloaded player file: ${(Buffer.byteLength(html) / 1024).toFixed(1)} KB`);
  const file = join(temp, 'recording.html');
  writeFileSync(file, html);
  const ctx = await browser.newContext({ offline: true, viewport: { width: 1440, height: 900 } });
  const player = await ctx.newPage();
  await player.goto(`file://${file}`);
  await player.waitForFunction(() => window.covisitReplay);
  const times = await player.evaluate(async (n) => {
    const r = window.covisitReplay;
    const out = [];
    for (let i = 0; i < n; i++) {
      const at = Math.random() * r.duration;
      const t0 = performance.now();
      r.seek(at);
      await r.rendered();
      await new Promise((res) => requestAnimationFrame(() => res(undefined)));
      out.push([Math.round(at / 1000), performance.now() - t0]);
    }
    return out;
  }, seeks);
  const ms = times.map((t) => t[1]).sort((a, b) => a - b);
  console.log(`seek to a random point (${seeks} points, seek + mirror documents rendered + a frame): median ${ms[Math.floor(ms.length / 2)].toFixed(0)} ms, worst ${ms.at(-1).toFixed(0)} ms`);
  console.log(`  per point (s → ms): ${times.map(([s, t]) => `${s}→${t.toFixed(0)}`).join(' ')}`);
  await ctx.close();
} finally {
  await browser.close();
  await server.stop();
  rmSync(temp, { recursive: true, force: true });
}
