// The npm package's entry: `import { start } from 'covisit'`. Initializes the wasm once
// (it sits next to this file), then starts the SDK.
// @ts-check
import * as wasm from './covisit_wasm.js';

/** @type {Promise<void> | null} */
let loading = null;
let loaded = false;
/** @type {string | null} */
let captureUrl = null;
/** @type {string | null} */
let drawUrl = null;
/** @type {string | null} */
let consoleUrl = null;
/** @type {string | null} */
let callUrl = null;

/**
 * Load the wasm (once). Called by `start`; call it early to warm up. `wasmUrl` defaults
 * to the `.wasm` next to this file. The co-browsing capture (covisit-capture.js) and the
 * drawing layer for agents' ink (covisit-draw.js) and the calls and sharing
 * (covisit-call.js), which only a session needs, are fetched later from next to the wasm.
 * @param {string | URL} [wasmUrl]
 * @returns {Promise<void>}
 */
export function load(wasmUrl) {
  if (!loading) {
    // Written as `new URL('./file', import.meta.url)` so that bundlers copy both files.
    if (wasmUrl) {
      captureUrl = new URL('covisit-capture.js', new URL(wasmUrl, location.href)).href;
      drawUrl = new URL('covisit-draw.js', new URL(wasmUrl, location.href)).href;
      consoleUrl = new URL('covisit-console.js', new URL(wasmUrl, location.href)).href;
      callUrl = new URL('covisit-call.js', new URL(wasmUrl, location.href)).href;
    } else {
      captureUrl = new URL('./covisit-capture.js', import.meta.url).href;
      drawUrl = new URL('./covisit-draw.js', import.meta.url).href;
      consoleUrl = new URL('./covisit-console.js', import.meta.url).href;
      callUrl = new URL('./covisit-call.js', import.meta.url).href;
    }
    loading = wasm.default({ module_or_path: wasmUrl || new URL('./covisit_wasm_bg.wasm', import.meta.url) })
      .then(() => { loaded = true; });
  }
  return loading;
}

// Before the wasm is in, the generated bindings fail with a TypeError about
// `__wbindgen_free`; say what to do instead.
/**
 * @template {unknown[]} A
 * @template R
 * @param {string} name
 * @param {(...args: A) => R} f
 * @returns {(...args: A) => R}
 */
function whenLoaded(name, f) {
  return (...args) => {
    if (!loaded) throw Object.assign(new Error(`covisit is not loaded yet: await load() (or start()) before calling ${name}()`), { code: 'not_loaded' });
    return f(...args);
  };
}

// A new task, so instantiating the wasm and starting the SDK are two short tasks on the
// page's main thread rather than one long one.
const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * Connect to the covisit server and identify the visitor: resolves with the SDK object.
 * @param {wasm.CovisitConfig} config
 * @returns {Promise<wasm.Covisit>}
 */
export async function start(config) {
  if (typeof WebAssembly !== 'object') throw unsupported(config);
  await load();
  await nextTask();
  if (typeof wasm.startCovisit !== 'function') {
    throw Object.assign(new Error('this build of covisit has no session client (build with --preview)'), { code: 'unsupported' });
  }
  return wasm.startCovisit(config, captureUrl, drawUrl, consoleUrl, callUrl);
}

/**
 * A browser without WebAssembly cannot run the SDK, yet its visitor should not look like
 * one an agent can co-browse with: when it has WebSocket, this says hello by hand (the
 * protocol's `hello`, docs/PROTOCOL.md) with `connection.missing`, so the server shows the
 * Visitor online with `is_supported: false` and refuses session requests for it
 * (`visitor_unsupported`), and keeps the socket alive with heartbeats. Resolves nothing:
 * returns the `unsupported` error `start()` rejects with.
 * @param {any} config
 * @returns {Error}
 */
function unsupported(config) {
  const error = Object.assign(new Error('this browser cannot run covisit: it has no WebAssembly'), { code: 'unsupported' });
  const server = config && typeof config.server === 'string' && /^https?:\/\//.test(config.server) ? config.server : null;
  if (!server || typeof config.apiKey !== 'string' || typeof WebSocket !== 'function') return error;
  /** @param {string} k */
  const stored = (k) => { try { return localStorage.getItem(k); } catch (e) { return null; } };
  const ws = new WebSocket(`${server.replace(/^http/, 'ws').replace(/\/+$/, '')}/ws/visitor`);
  /** @param {unknown} m */
  const say = (m) => { if (ws.readyState === 1) ws.send(JSON.stringify(m)); };
  ws.onopen = () => say({
    type: 'hello', protocol_version: 1, api_key: config.apiKey,
    short_id: stored('covisit.short_id'), visitor_secret: stored('covisit.visitor_secret'),
    connection: { currentUrl: location.href, screenWidth: screen.width, screenHeight: screen.height,
      hasFocus: document.hasFocus(), userAgent: navigator.userAgent, missing: ['WebAssembly'] },
    config: {},
  });
  ws.onmessage = (e) => {
    let m;
    try { m = JSON.parse(e.data); } catch (x) { return; }
    if (!m || m.type !== 'welcome') return;
    try {
      localStorage.setItem('covisit.short_id', m.short_id);
      if (m.visitor_secret) localStorage.setItem('covisit.visitor_secret', m.visitor_secret);
    } catch (x) { /* private mode: a new visitor next time */ }
    const beat = setInterval(() => (ws.readyState === 1 ? say({ type: 'heartbeat' }) : clearInterval(beat)), 20000);
  };
  return error;
}

// Calls (issue 17): these methods of the SDK object are one wasm export, `callApi`
// (src/web/session.rs), which the on-demand call file answers; typed in covisit_wasm.d.ts.
const CALL_METHODS = ['acceptCall', 'declineCall', 'endCall', 'setMicrophone', 'setCamera'];
for (const name of CALL_METHODS) {
  Object.defineProperty(wasm.Covisit.prototype, name, {
    /** @this {any} @param {boolean} [on] */
    value(on) { return this.callApi(name, on); },
    configurable: true,
    writable: true,
  });
}

export const version = whenLoaded('version', () => wasm.version());
export const Covisit = wasm.Covisit;
