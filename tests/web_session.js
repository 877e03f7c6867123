// Plumbing for tests/web_session.rs (browser tests of the session client): watches what
// the SDK does to the page from the outside, the way a page or a proxy could.
//
// - Every WebSocket made (the constructor is wrapped) and every frame handed to one
//   (`send`) or received by one, with the socket's URL.
// - `setBlocked(true)` stops frames from the server reaching the SDK's visitor socket,
//   so a test can show that a timer of the SDK itself acts (as when offline).
// - Listeners the page's window and document got while `trackListeners` is on.
// - An agent on /ws/agent with the demo secret key, to make and watch sessions.

const rec = { sent: [], received: [], created: [], listeners: [], tracking: false, blocked: false };
let originals = null;

export function install() {
  if (originals) return;
  const Native = window.WebSocket;
  const send = Native.prototype.send;
  const onmessage = Object.getOwnPropertyDescriptor(Native.prototype, 'onmessage');
  originals = { pushState: history.pushState, replaceState: history.replaceState };
  Native.prototype.send = function (data) {
    rec.sent.push({ url: this.url, frame: JSON.parse(data), at: Date.now() });
    return send.call(this, data);
  };
  window.WebSocket = new Proxy(Native, {
    construct(target, args) {
      const ws = Reflect.construct(target, args);
      const visitor = String(args[0]).endsWith('/ws/visitor');
      rec.created.push({ url: String(args[0]), at: Date.now(), ws });
      ws.addEventListener('message', (e) => rec.received.push({ url: ws.url, frame: JSON.parse(e.data), at: Date.now() }));
      if (visitor) {
        Object.defineProperty(ws, 'onmessage', {
          configurable: true,
          get() { return onmessage.get.call(ws); },
          set(h) { onmessage.set.call(ws, h && function (e) { if (!rec.blocked) return h.call(this, e); }); },
        });
      }
      return ws;
    },
  });
  const add = EventTarget.prototype.addEventListener;
  const remove = EventTarget.prototype.removeEventListener;
  const watched = (t) => t === window || t === document;
  const capture = (o) => Boolean(typeof o === 'object' && o !== null ? o.capture : o);
  EventTarget.prototype.addEventListener = function (type, fn, options) {
    if (rec.tracking && watched(this) && fn) rec.listeners.push({ target: this === window ? 'window' : 'document', type, fn, capture: capture(options) });
    return add.call(this, type, fn, options);
  };
  EventTarget.prototype.removeEventListener = function (type, fn, options) {
    if (watched(this)) {
      const i = rec.listeners.findIndex((l) => l.type === type && l.fn === fn && l.capture === capture(options) && (l.target === 'window') === (this === window));
      if (i >= 0) rec.listeners.splice(i, 1);
    }
    return remove.call(this, type, fn, options);
  };
}

/** Forgets what was recorded and gives the next test a new visitor (fresh storage). */
export function reset() {
  rec.sent.length = 0;
  rec.received.length = 0;
  rec.created.length = 0;
  rec.listeners.length = 0;
  rec.tracking = false;
  rec.blocked = false;
  localStorage.clear();
  sessionStorage.clear();
  delete document.hidden;
  delete document.visibilityState;
}

export function trackListeners(on) { rec.tracking = on; }
/** The window/document listeners added while tracking and not removed, as "target:type". */
export function liveListeners() { return rec.listeners.map((l) => `${l.target}:${l.type}`); }
export function setBlocked(on) { rec.blocked = on; }

/** Frames (parsed) handed to sockets whose URL ends with `path`. */
export function sentFrames(path) { return rec.sent.filter((f) => f.url.endsWith(path)).map((f) => f.frame); }
export function receivedFrames(path) { return rec.received.filter((f) => f.url.endsWith(path)).map((f) => f.frame); }
export function socketsCreated(path) { return rec.created.filter((s) => s.url.endsWith(path)).length; }
/** readyState of the newest socket to `path` (-1: none). */
export function lastSocketState(path) {
  const s = rec.created.filter((c) => c.url.endsWith(path)).at(-1);
  return s ? s.ws.readyState : -1;
}

export function historyIsNative() {
  return history.pushState === originals.pushState && history.replaceState === originals.replaceState;
}

export function dispatchOn(target, type) {
  (target === 'document' ? document : window).dispatchEvent(new Event(type));
}

export function pressControl() {
  window.dispatchEvent(new KeyboardEvent('keydown', { key: 'Control', bubbles: true }));
}

/** Makes the page look hidden (true) or back to the browser's own answer (false). */
export function setHidden(hidden) {
  if (hidden) {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
  } else {
    delete document.hidden;
    delete document.visibilityState;
  }
}

export function documentHasFocus() { return document.hasFocus() && !document.hidden; }

/** What the SDK's default UI shows: the `data-covisit` names inside <covisit-ui>, or null without the element. */
export function uiShown() {
  const hosts = document.querySelectorAll('covisit-ui');
  if (hosts.length === 0) return null;
  return [...hosts].flatMap((h) => [...h.shadowRoot.querySelectorAll('[data-covisit]')].map((e) => e.dataset.covisit));
}

export function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

/** An agent signed in on /ws/agent. */
export async function connectAgent(server, name) {
  const ws = new WebSocket(server.replace(/^http/, 'ws') + '/ws/agent');
  const frames = [];
  ws.addEventListener('message', (e) => frames.push(JSON.parse(e.data)));
  await new Promise((resolve, reject) => {
    ws.addEventListener('open', resolve, { once: true });
    ws.addEventListener('error', () => reject(new Error('the agent socket failed')), { once: true });
    setTimeout(() => reject(new Error('the agent socket did not open in 5 s')), 5000);
  });
  ws.send(JSON.stringify({ type: 'hello', protocol_version: 1, secret_key: 'sk_demo', name, external_id: `web-${name}` }));
  return {
    frames,
    send(message) { ws.send(JSON.stringify(message)); },
    close() { ws.close(); },
  };
}
