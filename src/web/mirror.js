// Co-browsing capture (docs/MIRROR.md), loaded on demand once a session needs it
// (capture.js stands in for it until then; the build writes it as covisit-capture.js): a time-sliced
// snapshot of the page, then MutationObserver changes, input values, scroll, pointer,
// focus and viewport, as compact JSON records handed to Rust in batches (each one wire
// frame); and remote actions applied with real DOM events. Masking happens here, before
// anything reaches Rust: masked values and text never leave this module. It holds no
// consent logic: Rust starts and stops it, and drops any batch outside an active session.

const MAX_FRAME = 60000; // bytes of records per batch (the wire's limit is 64 KiB)
const SLICE_MS = 8; // longest stretch of snapshot work before yielding to the page
const STORM = 20000; // mutation records or new nodes in one flush beyond which we re-snapshot
const CHUNK = 16000; // longer text goes out in appended pieces
const MAX_ATTR = 16000; // longer attribute values (inline data: URLs) are dropped
const set = (s) => new Set(s.split(' '));
const SKIP = set('script noscript template base object embed covisit-ui covisit-pointer');
const URLS = set('href src action formaction poster data background cite xlink:href longdesc');
// Fields that hold secrets whatever their type: passwords, one-time codes, card data.
const SECRET_AUTOCOMPLETE = '[autocomplete*="cc-" i],[autocomplete*="current-password" i],[autocomplete*="new-password" i],[autocomplete*="one-time-code" i]';
const MASK_INPUT = 'input[type=password i],' + SECRET_AUTOCOMPLETE;
const MASK_BOX = '.covisit-mask,[data-covisit-mask]';
// A maskedElements selector whose parts are all compound selectors (tag, #id, .class,
// [attr]) matches an element by the element's own attributes: only elements whose
// attributes changed can change their masking. Anything else (combinators, :has(),
// pseudo-classes) can change with a sibling's or a descendant's change.
const COMPOUND = /^[\w-]*(?:[#.][\w-]+|\[\s*[\w-]+\s*(?:[~|^$*]?=\s*(?:"[^"]*"|'[^']*'|[\w-]+)\s*(?:[is]\s*)?)?\])*$/;
const BOX_ATTRS = set('id class style type name placeholder role aria-label autocomplete dir');
const FORM = /^(input|textarea|select)$/;
const NOKIDS = /^(input|textarea)$/;
const ON = /^on/i;
// A path from the root that URL parsing would leave as it is: no dot segments, no
// escapes (%2e is a dot), backslashes, quotes, spaces or other characters it would escape.
const PLAIN_PATH = /^(?!.*\/\.)\/(?![/\\])[\w\-.~/?=&#:@!$()*+,;]*$/;
const CSS_URL = /url\(\s*(['"]?)([^'")]*)\1\s*\)/g;
// The periodic pass (docs/MIRROR.md, "What changes without a mutation"): every POLL_MS,
// at most DEEP_MS of checks of style sheets, form states, custom states and images.
const POLL_MS = 250;
const DEEP_MS = 4;
const RULES_CHUNK = 16000; // characters of rule text per "I" record
// Canvas and video images: at most one being made at a time, each element at most every
// IMG_GAP ms (backing off to IMG_GAP_MAX while it does not change), at most IMG_BPS bytes
// a second on average, none larger than IMG_MAX characters, none over IMG_PIXELS pixels.
const IMG_GAP = 500;
const IMG_GAP_MAX = 4000;
const IMG_BPS = 300000;
const IMG_MAX = 400000;
const IMG_PIXELS = 1000000;
// A canvas of at most IMG_SYNC pixels goes as a PNG from toDataURL: lossless, and the
// cheapest on the main thread for charts and UI (about 1 ms at 600×240, npm run
// bench:fidelity). A larger one (or a video, or a canvas whose PNG was over IMG_PNG: a
// photo, a game) goes scaled to its size on screen and encoded as lossy WebP off the main
// thread (createImageBitmap, OffscreenCanvas.convertToBlob).
const IMG_SYNC = 300000;
const IMG_PNG = 150000;
const MEDIA_EVENTS = ['play', 'pause', 'seeked', 'ratechange', 'ended', 'loadeddata'];
// Assets through covisit (docs/MIRROR.md): what the page sends when the server could not
// fetch an asset itself. Only style sheets, fonts and images (by type, or by extension
// for a generic type), at most ASSET_MAX bytes, in base64 pieces of ASSET_PIECE
// characters (one `a` record per frame); at most SENT_MAX URLs remembered as sent.
const ASSET_TYPE = /^(text\/css|font\/[\w.+-]+|application\/(font-woff2?|x-font-[\w-]+|font-sfnt|vnd\.ms-fontobject)|image\/(png|apng|jpeg|jpg|pjpeg|gif|webp|avif|svg\+xml|bmp|x-icon|vnd\.microsoft\.icon))$/;
const ASSET_GENERIC = /^(|application\/octet-stream|binary\/octet-stream)$/;
const ASSET_EXT = /\.(css|woff2?|ttf|otf|eot|png|jpe?g|gif|webp|avif|ico)$/i;
const ASSET_MAX = 5 * 1024 * 1024;
const ASSET_PIECE = 48000;
const SENT_MAX = 20000;
// Elements that never scroll (void, text-level or SVG), skipped when scroll positions are read.
const HTML = 'http://www.w3.org/1999/xhtml';
const NOSCROLL = set('br img input hr wbr meta link style title head a span b i em strong small code label option');
// A snapshot reads the scroll position of the elements scrolled since the SDK started
// (capture.js) and of the first SCAN elements walked: reading every element's costs about
// 5 µs each (320 ms at 66,000 elements here), and a read may force the page's pending layout.
const SCAN = 4000;
const STATE = /:state\(\s*([\w-]+)\s*\)/g;

const WIDE = /[^\0-\x7f]/;
const utf8 = (s) => {
  let n = s.length;
  if (WIDE.test(s)) for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 127) n += 2;
  return n;
};
const abs = (u, base) => {
  if (/^https?:\/\/[^\s]*$/i.test(u)) return u;
  try {
    const url = new URL(u, base);
    return url.protocol === 'javascript:' ? null : url.href;
  } catch { return u; }
};
/** CSS text with its url()s made absolute; each one noted in `sent` when given (an
 * asset URL this capture sent, which the page may then send itself: see asset()). */
const css = (text, base, sent) => text.replace(CSS_URL, (m, q, u) => {
  const v = abs(u, base);
  if (sent && v && sent.size < SENT_MAX) sent.add(v);
  return `url(${q}${v || ''}${q})`;
});
/** A sheet's rules, or null when they cannot be read (another origin without CORS). */
const ruleList = (sheet) => { try { return sheet.cssRules; } catch { return null; } };
const sub = (r) => (r.cssRules ? r.cssRules.length : -1);
const is = (el, sel) => { try { return el.matches(sel); } catch { return false; } };
/** A document's doctype as [name, publicId, systemId], or 0 (none: quirks mode). */
const doctype = (doc) => { const d = doc.doctype; return d ? [d.name, d.publicId, d.systemId] : 0; };
/** The text of a value the capture keeps to compare (never sent as such). */
const fieldState = (el) => (el.type === 'checkbox' || el.type === 'radio' ? (el.checked ? '1' : '0')
  : el.localName === 'select' && el.multiple ? [...el.options].map((o) => (o.selected ? 1 : 0)).join('') : el.value);
const task = (f) => { const c = new MessageChannel(); c.port1.onmessage = f; c.port2.postMessage(0); };

/** Whether `n` is `a` or inside it, across shadow roots and same-origin frames. */
function within(a, n) {
  for (let x = n; x; ) {
    if (x === a) return true;
    if (x.parentNode) x = x.parentNode;
    else if (x.host) x = x.host;
    else if (x.nodeType === 9) { try { x = x.defaultView && x.defaultView.frameElement; } catch { x = null; } }
    else x = null;
  }
  return false;
}

export class Mirror {
  /** `secret`: fields that are or were secret since the SDK started; `scrolled`: elements
   * scrolled since (capture.js keeps both from SDK start; fresh sets for a capture used on
   * its own, as the benchmarks do). */
  constructor(onBatch, masked, secretFields = new WeakSet(), scrolled = new WeakSet()) {
    this.secret = secretFields;
    this.scrolled = scrolled;
    this.onBatch = onBatch;
    this.sel = JSON.parse(masked || '[]').join(',');
    try { if (this.sel) document.createDocumentFragment().querySelector(this.sel); } catch {
      // Fail closed: a typo in maskedElements must not show what it meant to hide.
      console.error('[covisit] maskedElements has an invalid selector; the page is not shared');
      this.broken = true;
    }
    this.mask = MASK_BOX + (this.sel ? ',' + this.sel : '');
    this.all = MASK_INPUT + ',' + this.mask;
    this.complex = !this.broken && Boolean(this.sel) && !this.sel.split(',').every((p) => COMPOUND.test(p.trim()));
    this.epoch = Date.now() % 1e6;
    this.on = false;
    // Absolute URLs of resources this capture sent in this session (attributes of
    // elements that are not masked, style attributes, style sheet rules), kept across
    // snapshots until the capture stops: the only ones asset() sends.
    this.sent = new Set();
    this.ptr = null;
    this.flushNow = () => this.flush();
    this.onEvent = (e) => this.event(e);
    this.deepNow = () => this.flush(true);
  }

  /** The SDK stops: nothing of the capture stays on the page. */
  destroy() {
    this.stop();
  }

  // ----- lifecycle ---------------------------------------------------------------------

  /** Starts capturing with a new snapshot (restarts a running capture). */
  start() {
    try {
      this.reset();
      if (this.broken) return;
      this.on = true;
      this.snapshot();
    } catch (e) {
      console.error('[covisit]', e);
      this.stop();
    }
  }

  stop() {
    this.reset();
    this.control(false);
    this.sent = new Set();
  }

  /** Forgets every id and stops observing; a snapshot starts from a clean slate. */
  reset() {
    if (this.mo) this.mo.disconnect();
    if (this.io) this.io.disconnect();
    for (const d of this.docs || []) this.listen(d, false);
    for (const r of this.shadows || []) this.listen(r, false);
    cancelAnimationFrame(this.raf);
    clearTimeout(this.tmo);
    clearTimeout(this.mt);
    clearInterval(this.iv);
    this.raf = this.mt = this.iv = 0;
    this.on = false;
    this.mo = null;
    this.docs = [];
    this.ids = new WeakMap();
    // Elements sent as boxes (a Set, not a WeakSet: remask() goes over them). Removed
    // nodes leave it through forget().
    this.boxed = new Set();
    this.seen = 0;
    this.kept = new Set();
    this.later = [];
    this.li = 0;
    this.recs = [];
    this.out = [];
    this.ev = null;
    this.size = 0;
    this.group = null;
    this.walking = false;
    this.bd = null; // the base URL is read again (a pushState may have changed it)
    this.origin = null;
    this.shadows = new Set();
    // Style sheets sent as rules (docs/MIRROR.md "Style sheets"): id → {id, owner, sheet,
    // rules, subs, dis, media, base}; `owner` is the style/link element whose sheet it is
    // (its node id), or null for a constructed sheet (an id of its own, from the same
    // counter). The rules (CSSRule objects) are kept to find what changed.
    this.sheets = new Map();
    this.sheetOf = new WeakMap(); // constructed sheet → id
    this.styleOf = new WeakMap(); // style/link element → its entry
    this.adopted = new Map(); // document or shadow root → the adopted sheets last sent
    this.job = null;
    // Custom elements: names seen per document, names defined since the last flush,
    // the elements (for :state()), the state names the page's CSS uses.
    this.ceSeen = new Map();
    this.ceNew = [];
    this.ces = new Set();
    this.stateNames = new Set();
    this.states = new WeakMap();
    // The top layer: [element, kind] in the order they were opened; candidates to check.
    this.top = [];
    this.topCand = new Set();
    // Form fields (their last state, kept here), canvases and media elements.
    this.fields = new Set();
    this.vals = new WeakMap();
    this.canvases = new Set();
    this.mediaDirty = new Set();
    this.imgs = new WeakMap();
    this.visible = new WeakSet();
    this.io = null;
    this.busy = false;
    this.imgFree = 0;
    this.sheetTask = false;
    this.rr = 0; // which kind of check the next periodic pass starts with
    this.cur = [0, 0, 0, 0];
  }

  /** Listens to a document or a shadow root (events that are not composed, such as
   * change, scroll, toggle and media events, do not leave a shadow root). */
  listen(doc, add) {
    const f = add ? 'addEventListener' : 'removeEventListener';
    const win = doc.defaultView;
    for (const t of ['input', 'change', 'scroll', 'mousemove', 'click', 'focusin', 'focusout', 'toggle', 'fullscreenchange', ...MEDIA_EVENTS]) doc[f](t, this.onEvent, { capture: true, passive: true });
    if (doc === document && win) for (const t of ['resize', 'focus', 'blur']) win[f](t, this.onEvent, true);
  }

  // ----- output: records, groups of new nodes, batches ----------------------------------

  rec(r) {
    this.close();
    this.push(JSON.stringify(r));
  }

  push(s) {
    const n = utf8(s) + 1;
    if (this.size + n > MAX_FRAME) this.send();
    this.out.push(s);
    this.size += n;
  }

  // New nodes go out in groups ["N", firstId, beforeId, ...tuples]: tuple k is node
  // firstId + k, appended to its parent, except the first, inserted before beforeId. A
  // tuple names its parent by distance (id - parent id: small, and repetitive for gzip).
  node(t, before) {
    t[0] = this.next - t[0];
    const a = t[2];
    if (a && typeof a === 'object') {
      let empty = true;
      for (const k in a) { empty = !k; break; }
      if (empty) t.length = 2;
    }
    const s = JSON.stringify(t);
    const n = utf8(s) + 1;
    if (this.group && this.size + n > MAX_FRAME) this.close(), this.send();
    if (!this.group) {
      this.group = [`"N",${this.next},${before || 0}`];
      this.size += 16;
    }
    this.group.push(s);
    this.size += n;
    return this.next++;
  }

  close() {
    if (this.group) this.out.push(`[${this.group.join(',')}]`);
    this.group = null;
  }

  send() {
    this.close();
    if (!this.out.length) return;
    const batch = `[${this.out.join(',')}]`;
    this.out = [];
    this.size = 0;
    if (this.on && !this.onBatch(batch)) this.stop();
  }

  // ----- masking -------------------------------------------------------------------------

  /** Whether `el` is masked; `inherited`: its parent is known not to be (a walk). */
  masked(el, inherited) {
    if (el.nodeType !== 1) return false;
    if (this.secret.has(el)) return true;
    // Once masked, a field stays masked (a "show password" toggle changes its type).
    const m = el.matches(MASK_INPUT) || (inherited ? el.matches(this.mask) : el.closest(this.mask) !== null);
    if (m && FORM.test(el.localName)) this.secret.add(el);
    return m;
  }

  /** The elements whose masking `recs` may have changed: those whose attributes
   * changed, and with a maskedElements selector that looks beyond the element itself,
   * whatever matches anywhere in the documents and shadow roots the records touched. */
  touched(recs) {
    const out = new Set();
    const roots = new Set();
    for (const r of recs) {
      if (r.type === 'attributes' && r.target.nodeType === 1) out.add(r.target);
      if (this.complex) roots.add(r.target.getRootNode());
    }
    if (this.complex) {
      for (const root of roots) if (root.querySelectorAll) for (const el of root.querySelectorAll(this.all)) out.add(el);
      for (const el of this.boxed) out.add(el);
    }
    return out;
  }

  /** Brings masking up to date before anything of a flush is written: an element that
   * became masked goes out again as a box, so nothing under it is ever written after
   * (whatever order the records came in); one that is no longer masked goes out again
   * in full. Elements sent in this flush (id >= start) were walked as they are now. */
  remask(recs, start, moved) {
    for (const el of this.touched(recs)) {
      const id = this.ids.get(el);
      if (id === undefined || id >= start) continue;
      if (this.masked(el) !== this.boxed.has(el)) this.redo(el, moved);
    }
  }

  /** During a sliced snapshot: an element already sent that became masked since the
   * last slice is sent again as a box, and nothing under it still waiting on the stack
   * `st` is walked. (Unmasking waits for the flush after the walk.) */
  remaskWalk(st) {
    const more = this.mo.takeRecords();
    if (more.length) this.recs.push(...more);
    if (this.recs.length === this.seen) return;
    const fresh = this.recs.slice(this.seen);
    this.seen = this.recs.length;
    for (const el of this.touched(fresh)) {
      if (!this.ids.has(el) || this.boxed.has(el) || !this.masked(el)) continue;
      let w = 0;
      for (let i = 0; i < st.length; i += 2) if (!within(el, st[i])) { st[w++] = st[i]; st[w++] = st[i + 1]; }
      st.length = w;
      this.redo(el);
    }
  }

  // ----- serialisation -------------------------------------------------------------------

  /** The tuple of one node, or null when it is not mirrored (and gets no id). */
  tuple(n, p, inherited) {
    this.more = null;
    this.box = false;
    this.job = null;
    if (n.nodeType === 3) {
      const par = n.parentNode;
      if (par && par.nodeType === 1 && NOKIDS.test(par.localName)) return null;
      let t = n.data;
      if (par && par.localName === 'style') t = css(t, n.baseURI);
      this.more = t.length > CHUNK ? t.slice(CHUNK) : null;
      return [p, 0, t.slice(0, CHUNK)];
    }
    if (n.nodeType === 11) return n.host ? [p, 1] : null;
    if (n.nodeType === 9) return [p, 2, doctype(n)];
    if (n.nodeType !== 1) return null;
    const tag = n.localName;
    if (SKIP.has(tag) || n.hasAttribute('data-covisit-ignore') || (tag === 'meta' && n.hasAttribute('http-equiv'))) return null;
    const box = (this.box = this.masked(n, inherited));
    const a = this.attrs(n, box);
    if (FORM.test(tag)) {
      if (n.type === 'checkbox' || n.type === 'radio') (n.checked && !box) ? (a.checked = '') : delete a.checked;
      else a.value = box ? '•'.repeat(n.value.length) : n.value;
      this.fields.add(n);
      this.vals.set(n, fieldState(n));
    } else if (box) {
      a['data-covisit-box'] = '0,0'; // its size is measured after the walk
    } else if (tag === 'option') n.selected ? (a.selected = '') : delete a.selected;
    if (box) return [p, tag, a];
    if (tag.includes('-')) this.ce(n, tag);
    if (tag === 'canvas' || tag === 'video') this.watchImage(n);
    if (tag === 'video' || tag === 'audio') this.mediaDirty.add(n);
    if (tag === 'dialog' || a.popover !== undefined) this.topCand.add(n);
    // A style sheet goes out as its rules (docs/MIRROR.md "Style sheets"), whatever made
    // them: the element's text, or insertRule/deleteRule since. The walk writes them next.
    const sheet = (tag === 'style' || (tag === 'link' && /stylesheet/i.test(a.rel || ''))) && n.sheet;
    if (sheet && ruleList(sheet)) {
      this.job = sheet;
      return [p, 'style', tag === 'link' ? { 'data-href': a.href || '', media: a.media || '' } : a];
    }
    return [p, tag, a];
  }

  attrs(n, box) {
    const a = {};
    const doc = n.ownerDocument;
    if (doc !== this.bd) this.base(doc);
    const iframe = n.localName === 'iframe';
    // Names, then values: iterating `n.attributes` would make an Attr object for each.
    for (const name of n.getAttributeNames()) {
      let v = n.getAttribute(name);
      if (ON.test(name) || v.length > MAX_ATTR || (box && !BOX_ATTRS.has(name)) || (iframe && name.startsWith('src'))) continue;
      if (URLS.has(name)) v = this.abs(v);
      else if (name === 'srcset') v = v.split(',').map((s) => s.trim().split(/\s+/).map((w, i) => (i ? w : this.abs(w))).join(' ')).join(', ');
      // A masked box's style goes out for its layout without its URLs (`none` in their
      // place): what a masked element shows, a background photo too, never leaves.
      else if (name === 'style' && v.includes('url(')) v = box ? v.replace(CSS_URL, 'none') : css(v, this.bu, this.sent);
      if (v !== null) a[name] = v;
    }
    return a;
  }

  /** The document whose base URL `abs` resolves against from now on. */
  base(doc) {
    this.bd = doc;
    this.bu = doc.baseURI;
    let origin = null;
    try { origin = new URL(this.bu).origin; } catch { /* no base */ }
    // A path from the root resolves to the origin plus the path: no parsing needed. On
    // the page's own origin it goes out as it is: the console resolves URLs against the
    // page's address (the snapshot's), and the bytes are saved.
    this.origin = origin && origin !== 'null' ? (origin === location.origin ? '' : origin) : null;
    this.urls = new Map();
  }

  /** `u` made absolute against the current base (or kept as a path from the root on the
   * page's own origin); null for a javascript: URL. */
  abs(u) {
    let v;
    if (this.origin !== null && PLAIN_PATH.test(u)) v = this.origin + u;
    else {
      v = this.urls.get(u);
      if (v === undefined) {
        v = abs(u, this.bu);
        if (this.urls.size < 4096) this.urls.set(u, v);
      }
    }
    // Only attributes of elements that are not masked get here (a box keeps none of its
    // URLs): these are the URLs asset() may send.
    if (v && this.sent.size < SENT_MAX) this.sent.add(v[0] === '/' ? location.origin + v : v);
    return v;
  }

  /** Visits the nodes on the stack (preorder) until `deadline`; false when not done. */
  /** `inherited`: the first node's parent is known not to be masked (else: ask `closest`). */
  walk(st, deadline, inherited) {
    let i = 0;
    while (st.length) {
      if (deadline && (++i & 63) === 0 && performance.now() > deadline) return false;
      const p = st.pop();
      const n = st.pop();
      if (p < 0) {
        // A style sheet's rules, written out in slices like the walk.
        if (!this.writeRules(n, deadline)) { st.push(n, p); return false; }
        continue;
      }
      const before = st.before || 0;
      st.before = 0;
      if (this.ids.has(n)) {
        // Walked already, then moved while the snapshot was sliced: move it here.
        this.rec(['M', p, before, this.ids.get(n)]);
        this.kept.add(n);
        continue;
      }
      const t = this.tuple(n, p, inherited);
      inherited = true;
      if (!t) continue;
      const more = this.more;
      const job = this.job;
      const el = n.nodeType === 1;
      const box = this.box;
      if (box) this.boxed.add(n);
      const id = this.node(t, before);
      this.ids.set(n, id);
      this.count++;
      if (more) for (let k = 0; k < more.length; k += CHUNK) this.rec(['X', id, more.slice(k, k + CHUNK)]);
      if (n.nodeType === 3) continue;
      if (!el) this.root(n, id);
      else {
        // Scroll positions and box sizes read layout: they wait until the walk is over
        // and the page has painted, so the walk never forces a layout of its own.
        // Elements that may have been scrolled: their scroll position (SCAN).
        if (box && !FORM.test(n.localName)) this.later.push(n, id, 1);
        else if (this.walking && (this.scrolled.has(n) || (this.scanned < SCAN && n.namespaceURI === HTML && !NOSCROLL.has(n.localName) && ++this.scanned))) this.later.push(n, id, 0);
        // A style sheet: its rules, nothing else of it. Masked: a box, nothing inside goes out.
        if (job) { st.push(this.track(n, id, job), -1); continue; }
        if (box || NOKIDS.test(n.localName)) continue;
      }
      for (let c = n.lastChild; c; c = c.previousSibling) st.push(c, id);
      if (el && n.shadowRoot) st.push(n.shadowRoot, id);
      if (el && n.localName === 'iframe') {
        let d = null;
        try { d = n.contentDocument; } catch { /* cross-origin: an empty box */ }
        if (d && d.documentElement) st.push(d, id);
      }
    }
    return true;
  }

  /** A document or shadow root of the capture: observed, listened to, its sheets sent. */
  root(r, id) {
    this.mo.observe(r, { childList: true, subtree: true, attributes: true, characterData: true });
    if (r.nodeType === 9 && !this.docs.includes(r)) { this.docs.push(r); this.listen(r, true); }
    if (r.nodeType === 11 && !this.shadows.has(r)) { this.shadows.add(r); this.listen(r, true); }
    if (r.nodeType === 9) this.later.push(r, id, 0);
    this.adopt(r, id);
  }

  /** A new epoch: every node id forgotten, the whole page walked again in slices. */
  snapshot() {
    this.reset();
    this.on = true;
    const mo = (this.mo = new MutationObserver((r) => { this.recs.push(...r); this.schedule(); }));
    this.next = 1;
    this.count = 0;
    this.walking = true;
    this.rec(['S', ++this.epoch, location.href, innerWidth, innerHeight, document.hasFocus() ? 1 : 0, doctype(document)]);
    this.ids.set(document, 0);
    this.root(document, 0);
    const st = [];
    for (let c = document.lastChild; c; c = c.previousSibling) st.push(c, 0);
    this.scanned = 0;
    const step = () => {
      if (!this.on || this.mo !== mo) return;
      this.remaskWalk(st);
      const done = this.walk(st, performance.now() + SLICE_MS, true);
      this.send();
      if (!done) return task(step);
      this.walking = false;
      this.focus();
      this.rec(['E']);
      this.iv = setInterval(this.deepNow, POLL_MS);
      this.flush(true);
    };
    task(step);
  }

  // ----- changes -------------------------------------------------------------------------

  schedule() {
    if (this.raf || this.walking) return;
    // Paced by animation frames, but in a task of its own right after the frame: work
    // done inside the frame's callbacks would add to the page's rendering task.
    this.raf = requestAnimationFrame(() => task(this.flushNow));
    // Hidden tabs get no animation frames.
    this.tmo = setTimeout(this.flushNow, 250);
  }

  /** Turns the queued mutation records into records (at most once per frame); `deep`:
   * the periodic pass, which also looks for what changes without a mutation. */
  flush(deep) {
    cancelAnimationFrame(this.raf);
    clearTimeout(this.tmo);
    this.raf = 0;
    if (!this.on || this.walking) return;
    const recs = this.recs.concat(this.mo.takeRecords());
    this.recs = [];
    this.seen = 0;
    this.bd = null;
    if (recs.length > STORM) return this.snapshot();
    const start = this.next;
    this.count = 0;
    this.kept = new Set();
    const added = new Set();
    const removed = new Set();
    const dirty = new Set();
    const attrs = new Map();
    const texts = new Set();
    for (const r of recs) {
      const t = r.target;
      if (r.type === 'childList') {
        dirty.add(t);
        r.addedNodes.forEach((n) => added.add(n));
        r.removedNodes.forEach((n) => this.ids.has(n) && removed.add(n));
      } else if (r.type === 'attributes') {
        if (!attrs.has(t)) attrs.set(t, new Set());
        attrs.get(t).add(r.attributeName);
      } else texts.add(t);
    }
    for (const n of removed) this.rec(['D', this.ids.get(n)]);
    // Masking first: nothing below is written under an element that just became masked.
    this.remask(recs, start, added);
    const kept = this.kept;
    for (const p of dirty) {
      const pid = this.ids.get(p);
      // A style sent as rules: its new text makes a new sheet, which checkSheet sends.
      if (pid === undefined || pid >= start || this.boxed.has(p) || this.styleOf.has(p) || (p.nodeType === 1 && NOKIDS.test(p.localName))) continue;
      let before = 0;
      for (let c = p.lastChild; c; c = c.previousSibling) {
        let id = this.ids.get(c);
        if (id === undefined) {
          id = this.insert(c, pid, before);
          if (id === undefined) continue;
        } else if (added.has(c) && id < start) {
          this.rec(['M', pid, before, id]);
          kept.add(c);
        }
        before = id;
      }
      if (this.count > STORM) return this.snapshot();
    }
    // Removed and not put back under a mirrored parent: forget them, so that nothing
    // later said about them (e.g. text typed inside a mask they moved into) goes out.
    for (const n of removed) if (!kept.has(n)) this.forget(n);
    for (const [el, names] of attrs) {
      const id = this.ids.get(el);
      if (id === undefined || id >= start) continue;
      if (el.localName === 'dialog' || names.has('popover')) this.topCand.add(el);
      const box = this.boxed.has(el);
      const now = this.attrs(el, box);
      const a = {};
      for (const name of names) {
        if (ON.test(name) || (FORM.test(el.localName) && name === 'value')) continue;
        if (name in now) a[name] = now[name];
        else if (!el.hasAttribute(name) || (box && !BOX_ATTRS.has(name))) a[name] = null;
      }
      if (Object.keys(a).length) this.rec(['A', id, a]);
    }
    for (const t of texts) {
      const id = this.ids.get(t);
      if (id === undefined || id >= start || t.nodeType !== 3) continue;
      const par = t.parentNode;
      this.rec(['T', id, par && par.localName === 'style' ? css(t.data, t.baseURI) : t.data.slice(0, CHUNK)]);
    }
    this.events();
    // CSS-in-JS inserts its rules as the page changes: the sheets are checked in the same
    // flush, so new nodes and their rules arrive together.
    const deadline = performance.now() + SLICE_MS;
    for (const S of this.sheets.values()) this.checkSheet(S, false, deadline);
    for (const d of this.docs) if (this.ids.has(d)) this.adopt(d, this.ids.get(d));
    this.defs();
    this.topLayer();
    this.mediaStates();
    if (deep) {
      this.deep(performance.now() + DEEP_MS);
      this.images();
    }
    this.send();
    if (this.later.length) this.afterPaint();
  }

  /** Reads what the walk left for later (scroll positions, masked box sizes), after the
   * next paint, when layout is up to date; in slices. */
  measure() {
    if (!this.on || this.walking) return;
    const l = this.later;
    const deadline = performance.now() + SLICE_MS;
    let i = this.li;
    for (; i < l.length; i += 3) {
      if (i % 384 === 0 && performance.now() > deadline) break;
      const n = l[i];
      const id = l[i + 1];
      if (this.ids.get(n) !== id) continue;
      if (l[i + 2]) {
        const r = n.getBoundingClientRect();
        this.rec(['A', id, { 'data-covisit-box': `${Math.round(r.width)},${Math.round(r.height)}` }]);
      } else {
        const w = n.nodeType === 9 ? n.defaultView : null;
        const x = w ? w.scrollX : n.scrollLeft;
        const y = w ? w.scrollY : n.scrollTop;
        if (x || y) this.rec(['s', id, Math.round(x), Math.round(y)]);
      }
    }
    this.li = i;
    if (i < l.length) return this.afterPaint();
    this.later = [];
    this.li = 0;
    this.send();
  }

  afterPaint() {
    if (this.mt) return;
    const go = () => { clearTimeout(this.mt); this.mt = 0; this.measure(); };
    requestAnimationFrame(() => setTimeout(go, 0));
    this.mt = setTimeout(go, 250); // hidden tabs get no animation frames
  }

  /** Serialises a new subtree under `pid`, before `before`; its id, or undefined. */
  insert(n, pid, before) {
    const st = [n, pid];
    st.before = before;
    const first = this.next;
    this.walk(st, 0);
    return this.next > first ? first : undefined;
  }

  /** Sends `el` again from scratch (its masking changed): removed, then re-inserted. */
  /** `moved`: nodes added in this flush, whose moves are not written yet (not a place
   * to insert before). */
  redo(el, moved) {
    const p = el.parentNode;
    let next = el.nextSibling;
    while (next && (!this.ids.has(next) || (moved && moved.has(next)))) next = next.nextSibling;
    this.rec(['D', this.ids.get(el)]);
    this.forget(el);
    const pid = this.ids.get(p);
    if (pid !== undefined && !this.boxed.has(p)) this.insert(el, pid, next ? this.ids.get(next) : 0);
  }

  forget(n) {
    const st = [n];
    while (st.length) {
      const x = st.pop();
      if (!this.ids.delete(x)) continue;
      this.boxed.delete(x);
      const S = this.styleOf.get(x);
      if (S) this.sheets.delete(S.id);
      for (let c = x.firstChild; c; c = c.nextSibling) st.push(c);
      if (x.shadowRoot) st.push(x.shadowRoot);
    }
  }

  // ----- style sheets (docs/MIRROR.md "Style sheets") ------------------------------------

  /** Starts following `sheet` under `id` (its owner element's id, or a constructed
   * sheet's own); its rules are written out from `pend` (ruleOut) before they are compared. */
  track(owner, id, sheet) {
    const all = [...ruleList(sheet)];
    // pend: rules still to write (from i, at page index at + i); then `after` is the sheet.
    const S = { id, owner, sheet, rules: [], subs: [], pend: all, i: 0, at: 0, after: all, dis: sheet.disabled, media: sheet.media.mediaText, base: sheet.href || (owner || document).baseURI };
    this.sheets.set(id, S);
    if (owner) {
      this.styleOf.set(owner, S);
      if (S.dis) this.rec(['G', id, 1, S.media]);
    }
    return S;
  }

  /** The rules of `S` as the console now has them. */
  written(S, rules) {
    S.rules = rules;
    S.subs = rules.map(sub);
    S.pend = null;
  }

  /** Writes out more of the rules `S` is waiting to send, until `deadline`; whether done. */
  writeRules(S, deadline) {
    const i = this.ruleOut(S, S.pend, S.i, S.at, deadline);
    if (i < 0) {
      this.written(S, S.after);
      return true;
    }
    S.i = i;
    return false;
  }

  /** Goes on writing the rules that a flush left (many rules inserted at once), one
   * slice a task; the sheets are compared again once they are written. */
  moreSheets() {
    this.sheetTask = false;
    if (!this.on || this.walking) return;
    const deadline = performance.now() + SLICE_MS;
    let left = false;
    for (const S of this.sheets.values()) if (S.pend && !this.writeRules(S, deadline)) left = true;
    this.send();
    if (left) this.laterSheets();
  }

  laterSheets() {
    if (this.sheetTask) return;
    this.sheetTask = true;
    task(() => this.moreSheets());
  }

  /** Writes `rules` from `i` on as "I" records of sheet `S` (page index `at + i`); a rule
   * longer than a record goes in "H" pieces. Stops at `deadline` (0: none): the next `i`,
   * or -1 when all are written. */
  ruleOut(S, rules, i, at, deadline) {
    let batch = [];
    let size = 0;
    let from = i;
    const out = () => { if (batch.length) this.rec(['I', S.id, at + from, batch]); batch = []; size = 0; };
    for (; i < rules.length; i++) {
      if (deadline && (i & 15) === 15 && performance.now() > deadline) break;
      const t = this.ruleText(rules[i], S.base);
      if (t.length > RULES_CHUNK) {
        out();
        for (let k = 0; k < t.length; k += CHUNK) this.rec(['H', S.id, at + i, t.slice(k, k + CHUNK), k + CHUNK >= t.length ? 1 : 0]);
        continue;
      }
      if (!batch.length) from = i;
      batch.push(t);
      size += t.length;
      if (size > RULES_CHUNK) out();
    }
    out();
    return i < rules.length ? i : -1;
  }

  /** One rule's text with its URLs made absolute. An @import goes out as its sheet's rules
   * inside an @media rule in its place: the console loads no @import, and the sheet keeps
   * the page's rule indexes. Notes the custom states (:state()) the page styles by. */
  ruleText(r, base) {
    let t;
    if (r.type === 3) {
      const inner = r.styleSheet && ruleList(r.styleSheet);
      t = inner ? `@media ${r.media.mediaText || 'all'}{${[...inner].map((x) => this.ruleText(x, r.styleSheet.href || base)).join('\n')}}` : '@media not all{}';
    } else {
      t = r.cssText;
      if (t.includes('url(')) t = css(t, base, this.sent);
    }
    if (t.includes(':state(')) for (const m of t.matchAll(STATE)) this.stateNames.add(m[1]);
    return t;
  }

  /** Sends what changed in a followed sheet since it was last written: a new sheet (a
   * style's text changed), rules deleted and inserted (insertRule, deleteRule, replace,
   * replaceSync, a rule changed inside an @media), `disabled` and `media`. Rules are told
   * apart by identity (CSSRule objects stay the same while they are in the sheet): what
   * is the same at both ends stays, the middle goes out again. `deep`: compare every rule;
   * otherwise only when the number of rules changed (cheap enough for every flush). */
  checkSheet(S, deep, deadline) {
    if (S.pend) return; // still being written out
    const sheet = S.owner ? S.owner.sheet : S.sheet;
    if (sheet !== S.sheet) {
      if (S.rules.length) this.rec(['J', S.id, 0, S.rules.length]);
      S.sheet = sheet;
      S.rules = [];
      S.subs = [];
      if (sheet) S.base = sheet.href || S.owner.baseURI;
    }
    const list = sheet && ruleList(sheet);
    if (!list) return;
    const media = sheet.media.mediaText;
    if (sheet.disabled !== S.dis || media !== S.media) {
      S.dis = sheet.disabled;
      S.media = media;
      this.rec(['G', S.id, S.dis ? 1 : 0, media]);
    }
    const n = list.length;
    const old = S.rules;
    const m = old.length;
    if (!deep && n === m) return;
    const subs = S.subs;
    const same = (i, j) => old[i] === list[j] && subs[i] === sub(list[j]);
    let a = 0;
    while (a < m && a < n && same(a, a)) a++;
    if (a === m && a === n) return;
    let b = 0;
    while (b < m - a && b < n - a && same(m - 1 - b, n - 1 - b)) b++;
    if (m - a - b) this.rec(['J', S.id, a, m - a - b]);
    S.after = [...list];
    S.pend = S.after.slice(a, n - b);
    S.i = 0;
    S.at = a;
    // Thousands of rules at once (a CSS-in-JS library starting, a replaceSync): what does
    // not fit in this slice goes in the next tasks (moreSheets).
    if (!this.writeRules(S, deadline)) this.laterSheets();
  }

  /** Sends the adopted style sheets of a document or shadow root when they changed. */
  adopt(r, id) {
    const list = r.adoptedStyleSheets || [];
    const was = this.adopted.get(r);
    if (was ? was.length === list.length && was.every((x, i) => x === list[i]) : !list.length) return;
    this.adopted.set(r, [...list]);
    const ids = [...list].map((x) => this.sheetId(x));
    this.rec(['Y', id, ids]);
  }

  /** A constructed sheet's id; the first time, it goes out ("Q", then its rules). */
  sheetId(sheet) {
    let id = this.sheetOf.get(sheet);
    if (id !== undefined) return id;
    this.close(); // ids of nodes in a group follow each other: this one comes between groups
    id = this.next++;
    this.sheetOf.set(sheet, id);
    this.rec(['Q', id, sheet.media.mediaText, sheet.disabled ? 1 : 0]);
    this.writeRules(this.track(null, id, sheet), 0);
    return id;
  }

  // ----- custom elements, the top layer, media ------------------------------------------

  /** A custom element: its name goes out ("e") once it is defined in its document, so
   * that :defined matches in the mirror as in the page. */
  ce(el, name) {
    this.ces.add(el);
    const doc = el.ownerDocument;
    let seen = this.ceSeen.get(doc);
    if (!seen) this.ceSeen.set(doc, (seen = new Set()));
    if (seen.has(name)) return;
    seen.add(name);
    const reg = doc.defaultView && doc.defaultView.customElements;
    if (!reg) return;
    if (reg.get(name)) this.ceNew.push(doc, name);
    else {
      reg.whenDefined(name).then(() => {
        if (this.ceSeen.get(doc) !== seen) return; // another epoch
        this.ceNew.push(doc, name);
        this.schedule();
      }, () => {});
    }
  }

  defs() {
    if (!this.ceNew.length) return;
    const by = new Map();
    for (let i = 0; i < this.ceNew.length; i += 2) {
      const id = this.ids.get(this.ceNew[i]);
      if (id === undefined) continue;
      if (!by.has(id)) by.set(id, []);
      by.get(id).push(this.ceNew[i + 1]);
    }
    this.ceNew = [];
    for (const [id, names] of by) this.rec(['e', id, names]);
  }

  /** The custom states (:state(x)) of a custom element, for the names the page's CSS uses. */
  checkStates(el) {
    const id = this.ids.get(el);
    if (id === undefined) return this.ces.delete(el);
    const on = [];
    for (const s of this.stateNames) if (is(el, `:state(${s})`)) on.push(s);
    const k = on.join(' ');
    if ((this.states.get(el) || '') === k) return;
    this.states.set(el, k);
    this.rec(['k', id, on]);
  }

  /** Sends the top layer when it changed: modal dialogs (1), open popovers (2) and the
   * fullscreen element (3), in the order they were opened. Candidates come from the walk,
   * `open`/`popover` attribute changes, and toggle and fullscreenchange events. */
  topLayer() {
    const kind = (el) => (!el.isConnected || !this.ids.has(el) ? 0 : is(el, ':fullscreen') ? 3 : is(el, ':modal') ? 1 : is(el, ':popover-open') ? 2 : 0);
    const next = [];
    const add = (el) => {
      if (next.includes(el)) return;
      const k = kind(el);
      if (k) next.push(el, k);
    };
    for (let i = 0; i < this.top.length; i += 2) add(this.top[i]);
    for (const el of this.topCand) add(el);
    this.topCand.clear();
    for (const d of this.docs) {
      let f = d.fullscreenElement;
      while (f && f.shadowRoot && f.shadowRoot.fullscreenElement) f = f.shadowRoot.fullscreenElement;
      if (f) add(f);
    }
    if (next.length === this.top.length && next.every((x, i) => x === this.top[i])) return;
    this.top = next;
    this.rec(['L', next.map((x, i) => (i & 1 ? x : this.ids.get(x)))]);
  }

  /** Paused or playing, current time and duration of media elements that changed. */
  mediaStates() {
    for (const el of this.mediaDirty) {
      const id = this.ids.get(el);
      if (id === undefined) continue;
      const r2 = (x) => (Number.isFinite(x) ? Math.round(x * 100) / 100 : 0);
      this.rec(['m', id, el.paused ? 1 : 0, r2(el.currentTime), r2(el.duration)]);
      const st = this.imgs.get(el);
      if (st) st.due = 0; // its frame again
    }
    this.mediaDirty.clear();
  }

  /** A form field's value or checked state (the field's own, or its options'). */
  field(el, id) {
    const masked = this.masked(el);
    if (el.type === 'checkbox' || el.type === 'radio') { if (!masked) this.rec(['K', id, el.checked ? 1 : 0]); }
    else if (el.localName === 'select' && el.multiple) {
      if (!masked) for (const o of el.options) { const oid = this.ids.get(o); if (oid !== undefined) this.rec(['K', oid, o.selected ? 1 : 0]); }
    } else this.rec(['V', id, masked ? '•'.repeat(el.value.length) : el.value.slice(0, CHUNK)]);
    this.vals.set(el, fieldState(el));
  }

  /** The periodic pass: what changes without a mutation or an event (rules changed in
   * place, adopted sheets pushed, values set by script, custom states), until `deadline`;
   * each kind from where the last pass stopped, a different kind first each time. */
  deep(deadline) {
    const kinds = [
      [this.sheets, (S) => this.checkSheet(S, true, deadline)],
      [this.adopted, (was, r) => { const id = this.ids.get(r); if (id === undefined) this.adopted.delete(r); else this.adopt(r, id); }],
      [this.fields, (el) => {
        const id = this.ids.get(el);
        if (id === undefined) this.fields.delete(el);
        else if (this.vals.get(el) !== fieldState(el)) this.field(el, id);
      }],
      // Custom elements: a shadow root attached since the element was mirrored (defined
      // or upgraded later), then their states (only forgotten when the CSS names none).
      [this.ces, (el) => {
        const id = this.ids.get(el);
        if (id === undefined) return this.ces.delete(el);
        const r = el.shadowRoot;
        if (r && !this.ids.has(r) && !this.boxed.has(el)) this.insert(r, id, 0);
        if (this.stateNames.size) this.checkStates(el);
      }],
    ];
    this.rr = (this.rr + 1) % kinds.length;
    for (let k = 0; k < kinds.length; k++) {
      const w = (this.rr + k) % kinds.length;
      const [c, check] = kinds[w];
      let i = 0;
      const from = this.cur[w] < c.size ? this.cur[w] : 0;
      let done = true;
      const map = c instanceof Map;
      for (const x of map ? c.keys() : c) {
        if (i++ < from) continue;
        if ((i & 7) === 0 && performance.now() > deadline) { done = false; break; }
        if (map) check(c.get(x), x);
        else check(x, x);
      }
      this.cur[w] = done ? 0 : i - 1;
      if (!done) return;
    }
  }

  // ----- canvas and video images (docs/MIRROR.md "Canvas") -------------------------------

  /** The PNG data: URL of a transparent canvas of w×h (what toDataURL gives for a WebGL
   * canvas read after its frame was shown). */
  blankPng(w, h) {
    const k = `${w}x${h}`;
    const m = this.blanks || (this.blanks = new Map());
    if (!m.has(k)) {
      if (m.size > 16) m.clear();
      const c = document.createElement('canvas');
      c.width = w;
      c.height = h;
      m.set(k, c.toDataURL('image/png'));
    }
    return m.get(k);
  }

  /** Whether a bitmap holds nothing at all (every pixel transparent), from a 16×16 copy. */
  blank(src, w, h) {
    const p = this.probe || (this.probe = new OffscreenCanvas(16, 16).getContext('2d', { willReadFrequently: true }));
    p.clearRect(0, 0, 16, 16);
    p.drawImage(src, 0, 0, w, h, 0, 0, 16, 16);
    let a;
    try { a = p.getImageData(0, 0, 16, 16).data; } catch (e) {
      this.probe = null; // tainted by another origin's pixels: a new one next time
      throw e;
    }
    for (let i = 3; i < a.length; i += 4) if (a[i]) return false;
    return true;
  }

  /** Canvases (`el`, or all) are looked at again soon, at the shortest gap. */
  wake(el) {
    const soon = performance.now() + 100;
    for (const c of el ? [el] : this.canvases) {
      const st = this.imgs.get(c);
      if (st && !st.off) {
        st.gap = IMG_GAP;
        if (st.due > soon) st.due = soon;
      }
    }
  }

  watchImage(el) {
    this.canvases.add(el);
    if (!this.io) {
      this.io = new IntersectionObserver((es) => {
        for (const e of es) e.isIntersecting ? this.visible.add(e.target) : this.visible.delete(e.target);
      });
    }
    this.io.observe(el);
  }

  /** Starts the image of the next canvas or video that is due and in view; one at a time. */
  images() {
    if (this.busy || !this.canvases.size) return;
    const now = performance.now();
    if (now < this.imgFree) return;
    for (const el of this.canvases) {
      const id = this.ids.get(el);
      if (id === undefined) { this.canvases.delete(el); this.io.unobserve(el); continue; }
      if (!this.visible.has(el)) continue;
      let st = this.imgs.get(el);
      if (!st) this.imgs.set(el, (st = { due: 0, gap: IMG_GAP, last: '', scale: 1, off: false }));
      if (st.off || now < st.due) continue;
      this.busy = true;
      this.frameGrab(el, id, st).finally(() => { this.busy = false; });
      return;
    }
  }

  /** grab() at the next rendering update, after the page's animation frame callbacks (a
   * ResizeObserver's first callback comes then): a WebGL canvas without
   * preserveDrawingBuffer can be read only in the frame that drew it. A hidden tab has no
   * rendering updates: then after a second. */
  frameGrab(el, id, st) {
    return new Promise((resolve) => {
      let done = false;
      const go = () => {
        if (done) return;
        done = true;
        ro.disconnect();
        clearTimeout(t);
        this.grab(el, id, st).catch(() => { st.off = true; }).finally(resolve);
      };
      const ro = new ResizeObserver(go);
      const t = setTimeout(go, 1000);
      ro.observe(el);
    });
  }

  /** One image of a canvas (2D, or WebGL in the frame it drew: see frameGrab) or a video
   * (IMG_SYNC says how), sent as a data: URL in "B" pieces unless it is what was sent last,
   * or nothing could be read (all transparent: a WebGL frame already shown and cleared; the
   * last image stays). A tainted canvas (another origin's pixels) throws: not tried again. */
  async grab(el, id, st) {
    const epoch = this.epoch;
    const video = el.localName === 'video';
    st.due = performance.now() + st.gap;
    if (this.ids.get(el) !== id || this.masked(el)) return; // not even read
    const w = video ? el.videoWidth : el.width;
    const h = video ? el.videoHeight : el.height;
    if (!w || !h || (video && el.readyState < 2)) return;
    const stats = this.imgStats || (this.imgStats = { images: 0, sent: 0, bytes: 0, ms: 0, max: 0 });
    let t = performance.now();
    let url;
    let ms = 0;
    if (!video && !st.webp && w * h <= IMG_SYNC) {
      url = el.toDataURL('image/png');
      if (url === this.blankPng(w, h)) url = '';
      ms = performance.now() - t;
    } else {
      const r = el.getBoundingClientRect();
      if (r.width < 1 || r.height < 1) return;
      const s = Math.min(1, Math.max(r.width / w, r.height / h), Math.sqrt(IMG_PIXELS / (w * h))) * st.scale;
      const tw = Math.max(1, Math.round(w * s));
      const th = Math.max(1, Math.round(h * s));
      let p = createImageBitmap(el, { resizeWidth: tw, resizeHeight: th, resizeQuality: 'medium' });
      ms = performance.now() - t;
      const bmp = await p;
      try {
        if (!this.on || this.epoch !== epoch) return;
        t = performance.now();
        if (this.blank(bmp, tw, th)) url = '';
        else {
          const c = new OffscreenCanvas(tw, th);
          c.getContext('2d').drawImage(bmp, 0, 0);
          p = c.convertToBlob({ type: 'image/webp', quality: 0.85 });
        }
        ms += performance.now() - t;
      } finally { bmp.close(); }
      if (url === undefined) {
        const blob = await p;
        url = await new Promise((resolve, reject) => {
          const f = new FileReader();
          f.onload = () => resolve(f.result);
          f.onerror = reject;
          f.readAsDataURL(blob);
        });
      }
    }
    stats.images++;
    const count = () => { stats.ms += ms; stats.max = Math.max(stats.max, ms); };
    if (video && el.paused) st.due = Infinity; // again when it plays or seeks (mediaStates)
    if (!url || url === st.last) { st.gap = Math.min(st.gap * 2, IMG_GAP_MAX); return count(); }
    if (!this.on || this.epoch !== epoch || this.walking || this.ids.get(el) !== id || this.masked(el)) return;
    if (!st.webp && url.length > IMG_PNG) {
      st.webp = true;
      st.due = 0;
      return;
    }
    if (url.length > IMG_MAX) { st.scale *= 0.7; return; }
    st.gap = video ? 1000 : IMG_GAP;
    st.last = url;
    stats.sent++;
    stats.bytes += url.length;
    this.imgFree = performance.now() + (url.length / IMG_BPS) * 1000;
    t = performance.now();
    for (let k = 0; k < url.length; k += CHUNK) this.rec(['B', id, url.slice(k, k + CHUNK), k + CHUNK >= url.length ? 1 : 0]);
    this.send();
    ms += performance.now() - t;
    count();
  }

  // ----- events --------------------------------------------------------------------------

  event(e) {
    if (!this.on) return;
    const t = e.composedPath ? e.composedPath()[0] : e.target;
    // An element's focus, blur or focusout (the window's capture sees the first two) is a
    // change of what is focused in the page, not of the tab's focus; focusout alone when
    // focus goes to nothing.
    const k = e.type === 'focusout' || (e.target !== window && /^(focus|blur)$/.test(e.type)) ? 'focusin' : e.type;
    if (k === 'toggle' || k === 'fullscreenchange') {
      if (t.nodeType === 1) this.topCand.add(t);
      return this.schedule();
    }
    if (MEDIA_EVENTS.includes(k)) {
      if ((t.localName === 'video' || t.localName === 'audio') && this.ids.has(t)) this.mediaDirty.add(t);
      return this.schedule();
    }
    // A click may redraw any canvas, a pointer over one its tooltips: no more waiting
    // for the ones that had not changed for a while.
    if (k === 'click' || (k === 'mousemove' && this.canvases.has(t))) this.wake(k === 'click' ? null : t);
    if (k === 'scroll') this.scrolled.add(t);
    (this.ev || (this.ev = new Map())).set(k === 'input' || k === 'change' ? t : k === 'scroll' ? t : k, e);
    this.schedule();
  }

  /** Records for the events since the last flush (the latest of each kind only). */
  events() {
    const ev = this.ev;
    this.ev = null;
    if (!ev) return;
    for (const [key, e] of ev) {
      if (typeof key === 'string') {
        if (key === 'mousemove' || key === 'click') this.rec([key === 'click' ? 'c' : 'p', e.clientX, e.clientY]);
        else if (key === 'focusin') this.focus();
        else if (key === 'resize') this.rec(['w', innerWidth, innerHeight]);
        else this.rec(['F', key === 'focus' ? 1 : 0]);
        continue;
      }
      const id = this.ids.get(key);
      if (id === undefined) continue;
      if (e.type === 'scroll') {
        const w = key.nodeType === 9 ? key.defaultView : null;
        this.rec(['s', id, Math.round(w ? w.scrollX : key.scrollLeft), Math.round(w ? w.scrollY : key.scrollTop)]);
      } else if (FORM.test(key.localName)) this.field(key, id);
    }
    if (location.href !== this.url) this.rec(['u', (this.url = location.href)]);
  }

  focus() {
    let a = document.activeElement;
    while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
    // Nothing focused: the browser names the body (or the root element).
    if (a === document.body || a === document.documentElement) a = null;
    this.rec(['f', (a && this.ids.get(a)) || 0]);
  }

  // ----- remote control ------------------------------------------------------------------

  find(id) {
    if (id === 0) return document;
    // Typing repeats the same target: remember the last one found.
    const last = this.last && this.last.deref();
    if (last && this.ids.get(last) === id && last.isConnected) return last;
    const found = this.search(id);
    this.last = found && new WeakRef(found);
    return found;
  }

  search(id) {
    const st = [document];
    while (st.length) {
      const x = st.pop();
      if (this.ids.get(x) === id) return x;
      for (let c = x.firstChild; c; c = c.nextSibling) if (this.ids.has(c)) st.push(c);
      if (x.shadowRoot) st.push(x.shadowRoot);
      if (x.localName === 'iframe') try { if (x.contentDocument) st.push(x.contentDocument); } catch { /* cross-origin */ }
    }
    return null;
  }

  /** Applies a remote action Rust allowed; '' when done, else why not. */
  apply(json) {
    try {
      return this.act(JSON.parse(json));
    } catch (e) {
      console.error('[covisit]', e);
      return 'failed';
    }
  }

  act(a) {
    if (!this.on || (this.walking && a.kind !== 'pointer')) return 'not_ready';
    if (a.kind === 'pointer') return this.pointer(a.x, a.y), '';
    if (a.kind === 'redirect') {
      const u = new URL(a.url, location.href);
      if (u.origin !== location.origin) return 'cross_origin';
      location.assign(u.href);
      return '';
    }
    const el = this.find(a.node);
    if (!el) return 'unknown_node';
    if (a.kind === 'scroll') {
      const w = el.nodeType === 9 ? el.defaultView : el;
      w.scrollTo(a.x, a.y);
      return '';
    }
    if (el.nodeType !== 1 || this.masked(el)) return 'masked_target';
    const win = el.ownerDocument.defaultView;
    if (a.kind === 'click') {
      const r = el.getBoundingClientRect();
      const o = { bubbles: true, cancelable: true, composed: true, view: win, clientX: r.left + Math.min(a.x, r.width), clientY: r.top + Math.min(a.y, r.height), button: 0 };
      this.pointer(o.clientX, o.clientY);
      el.dispatchEvent(new win.PointerEvent('pointerdown', o));
      el.dispatchEvent(new win.MouseEvent('mousedown', o));
      if (el.focus) el.focus({ preventScroll: true });
      el.dispatchEvent(new win.PointerEvent('pointerup', o));
      el.dispatchEvent(new win.MouseEvent('mouseup', o));
      el.dispatchEvent(new win.MouseEvent('click', o));
      return '';
    }
    if (a.kind === 'type') {
      if (el.disabled || el.readOnly) return 'not_editable';
      if (FORM.test(el.localName)) {
        const proto = win[el.localName === 'input' ? 'HTMLInputElement' : el.localName === 'select' ? 'HTMLSelectElement' : 'HTMLTextAreaElement'].prototype;
        // The prototype's setter, not the element's own: frameworks that track the value
        // (React) see the change on the `input` event.
        Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, a.value);
      } else if (el.isContentEditable) el.textContent = a.value;
      else return 'not_editable';
      el.dispatchEvent(new win.Event('input', { bubbles: true, composed: true }));
      if (el.localName === 'select') el.dispatchEvent(new win.Event('change', { bubbles: true }));
      return '';
    }
    return 'unknown_action';
  }

  // ----- assets through covisit ---------------------------------------------------------

  /** The server could not fetch the asset `url` itself (behind the visitor's login, on
   * the visitor's machine, a font without CORS) and asks for it (request `id`; Rust let
   * it through only during an active session of a page that set assetsProxyConfigured).
   * Sent only for a URL of this page's origin that this capture itself sent (so never
   * one only a masked element names), not named by any masked element now, and only a
   * style sheet, a font or an image of at most ASSET_MAX bytes; fetched as the page
   * would (same origin, its cookies), then sent as `a` records, each in a frame of its
   * own, through the same gate as every record. Otherwise a refusal says why. */
  async asset(id, url) {
    const no = (why) => this.assetOut(['a', id, 0, why]);
    try {
      const u = new URL(url);
      if (u.origin !== location.origin) return no('cross_origin');
      if (!this.on || !this.sent.has(u.href)) return no('not_sent');
      const file = u.pathname.slice(u.pathname.lastIndexOf('/') + 1);
      for (const el of this.boxed) if (el.isConnected && el.outerHTML.includes(file || u.pathname)) return no('masked');
      const res = await fetch(u.href, { credentials: 'same-origin', mode: 'same-origin', cache: 'force-cache' });
      if (!res.ok) return no('failed');
      const type = (res.headers.get('content-type') || '').split(';')[0].trim().toLowerCase();
      if (!ASSET_TYPE.test(type) && !(ASSET_GENERIC.test(type) && ASSET_EXT.test(u.pathname))) return no('type');
      if (Number(res.headers.get('content-length')) > ASSET_MAX) return no('too_large');
      const blob = await res.blob();
      if (blob.size > ASSET_MAX) return no('too_large');
      const text = await new Promise((resolve, reject) => {
        const r = new FileReader();
        r.onload = () => resolve(String(r.result));
        r.onerror = () => reject(r.error);
        r.readAsDataURL(blob);
      });
      const data = text.slice(text.indexOf(',') + 1);
      for (let i = 0; i === 0 || i < data.length; i += ASSET_PIECE) {
        const last = i + ASSET_PIECE >= data.length ? 1 : 0;
        if (!this.assetOut(['a', id, type || 'application/octet-stream', data.slice(i, i + ASSET_PIECE), last])) return undefined;
      }
    } catch (e) {
      console.warn('[covisit] an asset for the agent could not be read', e);
      no('failed');
    }
    return undefined;
  }

  /** One asset record in a frame of its own, through Rust's gate; false once the
   * capture stopped (the session ended meanwhile: nothing more leaves). */
  assetOut(r) {
    if (!this.on) return false;
    if (!this.onBatch(JSON.stringify([r]))) { this.stop(); return false; }
    return true;
  }

  /** The agent's pointer, shown while control is granted. */
  control(granted) {
    this.granted = granted;
    if (!granted && this.ptr) { this.ptr.remove(); this.ptr = null; }
  }

  pointer(x, y) {
    if (!this.granted) return;
    if (!this.ptr) {
      this.ptr = document.createElement('covisit-pointer');
      this.ptr.style.cssText = 'position:fixed;left:0;top:0;z-index:2147483647;pointer-events:none;width:14px;height:14px;margin:-7px 0 0 -7px;border-radius:50%;background:#b42318;border:2px solid #fff;box-shadow:0 1px 4px #0008;transition:transform .08s linear';
      this.ptr.setAttribute('aria-hidden', 'true');
      (document.body || document.documentElement).append(this.ptr);
    }
    this.ptr.style.transform = `translate(${x}px,${y}px)`;
  }
}
