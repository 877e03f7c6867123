// The co-browsing capture's first-load half: a stand-in for mirror.js (the capture
// itself, docs/MIRROR.md), which is only needed once a session is active and so loads on
// demand from next to the SDK (dist/covisit-capture.js). What must run from SDK start,
// long before any session, lives here: the watch that remembers every field that is or
// was a password field, so that it stays masked whatever its type is later.

/** Elements that are or were secret while the SDK was loaded (shared with mirror.js). */
const secret = new WeakSet();
/** Elements scrolled while the SDK was loaded (shared with mirror.js): a snapshot reads the
 * scroll position of these only (on a large page), each read may cost a layout. */
const scrolled = new WeakSet();
const markScrolled = (e) => scrolled.add(e.target);
const isPassword = (t) => t && t.localName === 'input' && String(t.type).toLowerCase() === 'password';
const markSecret = (e) => { const t = e.composedPath ? e.composedPath()[0] : e.target; if (isPassword(t)) secret.add(t); };
const GUARD_EVENTS = ['focusin', 'input', 'change', 'keydown'];

/** Every password field there is now, every one whose type changes, and every one the
 * visitor focuses or types in (those events are composed: this reaches into shadow
 * roots) joins `secret`. Returns the undo. */
function guardSecrets() {
  for (const el of document.querySelectorAll('input[type=password i]')) secret.add(el);
  // A browser without MutationObserver cannot co-browse (the SDK reports it as
  // unsupported, and no session starts): the events below still mark fields.
  const MO = typeof MutationObserver === 'function' ? MutationObserver : null;
  // Only `type` changes are observed: the page's other mutations cost nothing here.
  const mo = MO && new MO((recs) => {
    for (const r of recs) {
      if (r.target.localName !== 'input') continue;
      if (String(r.oldValue).trim().toLowerCase() === 'password' || isPassword(r.target)) secret.add(r.target);
    }
  });
  if (mo) mo.observe(document, { subtree: true, attributes: true, attributeFilter: ['type'], attributeOldValue: true });
  for (const k of GUARD_EVENTS) document.addEventListener(k, markSecret, { capture: true, passive: true });
  document.addEventListener('scroll', markScrolled, { capture: true, passive: true });
  return () => {
    if (mo) mo.disconnect();
    for (const k of GUARD_EVENTS) document.removeEventListener(k, markSecret, { capture: true });
    document.removeEventListener('scroll', markScrolled, { capture: true });
  };
}

export class Capture {
  /** `url`: where mirror.js was built to (covisit-capture.js next to the SDK's wasm). */
  constructor(onBatch, masked, url) {
    this.onBatch = onBatch;
    this.masked = masked;
    this.url = url;
    this.mirror = null;
    this.loading = null;
    this.want = false;
    this.granted = false;
    this.unguard = guardSecrets();
  }

  /** Fetches the capture (a session was requested: it will likely be needed). */
  preload() {
    if (!this.loading && this.url) {
      this.loading = import(/* webpackIgnore: true */ /* @vite-ignore */ this.url).then((m) => {
        if (!this.unguard) return; // stopped meanwhile
        this.mirror = new m.Mirror(this.onBatch, this.masked, secret, scrolled);
        this.mirror.control(this.granted);
        if (this.want) this.mirror.start();
      }, (e) => {
        this.loading = null;
        console.error('[covisit] the co-browsing capture did not load', e);
      });
    }
    return this.loading;
  }

  start() {
    this.want = true;
    if (this.mirror) this.mirror.start();
    else this.preload();
  }

  stop() {
    this.want = false;
    if (this.mirror) this.mirror.stop();
  }

  destroy() {
    this.want = false;
    if (this.mirror) this.mirror.destroy();
    this.mirror = null;
    if (this.unguard) this.unguard();
    this.unguard = null;
  }

  /** A remote action; '' when applied, else why not ('not_ready' until loaded). */
  apply(action) {
    return this.mirror ? this.mirror.apply(action) : 'not_ready';
  }

  /** An asset the server asks for (a session is active: the client checked). */
  asset(id, url) {
    if (this.mirror) this.mirror.asset(id, url);
  }

  control(granted) {
    this.granted = granted;
    if (this.mirror) this.mirror.control(granted);
  }

  /** The page's node of a mirror node id (0: the document) of mirror epoch `epoch` (0:
   * any), or null: where an agent's ink hangs (draw.js). Ids are per epoch: one of an
   * older snapshot may name another node now. */
  find(id, epoch) {
    const m = this.mirror;
    if (!m || !m.on) return null;
    if (id !== 0 && epoch && m.epoch !== epoch) return null;
    return m.find(id);
  }
}
