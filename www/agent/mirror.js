// The agent side of co-browsing: rebuilds a visitor's tab from its mirror records
// (docs/MIRROR.md) inside <iframe sandbox="allow-same-origin"> without allow-scripts,
// whose document (mirror.html) carries a CSP that forbids script. Nodes are built with
// DOM APIs only (never innerHTML of visitor content) and re-sanitised here: whatever a
// forged frame carries, no script element, event handler attribute, javascript: URL,
// refresh or plugin reaches the mirror. And the mirror contacts no host but the covisit
// server: every URL it could load (attributes, srcset, CSS url() and image-set(),
// @import) is kept only when it points at this origin (or is data:/blob:), so a page
// cannot make an agent's browser call a host of its choosing. The CSP of the console and
// of mirror.html say the same, as a second wall. While this agent controls the tab, its
// clicks, scrolls, typing and pointer moves in the mirror become remote actions.

const SVG = 'http://www.w3.org/2000/svg';
const MATH = 'http://www.w3.org/1998/Math/MathML';
const DROP_TAG = /^(script|noscript|template|base|object|embed|applet|frame|frameset|portal|fencedframe|set|animate|animatemotion|animatetransform|handler|listener|covisit-ui|covisit-pointer)$/i;
const NAME = /^[a-zA-Z_][-a-zA-Z0-9_.:]*$/;
const URL_ATTR = /^(href|src|action|formaction|poster|data|background|cite|xlink:href|longdesc|lowsrc|dynsrc|ping|manifest|codebase|archive|usemap|profile)$/i;
const DROP_ATTR = /^(on.*|srcdoc|http-equiv|formaction|action|autofocus|nonce|integrity|is)$/i;
const SAFE_URL = /^(https?:|data:image\/|blob:|mailto:|tel:|#)/i;
// Links the agent's browser never loads (clicks in the mirror are cancelled).
const LINK = /^(a|area)$/i;
// A URL that loads nothing: what a refused one becomes inside CSS.
const NOTHING = 'data:,';
const FOCUS_CSS = '[data-covisit-focus]{outline:3px solid #ffb020 !important;outline-offset:1px !important}'
  + '[data-covisit-box]{background:repeating-linear-gradient(45deg,#c9ced6 0 6px,#b8bec8 6px 12px) !important;color:transparent !important;display:inline-block}';

/** A URL the mirror may link to, made absolute; null when not allowed. */
function safeUrl(value, base) {
  let u;
  try { u = new URL(String(value).trim(), base || undefined); } catch { return null; }
  return SAFE_URL.test(u.href) ? u.href : null;
}

/** A URL the mirror may load (an image, a stylesheet, a font…): on the covisit server
 * itself, or data:/blob:; made absolute. null for any other host. */
export function loadableUrl(value, base) {
  const text = String(value).trim();
  if (text.startsWith('#')) return text; // an SVG reference inside the document
  let u;
  try { u = new URL(text, base || undefined); } catch { return null; }
  if (u.protocol === 'data:' || u.protocol === 'blob:') return u.href;
  return u.origin === location.origin ? u.href : null;
}

const CSS_STRING = /"((?:[^"\\\n]|\\[\s\S])*)"|'((?:[^'\\\n]|\\[\s\S])*)'/g;
const CSS_URL = /url\(\s*(?:"((?:[^"\\\n]|\\[\s\S])*)"|'((?:[^'\\\n]|\\[\s\S])*)'|([^\s"'()]*))\s*\)/gi;
const unescapeCss = (s) => s.replace(/\\([0-9a-f]{1,6}\s?|[\s\S])/gi, (m, e) => (/^[0-9a-f]/i.test(e) ? String.fromCodePoint(Math.min(parseInt(e, 16), 0x10ffff) || 0xfffd) : e));
const quoteCss = (s) => `"${s.replace(/[\\"]/g, '\\$&').replace(/\n/g, '\\a ')}"`;

/** CSS text with every url() and image-set() string kept only when loadable (else a
 * URL that loads nothing). Expects the browser's serialization: no escapes outside
 * strings (see cleanCss). */
function rewriteCssUrls(text, base) {
  const check = (raw) => quoteCss(loadableUrl(unescapeCss(raw), base) || NOTHING);
  let out = text.replace(CSS_URL, (m, d, q, bare) => `url(${check(d ?? q ?? bare ?? '')})`);
  // image-set("a.png" 1x): strings there are URLs too.
  out = out.replace(/((?:-webkit-)?image-set)\(([^;{}]*)/gi, (m, fn, rest) => {
    let depth = 1;
    let i = 0;
    for (; i < rest.length && depth; i++) {
      if (rest[i] === '(') depth++;
      else if (rest[i] === ')') depth--;
    }
    const inner = rest.slice(0, i).replace(CSS_STRING, (s, d, q) => check(d ?? q ?? ''));
    return `${fn}(${inner}${rest.slice(i)}`;
  });
  return out;
}

/** Drops custom properties that hold escapes: `--x: \75 rl(…)` becomes a url() only where
 * it is used, which no text check of the declaration would see. */
function dropEscapedCustomProperties(style) {
  for (let i = style.length - 1; i >= 0; i--) {
    const name = style[i];
    if (name.startsWith('--') && style.getPropertyValue(name).includes('\\')) style.removeProperty(name);
  }
}

function walkRules(rules) {
  for (const rule of rules) {
    if (rule.style) dropEscapedCustomProperties(rule.style);
    if (rule.cssRules) walkRules(rule.cssRules);
  }
}

/** A style sheet's text as the mirror may apply it: parsed by the browser (without
 * loading anything: the sheet is not applied to any document), @import dropped (a
 * constructed sheet takes none), escapes resolved by serializing, then every URL left
 * only when loadable. `doc` is the document whose CSSStyleSheet is used. */
export function cleanCss(text, base, win = window) {
  const sheet = new win.CSSStyleSheet();
  try { sheet.replaceSync(String(text).replace(/@import\b/gi, '@x-import')); } catch { return ''; }
  walkRules(sheet.cssRules);
  let out = '';
  for (const rule of sheet.cssRules) out += `${rule.cssText}\n`;
  return rewriteCssUrls(out, base);
}

let scratch = null;
/** A style attribute's text, cleaned as cleanCss does (through a detached element). */
export function cleanStyle(text, base) {
  scratch = scratch || document.createElement('div');
  const style = scratch.style;
  style.cssText = String(text);
  dropEscapedCustomProperties(style);
  const out = rewriteCssUrls(style.cssText, base);
  style.cssText = '';
  return out;
}

/** One attribute as the mirror may carry it, or null to leave it out. */
export function cleanAttr(tag, name, value, base) {
  if (typeof name !== 'string' || !NAME.test(name) || DROP_ATTR.test(name)) return null;
  if (value === null || value === undefined) return null;
  const v = String(value);
  if (tag === 'iframe' && /^(src|allow|sandbox)$/i.test(name)) return null;
  if (URL_ATTR.test(name)) {
    // A link is never followed from the mirror: it keeps its look (href="#") where its
    // target would be another host; a resource loads only from this server.
    if (LINK.test(tag) && /^(href|xlink:href)$/i.test(name)) {
      const link = safeUrl(v, base);
      if (!link) return null; // javascript: and the like: no link at all
      return /^(mailto|tel):/i.test(link) || loadableUrl(link, base) ? link : '#';
    }
    return loadableUrl(v, base) !== null && safeUrl(v, base) !== null ? loadableUrl(v, base) : null;
  }
  if (name === 'srcset' || name === 'imagesrcset') {
    return v.split(',').map((s) => {
      const [u, ...d] = s.trim().split(/\s+/);
      const ok = u && safeUrl(u, base) && loadableUrl(u, base);
      return ok ? [ok, ...d].join(' ') : '';
    }).filter(Boolean).join(', ');
  }
  if (name === 'style') return cleanStyle(v, base);
  // Presentation attributes are CSS too (fill="url(…)", mask, filter, cursor): only
  // references inside the document stay.
  if (/url\s*\(|image-set|\\/i.test(v)) {
    const refs = v.replace(/url\(\s*(['"]?)#[\w-]*\1\s*\)/gi, '');
    return /url\s*\(|image-set|\\/i.test(refs) ? null : v;
  }
  return v;
}

/** One visitor tab's mirror: an iframe, its node map, and the overlays. */
class TabMirror {
  constructor(view, tab) {
    this.view = view;
    this.tab = tab;
    this.nodes = new Map();
    this.idOf = new WeakMap();
    this.ready = false;
    this.w = 800;
    this.h = 600;
    this.focused = true;
    this.url = '';
    this.lastScroll = new Map();
    // Values this agent typed into a field that the page has not echoed back yet.
    this.typed = new WeakMap();
    this.resetStyles();
    this.wrap = document.createElement('div');
    this.wrap.className = 'mirror-viewport';
    this.wrap.dataset.testid = 'mirror-viewport';
    this.wrap.dataset.tab = tab;
    this.frame = document.createElement('iframe');
    this.frame.setAttribute('sandbox', 'allow-same-origin');
    this.frame.setAttribute('referrerpolicy', 'no-referrer');
    this.frame.setAttribute('title', "The visitor's page");
    this.frame.dataset.testid = 'mirror-frame';
    this.frame.dataset.tab = tab;
    this.frame.dataset.state = 'loading';
    this.frame.tabIndex = -1;
    this.pointer = document.createElement('div');
    this.pointer.className = 'mirror-pointer';
    this.pointer.dataset.testid = 'mirror-pointer';
    this.pointer.hidden = true;
    this.wrap.append(this.frame, this.pointer);
    this.loaded = new Promise((resolve) => this.frame.addEventListener('load', resolve, { once: true }));
    this.frame.src = '/agent/mirror.html';
    this.queue = [];
    this.loaded.then(() => {
      this.doc = this.frame.contentDocument;
      this.win = this.frame.contentWindow;
      this.listen();
      const q = this.queue;
      this.queue = null;
      for (const data of q) this.apply(data);
    });
  }

  /** Applies a batch of records (queued until the frame document exists). */
  apply(data) {
    if (this.queue) { this.queue.push(data); return; }
    if (!Array.isArray(data)) return;
    this.scrolls = [];
    for (const r of data) {
      if (!Array.isArray(r)) continue;
      if (r[0] === 'S') this.reset(r);
      // Records of an epoch whose start this console missed wait for a resync.
      else if (this.started) {
        try { this.record(r); } catch (e) { console.warn('[covisit mirror] record skipped', r[0], e); }
      }
    }
    this.applyStyles();
    for (const [node, x, y] of this.scrolls) this.scrollNode(node, x, y);
    this.view.changed(this);
  }

  reset(r) {
    const [, epoch, url, w, h, focused] = r;
    this.epoch = epoch;
    this.started = true;
    this.ready = false;
    this.frame.dataset.state = 'loading';
    this.url = typeof url === 'string' ? url : '';
    this.base = safeUrl(this.url) || undefined;
    this.focused = Boolean(focused);
    this.nodes = new Map([[0, this.doc]]);
    this.idOf = new WeakMap([[this.doc, 0]]);
    this.focusEl = null;
    this.lastScroll = new Map();
    this.typed = new WeakMap();
    this.resetStyles();
    this.doc.replaceChildren();
    this.sheet = new this.win.CSSStyleSheet();
    this.sheet.replaceSync(FOCUS_CSS);
    this.doc.adoptedStyleSheets = [this.sheet];
    this.resize(w, h);
  }

  resize(w, h) {
    this.w = Math.max(100, Math.min(10000, Number(w) || 800));
    this.h = Math.max(100, Math.min(10000, Number(h) || 600));
    this.view.layout(this);
  }

  record(r) {
    const k = r[0];
    const n = this.nodes;
    switch (k) {
      case 'N': {
        const [, first, before] = r;
        for (let i = 3; i < r.length; i++) this.create(first + i - 3, r[i], i === 3 ? before : 0);
        break;
      }
      case 'M': {
        const [, p, before, id] = r;
        this.place(n.get(id), n.get(p), before);
        break;
      }
      case 'D': {
        const node = n.get(r[1]);
        if (node && node.nodeType !== 9 && node.nodeType !== 11) {
          this.touchStyle(node.parentNode);
          node.remove();
        }
        break;
      }
      case 'A': {
        const el = n.get(r[1]);
        if (!el || el.nodeType !== 1 || !r[2] || typeof r[2] !== 'object') break;
        for (const [name, value] of Object.entries(r[2])) this.attr(el, name, value);
        break;
      }
      case 'T': {
        const t = n.get(r[1]);
        if (t && t.nodeType === 3) { t.data = String(r[2]); this.touchStyle(t.parentNode); }
        break;
      }
      case 'X': {
        const t = n.get(r[1]);
        if (t && t.nodeType === 3) { t.appendData(String(r[2])); this.touchStyle(t.parentNode); }
        else if (t && t.nodeType === 1) this.place(t.ownerDocument.createTextNode(String(r[2])), t, 0);
        break;
      }
      case 'V': {
        const el = n.get(r[1]);
        if (!el || !('value' in el) || !/^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName)) break;
        const v = String(r[2]);
        // The echo of a value this agent typed is not applied: by the time it arrives the
        // agent may have typed more, and resetting the field would drop those keys.
        const sent = this.typed.get(el);
        const i = sent ? sent.indexOf(v) : -1;
        if (i >= 0) sent.splice(0, i + 1);
        else el.value = v;
        break;
      }
      case 'K': {
        const el = n.get(r[1]);
        if (el && el.tagName === 'INPUT') el.checked = Boolean(r[2]);
        break;
      }
      case 's': this.scrolls.push([n.get(r[1]), Number(r[2]) || 0, Number(r[3]) || 0]); break;
      case 'y': {
        const root = n.get(r[1]);
        if (!root || !('adoptedStyleSheets' in root)) break;
        const win = (root.ownerDocument || root).defaultView || this.win;
        const sheet = new win.CSSStyleSheet();
        sheet.replaceSync(cleanCss(r[2], this.base));
        root.adoptedStyleSheets = root === this.doc ? [this.sheet, sheet] : [sheet];
        break;
      }
      case 'p': this.view.pointerAt(this, r[1], r[2], false); break;
      case 'c': this.view.pointerAt(this, r[1], r[2], true); break;
      case 'f': this.setFocus(n.get(r[1])); break;
      case 'w': this.resize(r[1], r[2]); break;
      case 'F': this.focused = Boolean(r[1]); break;
      case 'u': if (typeof r[1] === 'string') this.url = r[1]; break;
      case 'E': this.ready = true; this.frame.dataset.state = 'live'; break;
      default: break; // a newer SDK's record
    }
  }

  /** Builds node `id` from its tuple and puts it in place. */
  create(id, t, before) {
    if (!Array.isArray(t)) return;
    const parent = this.nodes.get(id - t[0]);
    if (!parent) return;
    const doc = parent.nodeType === 9 ? parent : parent.ownerDocument;
    let node = null;
    if (t[1] === 0) node = doc.createTextNode(String(t[2] ?? ''));
    else if (t[1] === 1) {
      try { node = parent.shadowRoot || parent.attachShadow({ mode: 'open' }); } catch { node = doc.createDocumentFragment(); }
      this.nodes.set(id, node);
      this.idOf.set(node, id);
      return;
    } else if (t[1] === 2) {
      const inner = parent.contentDocument;
      if (!inner) return;
      inner.replaceChildren();
      this.nodes.set(id, inner);
      this.idOf.set(inner, id);
      return;
    } else if (typeof t[1] === 'string') node = this.element(doc, parent, t[1], t[2]);
    if (!node) return;
    this.nodes.set(id, node);
    this.idOf.set(node, id);
    this.place(node, parent, before);
  }

  element(doc, parent, tag, attrs) {
    if (!NAME.test(tag) || DROP_TAG.test(tag)) return null;
    const lower = tag.toLowerCase();
    let ns = null;
    if (lower === 'svg') ns = SVG;
    else if (lower === 'math') ns = MATH;
    else if (parent.namespaceURI === SVG && parent.localName !== 'foreignObject') ns = SVG;
    else if (parent.namespaceURI === MATH) ns = MATH;
    if (lower === 'meta' && attrs && ('http-equiv' in attrs || 'charset' in attrs)) return null;
    if (lower === 'link') {
      const rel = String(attrs?.rel || '').toLowerCase();
      if (!/^(stylesheet|icon)$/.test(rel.trim())) return null;
    }
    let el;
    try { el = ns ? doc.createElementNS(ns, tag) : doc.createElement(lower); } catch { return null; }
    if (attrs && typeof attrs === 'object') for (const [name, value] of Object.entries(attrs)) this.attr(el, name, value);
    // A mirrored same-origin iframe stays an empty about:blank document (filled by a
    // later `2` tuple), sandboxed like the mirror itself.
    if (lower === 'iframe') el.setAttribute('sandbox', 'allow-same-origin');
    return el;
  }

  attr(el, name, value) {
    const tag = el.localName;
    if (name === 'value' && /^(input|textarea|select)$/.test(tag)) {
      if (value !== null) {
        if (tag === 'input') el.setAttribute('value', String(value));
        // A select's options come after it: set again once the batch is built.
        if (tag === 'select') this.scrolls.push([el, 'value', String(value)]);
        else el.value = String(value);
      }
      return;
    }
    if (name === 'checked' && tag === 'input') { el.checked = value !== null; return; }
    if (name === 'data-covisit-box') {
      const [w, h] = String(value || '').split(',').map((x) => Math.max(0, Math.min(5000, Number(x) || 0)));
      el.setAttribute('data-covisit-box', '');
      el.style.setProperty('width', `${w}px`, 'important');
      el.style.setProperty('height', `${h}px`, 'important');
      return;
    }
    if (value === null) {
      try { el.removeAttribute(name); } catch { /* an invalid name was never set */ }
      return;
    }
    const v = cleanAttr(tag, name, value, this.base);
    if (v === null) return;
    try {
      if (name.startsWith('xlink:')) el.setAttributeNS('http://www.w3.org/1999/xlink', name, v);
      else el.setAttribute(name, v);
    } catch { /* not a valid attribute name for the DOM */ }
  }

  // ----- style elements: their text is applied only once cleaned ----------------------
  // A <style>'s text nodes live in a detached holder element, never in the style itself
  // (the browser would parse, and load what it names, the moment text arrived there);
  // after each batch, every style whose text changed gets cleanCss() of the whole text.

  resetStyles() {
    this.holders = new WeakMap(); // style element → holder
    this.holderOf = new WeakMap(); // holder → style element
    this.dirtyStyles = new Set();
  }

  holder(style) {
    let h = this.holders.get(style);
    if (!h) {
      h = style.ownerDocument.createElement('covisit-style-text');
      this.holders.set(style, h);
      this.holderOf.set(h, style);
    }
    return h;
  }

  /** Notes that the text of the style whose holder is `parent` (if it is one) changed. */
  touchStyle(parent) {
    const style = parent && this.holderOf.get(parent);
    if (style) this.dirtyStyles.add(style);
  }

  applyStyles() {
    if (!this.dirtyStyles || !this.dirtyStyles.size) return;
    for (const style of this.dirtyStyles) style.textContent = cleanCss(this.holder(style).textContent, this.base);
    this.dirtyStyles.clear();
  }

  place(node, parent, before) {
    if (!node || !parent || node === parent || node.nodeType === 9 || node.nodeType === 11) return;
    if (node.nodeType === 1 && node.contains(parent)) return;
    this.touchStyle(node.parentNode);
    if (parent.nodeType === 1 && parent.localName === 'style') {
      parent = this.holder(parent);
      this.touchStyle(parent);
    }
    const ref = before ? this.nodes.get(before) : null;
    try {
      if (ref && ref.parentNode === parent) parent.insertBefore(node, ref);
      else parent.appendChild(node);
    } catch { /* e.g. a second root element in a document: left out */ }
  }

  scrollNode(node, x, y) {
    if (!node) return;
    if (x === 'value') { node.value = y; return; } // a select's value, see attr()
    const win = node.nodeType === 9 ? node.defaultView : null;
    this.lastScroll.set(node, `${x},${y}`);
    if (win) win.scrollTo(x, y);
    else if (node.nodeType === 1) { node.scrollLeft = x; node.scrollTop = y; }
  }

  setFocus(el) {
    if (this.focusEl && this.focusEl.removeAttribute) this.focusEl.removeAttribute('data-covisit-focus');
    // The page's body or root "has focus" when nothing does: nothing to mark then.
    this.focusEl = el && el.nodeType === 1 && !/^(body|html)$/.test(el.localName) ? el : null;
    if (this.focusEl) this.focusEl.setAttribute('data-covisit-focus', '');
  }

  // ----- the agent acting in the mirror (only while it controls this tab) --------------

  listen() {
    const doc = this.doc;
    /** Sends the action if this agent controls this tab; whether it was sent. */
    const act = (action) => {
      if (this.view.control !== this.tab) return false;
      this.view.onAction(this.tab, action);
      return true;
    };
    const idOf = (node) => {
      for (let n = node; n; n = n.parentNode || n.host) {
        const id = this.idOf.get(n);
        if (id !== undefined) return id;
      }
      return undefined;
    };
    const target = (e) => (e.composedPath ? e.composedPath()[0] : e.target);
    doc.addEventListener('click', (e) => {
      e.preventDefault();
      const el = target(e);
      const id = idOf(el);
      if (id === undefined || !el.getBoundingClientRect) return;
      const r = el.getBoundingClientRect();
      act({ kind: 'click', node: id, x: Math.max(0, Math.round(e.clientX - r.left)), y: Math.max(0, Math.round(e.clientY - r.top)) });
    }, true);
    doc.addEventListener('submit', (e) => e.preventDefault(), true);
    doc.addEventListener('input', (e) => {
      const el = target(e);
      const id = idOf(el);
      if (id === undefined) return;
      const field = 'value' in el && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
      const value = String(field ? el.value : el.textContent);
      if (!act({ kind: 'type', node: id, value })) return;
      if (field) {
        const sent = this.typed.get(el) || [];
        if (sent.push(value) > 200) sent.shift();
        this.typed.set(el, sent);
      }
    }, true);
    let moved = 0;
    doc.addEventListener('mousemove', (e) => {
      const t = Date.now();
      if (t - moved < 50) return;
      moved = t;
      act({ kind: 'pointer', x: Math.max(0, Math.round(e.clientX)), y: Math.max(0, Math.round(e.clientY)) });
    }, true);
    let pending = new Map();
    let timer = 0;
    doc.addEventListener('scroll', (e) => {
      const node = e.target;
      const id = this.idOf.get(node);
      if (id === undefined) return;
      const win = node.nodeType === 9 ? node.defaultView : null;
      const x = Math.round(win ? win.scrollX : node.scrollLeft);
      const y = Math.round(win ? win.scrollY : node.scrollTop);
      // The echo of a scroll the visitor made is not the agent's.
      if (this.lastScroll.get(node) === `${x},${y}`) return;
      pending.set(id, { kind: 'scroll', node: id, x: Math.max(0, x), y: Math.max(0, y) });
      if (!timer) timer = setTimeout(() => { timer = 0; const p = pending; pending = new Map(); p.forEach((a) => act(a)); }, 100);
    }, true);
  }
}

/** All the tabs of one session's visitor, shown one at a time in `stage`. */
export class MirrorView {
  constructor(stage, tabsBar, { onAction, onChange, scaleOf } = {}) {
    this.stage = stage;
    this.tabsBar = tabsBar;
    this.tabs = new Map();
    this.selected = null;
    this.control = null;
    // Issue 16 hooks (www/agent/workspace.js): the tab the agent chose to watch (then
    // the view does not follow the visitor's focus), and the scale of the view mode.
    this.chosen = null;
    this.scaleOf = scaleOf || null;
    this.onAction = onAction || (() => {});
    this.onChange = onChange || (() => {});
    this.resizeObserver = new ResizeObserver(() => this.tabs.forEach((t) => this.layout(t)));
    this.resizeObserver.observe(stage);
  }

  handle(tab, data) {
    let t = this.tabs.get(tab);
    if (!t) {
      t = new TabMirror(this, tab);
      this.tabs.set(tab, t);
      this.stage.append(t.wrap);
      if (!this.selected) this.select(tab);
      else t.wrap.hidden = true;
    }
    t.apply(data);
  }

  /** Whether any tab got records without the start of their epoch (a resync is due). */
  missingStart() {
    return [...this.tabs.values()].some((t) => !t.started && !t.queue);
  }

  hasSnapshot() {
    return [...this.tabs.values()].some((t) => t.started);
  }

  select(tab) {
    this.selected = tab;
    for (const [id, t] of this.tabs) t.wrap.hidden = id !== tab;
    this.renderTabs();
  }

  /** The tab this agent controls, or null: only there do its actions go out. */
  setControl(tab) {
    const changed = tab !== this.control;
    this.control = tab;
    for (const [id, t] of this.tabs) t.wrap.dataset.control = String(id === tab);
    // Only when control changes: the agent may watch another tab meanwhile (issue 16).
    if (changed && tab && this.tabs.has(tab)) this.select(tab);
  }

  changed(t) {
    // Follow the tab the visitor is in, unless the agent controls another one. Tabs
    // report focus in their own streams, so the new tab's focus can arrive before the
    // old tab's blur: whichever comes last decides.
    const current = this.tabs.get(this.selected);
    if (!this.control && !this.chosen && (!current || !current.focused)) {
      const focused = t.focused ? t : [...this.tabs.values()].find((x) => x.focused);
      if (focused && focused.tab !== this.selected) this.select(focused.tab);
    }
    this.renderTabs();
    this.onChange(t);
  }

  renderTabs() {
    const bar = this.tabsBar;
    bar.replaceChildren(...[...this.tabs.values()].map((t, i) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'mirror-tab';
      b.dataset.testid = 'mirror-tab';
      b.dataset.tab = t.tab;
      b.dataset.focused = String(t.focused);
      b.setAttribute('aria-pressed', String(t.tab === this.selected));
      let path = t.url;
      try { const u = new URL(t.url); path = u.pathname + u.search; } catch { /* as is */ }
      b.textContent = `Tab ${i + 1}${t.focused ? ' (in use)' : ''}: ${path}`;
      b.addEventListener('click', () => this.select(t.tab));
      return b;
    }));
    bar.hidden = this.tabs.size < 2;
  }

  layout(t) {
    const avail = this.stage.clientWidth || t.w;
    const scale = this.scaleOf ? this.scaleOf(t) : Math.min(1, avail / t.w);
    t.scale = scale;
    t.frame.style.width = `${t.w}px`;
    t.frame.style.height = `${t.h}px`;
    t.frame.style.transform = `scale(${scale})`;
    t.wrap.style.width = `${Math.round(t.w * scale)}px`;
    t.wrap.style.height = `${Math.round(t.h * scale)}px`;
  }

  pointerAt(t, x, y, click) {
    const p = t.pointer;
    p.hidden = false;
    p.style.transform = `translate(${(Number(x) || 0) * (t.scale || 1)}px, ${(Number(y) || 0) * (t.scale || 1)}px)`;
    if (click) {
      p.classList.remove('clicked');
      void p.offsetWidth; // restart the click animation
      p.classList.add('clicked');
    }
  }

  destroy() {
    this.resizeObserver.disconnect();
    for (const t of this.tabs.values()) t.wrap.remove();
    this.tabs.clear();
    this.tabsBar.replaceChildren();
  }
}
