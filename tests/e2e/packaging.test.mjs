// The npm package as users get it: build the SDK into a temporary folder, pack it with
// the repository's own package.json (its `files`, `exports` and entry points, so the test
// fails when they drift from what the build writes), install the tarball into a fresh
// folder (offline: a local tarball needs no registry), and load node_modules/covisit in
// Chromium the two ways users do: a <script> tag of covisit.js and an ES module import of
// index.js. Both must reach `ready` against the real server, and a session must fetch
// the on-demand capture from the package too.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, readdirSync, cpSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as L from './lib.mjs';

const PACKAGE_FILES = ['index.js', 'index.d.ts', 'covisit.js', 'covisit-capture.js', 'covisit-draw.js', 'covisit-console.js', 'covisit-call.js', 'covisit_wasm.d.ts', 'covisit_wasm_bg.wasm'];

let tmp;
let server;
let browser;
let site;
let tarball;

function run(cmd, args, cwd, timeout = 240000) {
  return execFileSync(cmd, args, { cwd, timeout, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false' } });
}

before(async () => {
  assert.ok(existsSync(L.SERVER_BIN), `${L.SERVER_BIN} is missing: run cargo build -p covisit-server`);
  tmp = mkdtempSync(join(tmpdir(), 'covisit-pack-'));
  const build = join(tmp, 'build');
  // COVISIT_DIST points the build at the temp folder (dist/ stays as it is).
  execFileSync('bash', ['scripts/build'], {
    cwd: L.ROOT, timeout: 240000, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 << 20,
    env: { ...process.env, COVISIT_DIST: build, COVISIT_SKIP_BOOTSTRAP: '1' },
  });
  L.requireBuilt(build);

  // The repository's package.json as it is, next to a dist/ from this build.
  const pkg = join(tmp, 'pkg');
  mkdirSync(pkg);
  cpSync(build, join(pkg, 'dist'), { recursive: true });
  cpSync(join(L.ROOT, 'package.json'), join(pkg, 'package.json'));
  for (const f of ['README.md']) cpSync(join(L.ROOT, f), join(pkg, f));
  // --ignore-scripts: `prepack` would build again.
  const packed = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], pkg));
  tarball = { path: join(tmp, packed[0].filename), files: packed[0].files.map((f) => f.path) };

  const app = join(tmp, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'covisit-packaging-test', private: true, type: 'module' }));
  run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball.path], app);

  // The SDK must come from node_modules, not from the server: give the server none.
  server = await L.startServer({ sdkDir: join(tmp, 'no-sdk-here') });
  const config = JSON.stringify({ apiKey: L.PUBLIC_KEY, server: server.url });
  writeFileSync(join(app, 'script.html'), `<!doctype html><meta charset="utf-8"><title>script tag</title>
<script>
  window.Covisit = window.Covisit || function () { (Covisit.q = Covisit.q || []).push(arguments); };
  Covisit('init', ${config});
  Covisit('on', 'ready', function (detail) { window.readyDetail = detail; });
</script>
<script async src="/node_modules/covisit/dist/covisit.js"></script>`);
  writeFileSync(join(app, 'module.html'), `<!doctype html><meta charset="utf-8"><title>ES module</title>
<script type="module">
  import { start, version } from '/node_modules/covisit/dist/index.js';
  const cv = await start(${config});
  window.cv = cv;
  window.readyDetail = { shortId: cv.state().visitor.short_id, version: version() };
</script>`);
  site = await L.serveStatic(app);
  browser = await L.launchBrowser();
}, { timeout: 300000 });

after(async () => {
  await browser?.close();
  await site?.close();
  await server?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}, { timeout: 30000 });

async function loadsToReady(path) {
  const page = await L.openVisitor(browser);
  const fetched = [];
  page.on('requestfinished', (r) => fetched.push(r.url()));
  await page.goto(site.url + path);
  const detail = await L.waitFor(() => page.evaluate(() => window.readyDetail), { timeoutMs: 15000, what: `ready on ${path}` });
  assert.match(detail.shortId, /\S/);
  assert.ok(fetched.some((u) => u === `${site.url}/node_modules/covisit/dist/covisit_wasm_bg.wasm`), `the wasm came from node_modules: ${fetched.join(' ')}`);
  assert.ok(!fetched.some((u) => u.startsWith(server.url)), 'nothing was loaded from the server');
  assert.ok(!fetched.some((u) => u.includes('covisit-capture')), 'the capture waits for a session');
  assert.ok(!fetched.some((u) => u.includes('covisit-draw')), 'the drawing layer waits for a session');
  assert.ok(!fetched.some((u) => u.includes('covisit-call')), 'the call file waits for a call');
  assert.deepEqual(page.errors, []);
  const online = await L.rest(server, '/api/v1/visitors?online=true');
  assert.ok(online.body.visitors.some((v) => v.short_id === detail.shortId), 'the server has the visitor online');
  return { detail, page, fetched };
}

describe('npm package', () => {
  it('the tarball holds the SDK files and the exports map resolves', () => {
    for (const f of ['package.json', ...PACKAGE_FILES.map((x) => `dist/${x}`)]) {
      assert.ok(tarball.files.includes(f), `${f} is packed (packed: ${tarball.files.join(', ')})`);
    }
    assert.ok(!tarball.files.some((f) => /\.(gz|br)$/.test(f)), 'no precompressed copies are packed');
    const app = join(tmp, 'app');
    const installed = JSON.parse(readFileSync(join(app, 'node_modules/covisit/package.json'), 'utf8'));
    assert.deepEqual(Object.keys(installed.exports['.']), ['types', 'browser', 'import', 'default'], 'types first');
    const resolve = (spec) => run(process.execPath, ['--input-type=module', '-e', `console.log(import.meta.resolve(${JSON.stringify(spec)}))`], app).trim();
    assert.ok(resolve('covisit').endsWith('/node_modules/covisit/dist/index.js'));
    assert.ok(resolve('covisit/covisit.js').endsWith('/node_modules/covisit/dist/covisit.js'));
    assert.ok(resolve('covisit/package.json').endsWith('/node_modules/covisit/package.json'));
  });

  it('<script src="node_modules/covisit/dist/covisit.js"> reaches ready', { timeout: 30000 }, async () => {
    const { detail, page } = await loadsToReady('/script.html');
    assert.match(detail.uniqueConnectionId, /\S/);
    await page.context().close();
  });

  it('import { start } from "node_modules/covisit/dist/index.js" reaches ready, and a session fetches the capture and the drawing layer from the package', { timeout: 60000 }, async () => {
    const { detail, page, fetched } = await loadsToReady('/module.html');
    assert.equal(detail.version, JSON.parse(readFileSync(join(L.ROOT, 'package.json'), 'utf8')).version);
    const agent = await L.rawSocket(browser, server, '/ws/agent', { type: 'hello', protocol_version: 1, secret_key: L.SECRET, name: 'Pack', external_id: 'e2e-pack' });
    await agent.expect((m) => m.type === 'welcome');
    await page.evaluate(() => window.cv.on('sessionRequest', () => window.cv.authorize()));
    await agent.send({ type: 'request_session', short_id: detail.shortId, found_by: 'search' });
    await agent.expect((m) => m.type === 'mirror' && m.data.some((r) => r[0] === 'E'));
    assert.ok(fetched.includes(`${site.url}/node_modules/covisit/dist/covisit-capture.js`), `the capture came from node_modules: ${fetched.join(' ')}`);
    // The drawing layer is fetched once the session is active (and the page allows drawing).
    await L.waitFor(() => fetched.includes(`${site.url}/node_modules/covisit/dist/covisit-draw.js`), { what: `the drawing layer from node_modules (fetched: ${fetched.join(' ')})` });
    await L.endLiveSessions(server, detail.shortId);
    await agent.close();
    await page.context().close();
  });
});
