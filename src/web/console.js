// The remote console's page side (`allowRemoteConsole`, default off), loaded on demand
// as covisit-console.js once a session is active on a page that allows it, and removed
// when it ends (src/core/client/console.rs is the gate). It records, read-only, what the
// page writes to its console (log, info, warn, error), its uncaught errors and unhandled
// rejections, and its failed network requests (fetch and XHR: a status of 400 or more,
// or no answer), with the method, the URL without query, fragment or credentials, and
// the status. Nothing is ever evaluated on the page: no eval, no Function, so a CSP
// without 'unsafe-eval' is fine. Entries are cut to 1 KiB, batched, and limited to
// RATE entries per WINDOW_MS (the rest are counted in one line); the server limits again.
// @ts-check

const MAX_TEXT = 1024;
const BATCH_MS = 250;
const MAX_BATCH = 50;
const RATE = 100;
const WINDOW_MS = 10000;
const METHODS = /** @type {const} */ (['log', 'info', 'warn', 'error']);

/** @typedef {{ kind: string, at: number, text: string, method?: string, url?: string, status?: number }} Entry */

/** `s` cut to at most `n` UTF-8 bytes, at a character boundary. @param {string} s @param {number} n */
function cut(s, n) {
  if (s.length * 3 <= n) return s;
  const bytes = new TextEncoder().encode(s);
  if (bytes.length <= n) return s;
  return new TextDecoder().decode(bytes.slice(0, n - 3)).replace(/\uFFFD$/, '') + '…';
}

/** One console argument as text. @param {unknown} v @returns {string} */
function show(v) {
  if (typeof v === 'string') return v;
  if (v instanceof Error) return `${v.name}: ${v.message}`;
  if (v === undefined || typeof v === 'function' || typeof v === 'symbol') return String(v);
  try { return cut(JSON.stringify(v) ?? String(v), MAX_TEXT); } catch (e) { return Object.prototype.toString.call(v); }
}

/** The URL without query, fragment or credentials (`data:` and the like: the scheme). @param {unknown} url */
export function cleanUrl(url) {
  try {
    const u = new URL(String(url), location.href);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return u.protocol;
    return cut(u.origin + u.pathname, MAX_TEXT);
  } catch (e) {
    return '';
  }
}

/**
 * Installs the hooks; `onBatch(json)` gets batches of entries (a JSON array) and returns
 * false when they must go. Returns the function that removes them (originals that the
 * page replaced after us are left alone).
 * @param {(batch: string) => boolean} onBatch
 * @returns {() => void}
 */
export function hook(onBatch) {
  /** @type {Entry[]} */
  let queue = [];
  let timer = 0;
  let windowStart = Date.now();
  let inWindow = 0;
  let dropped = 0;
  let on = true;

  const flush = () => {
    timer = 0;
    if (!on || !queue.length) return;
    const batch = queue.splice(0, MAX_BATCH);
    if (queue.length) timer = window.setTimeout(flush, BATCH_MS);
    if (!onBatch(JSON.stringify(batch))) off();
  };
  /** @param {Entry} e */
  const record = (e) => {
    if (!on) return;
    const now = Date.now();
    if (now - windowStart >= WINDOW_MS) {
      if (dropped) queue.push({ kind: 'warn', at: now, text: `covisit: ${dropped} console lines were not sent (more than ${RATE} in ${WINDOW_MS / 1000} s)` });
      windowStart = now;
      inWindow = 0;
      dropped = 0;
    }
    if (inWindow >= RATE) { dropped++; return; }
    inWindow++;
    e.text = cut(e.text, MAX_TEXT);
    queue.push(e);
    if (!timer) timer = window.setTimeout(flush, BATCH_MS);
  };

  /** @type {Record<string, (...args: unknown[]) => void>} */
  const wrapped = {};
  const c = /** @type {Record<string, (...args: unknown[]) => void>} */ (/** @type {unknown} */ (console));
  /** @type {Record<string, (...args: unknown[]) => void>} */
  const original = {};
  for (const m of METHODS) {
    const orig = (original[m] = c[m]);
    c[m] = wrapped[m] = function (...args) {
      orig.apply(this, args);
      try { record({ kind: m, at: Date.now(), text: args.map(show).join(' ') }); } catch (e) { /* never break the page's logging */ }
    };
  }

  /** @param {ErrorEvent} e */
  const onError = (e) => record({
    kind: 'exception', at: Date.now(),
    text: `${e.message || 'error'}${e.filename ? ` (${cleanUrl(e.filename)}:${e.lineno})` : ''}`,
  });
  /** @param {PromiseRejectionEvent} e */
  const onRejection = (e) => record({ kind: 'rejection', at: Date.now(), text: `Unhandled rejection: ${show(e.reason)}` });
  // Bubbling only: resource errors (an image that did not load) do not bubble to window.
  window.addEventListener('error', onError);
  window.addEventListener('unhandledrejection', onRejection);

  /** @param {string} method @param {unknown} url @param {number} status */
  const failed = (method, url, status) => {
    const clean = cleanUrl(url);
    record({ kind: 'network', at: Date.now(), text: `${method} ${clean} ${status || 'failed'}`, method: cut(method, 16), url: clean, status });
  };

  const origFetch = window.fetch;
  /** @type {typeof fetch} */
  const ourFetch = function (input, init) {
    const req = typeof Request === 'function' && input instanceof Request ? input : null;
    const method = String((init && init.method) || (req && req.method) || 'GET').toUpperCase();
    const url = req ? req.url : input;
    return origFetch.call(this, input, init).then((res) => {
      if (res.status >= 400) failed(method, url, res.status);
      return res;
    }, (err) => {
      failed(method, url, 0);
      throw err;
    });
  };
  if (typeof origFetch === 'function') window.fetch = ourFetch;

  const XHR = window.XMLHttpRequest && XMLHttpRequest.prototype;
  const origOpen = XHR && XHR.open;
  const origSend = XHR && XHR.send;
  /** @type {WeakMap<XMLHttpRequest, [string, unknown]>} */
  const opened = new WeakMap();
  /** @type {(this: XMLHttpRequest, ...args: any[]) => void} */
  const ourOpen = function (...args) {
    opened.set(this, [String(args[0] || 'GET').toUpperCase(), args[1]]);
    return /** @type {Function} */ (origOpen).apply(this, args);
  };
  /** @type {(this: XMLHttpRequest, ...args: any[]) => void} */
  const ourSend = function (...args) {
    const what = opened.get(this);
    if (what) {
      const xhr = this;
      const done = () => { if (xhr.status >= 400 || xhr.status === 0) failed(what[0], what[1], xhr.status); };
      xhr.addEventListener('load', done);
      xhr.addEventListener('error', done);
      xhr.addEventListener('timeout', done);
    }
    return /** @type {Function} */ (origSend).apply(this, args);
  };
  if (XHR) { XHR.open = ourOpen; XHR.send = ourSend; }

  function off() {
    if (!on) return;
    on = false;
    clearTimeout(timer);
    queue = [];
    for (const m of METHODS) if (c[m] === wrapped[m]) c[m] = original[m];
    window.removeEventListener('error', onError);
    window.removeEventListener('unhandledrejection', onRejection);
    if (window.fetch === ourFetch) window.fetch = origFetch;
    if (XHR && XHR.open === ourOpen) XHR.open = /** @type {any} */ (origOpen);
    if (XHR && XHR.send === ourSend) XHR.send = /** @type {any} */ (origSend);
  }
  return off;
}
