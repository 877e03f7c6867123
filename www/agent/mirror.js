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
// The URL attributes that load a resource (an image, a style sheet, a font, an SVG
// reference): these may go through the asset proxy; the others stay on this origin only.
const RESOURCE_ATTR = /^(href|src|poster|background|xlink:href)$/i;
const DROP_ATTR = /^(on.*|srcdoc|http-equiv|formaction|action|autofocus|nonce|integrity|is)$/i;
const SAFE_URL = /^(https?:|data:image\/|blob:|mailto:|tel:|#)/i;
// Links the agent's browser never loads (clicks in the mirror are cancelled).
const LINK = /^(a|area)$/i;
// A URL that loads nothing: what a refused one becomes inside CSS.
const NOTHING = 'data:,';
// The console's own rules in every mirrored document and shadow root: the focus mark, the
// masked box, the fullscreen element (as the browser's own :fullscreen rules draw it), and
// canvases. The mirror runs no script, and a document without script draws a <canvas> as
// its fallback content: an inline box with no size of its own and no bitmap. Here it gets
// the size a canvas has from its width and height attributes (--covisit-w/-h, set by
// canvasLook; the height follows the width through a ::before whose padding is a share of
// it: an aspect-ratio would give the box a min-content width where the canvas has none),
// in a cascade layer declared before any of the page's (NATURAL), so that any rule of the
// page wins over it, as over a browser's default; and the page's last image
// ("B") as its background, stretched over its content box as a canvas bitmap is.
const NATURAL = 'covisit-natural';
const FOCUS_CSS = '[data-covisit-focus]{outline:3px solid #ffb020 !important;outline-offset:1px !important}'
  + `@layer ${NATURAL}{:where(canvas){display:inline-block;width:var(--covisit-w,300px);overflow:hidden}:where(canvas)::before{content:"";display:block;padding-top:var(--covisit-h,50%)}}`
  + 'canvas[data-covisit-img]{background-image:var(--covisit-img) !important;background-size:100% 100% !important;background-repeat:no-repeat !important;background-origin:content-box !important;background-position:0 0 !important}'
  + 'canvas>*{display:none !important}'
  // A document without script shows every media element's controls: only where the page asked for them.
  + 'video:not([controls])::-webkit-media-controls{display:none !important}audio:not([controls]){display:none !important}'
  + '[data-covisit-box]{background:repeating-linear-gradient(45deg,#c9ced6 0 6px,#b8bec8 6px 12px) !important;color:transparent !important;display:inline-block}'
  + '[data-covisit-fullscreen]{position:fixed !important;inset:0 !important;box-sizing:border-box !important;min-width:0 !important;max-width:none !important;'
  + 'min-height:0 !important;max-height:none !important;width:100% !important;height:100% !important;transform:none !important;margin:0 !important;object-fit:contain;z-index:2147483647 !important}';
// What a rule the mirror's browser refuses becomes: it keeps the page's rule indexes.
const PLACEHOLDER = '@media not all{}';
const IMAGE = /^data:image\/(png|jpeg|webp);base64,[A-Za-z0-9+/]+=*$/;
const MAX_IMAGE = 4000000;
// Valid custom element names (lowercase ASCII here; the page's are its elements' local names).
const CE_NAME = /^[a-z][a-z0-9._-]*-[a-z0-9._-]*$/;
const CE_RESERVED = new Set(['annotation-xml', 'color-profile', 'font-face', 'font-face-src', 'font-face-uri', 'font-face-format', 'font-face-name', 'missing-glyph']);

/** A URL the mirror may link to, made absolute; null when not allowed. */
function safeUrl(value, base) {
  let u;
  try { u = new URL(String(value).trim(), base || undefined); } catch { return null; }
  return SAFE_URL.test(u.href) ? u.href : null;
}

/** While a tab's records are applied: how an http(s) URL of the page becomes a URL of
 * the covisit server's asset proxy (docs/MIRROR.md, "Assets through covisit"), or null
 * when the tab's page does not send its assets through covisit. */
let route = null;

/** A URL the mirror may load (an image, a stylesheet, a font…): on the covisit server
 * itself, or data:/blob:, or (`proxied`, and the page sends its assets through covisit)
 * another http(s) URL rewritten to the covisit server's asset proxy; made absolute.
 * null for anything else: the mirror loads nothing from another host. */
export function loadableUrl(value, base, proxied = true) {
  const text = String(value).trim();
  if (text.startsWith('#')) return text; // an SVG reference inside the document
  let u;
  try { u = new URL(text, base || undefined); } catch { return null; }
  if (u.protocol === 'data:' || u.protocol === 'blob:') return u.href;
  // A downloaded recording plays from a file: its origin is opaque ('null'), and so is
  // any file: URL's; it loads nothing but data: and blob:.
  if (u.origin === location.origin && location.origin !== 'null') return u.href;
  return proxied && route && /^https?:$/.test(u.protocol) ? route(u.href) : null;
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

/** The rules of a style sheet's text as the mirror may apply them, one text per rule:
 * parsed by the browser (without loading anything: the sheet is not applied to any
 * document), @import dropped (a constructed sheet takes none), escapes resolved by
 * serializing, then every URL left only when loadable. `win` is the window whose
 * CSSStyleSheet is used. */
function cleanRuleTexts(text, base, win) {
  const sheet = new win.CSSStyleSheet();
  try { sheet.replaceSync(String(text).replace(/@import\b/gi, '@x-import')); } catch { return []; }
  walkRules(sheet.cssRules);
  return [...sheet.cssRules].map((rule) => rewriteCssUrls(rule.cssText, base));
}

/** A style sheet's text as the mirror may apply it (cleanRuleTexts, joined). */
export function cleanCss(text, base, win = window) {
  return cleanRuleTexts(text, base, win).map((t) => `${t}\n`).join('');
}

/** Rule texts (one rule each, as the page's browser serialized them) cleaned as cleanCss
 * cleans a sheet, one out per one in: '' where this browser refuses a rule (or a text is
 * not one rule), so that the page's rule indexes still hold. All at once when that gives
 * as many rules as texts, else one by one. */
export function cleanRules(texts, base, win = window) {
  const all = cleanRuleTexts(texts.join('\n'), base, win);
  if (all.length === texts.length) return all;
  return texts.map((t) => { const one = cleanRuleTexts(t, base, win); return one.length === 1 ? one[0] : ''; });
}

/** Inserts a cleaned rule (a placeholder where this browser refuses it) at `i`. */
function insertRule(sheet, text, i) {
  try { sheet.insertRule(text || PLACEHOLDER, i); } catch {
    try { sheet.insertRule(PLACEHOLDER, i); } catch { /* i is out of range: the sheet was out of step */ }
  }
}

/** Makes `sheet` hold exactly `rules` (cleaned texts). */
function fill(sheet, rules) {
  if (sheet.replaceSync) {
    try { sheet.replaceSync(rules.join('\n')); } catch { /* filled one by one below */ }
    if (sheet.cssRules.length === rules.length) return;
  }
  while (sheet.cssRules.length) sheet.deleteRule(sheet.cssRules.length - 1);
  rules.forEach((t, i) => insertRule(sheet, t, i));
}

/** The doctype the mirror writes for a page's [name, publicId, systemId] (0: the page
 * has none, quirks mode): the parser then picks the same document mode as the visitor's
 * browser did. Anything that is not a plain doctype makes the standards one. */
export function doctypeText(dt) {
  if (!Array.isArray(dt)) return '';
  const [name, pub, sys] = dt.map((x) => String(x ?? ''));
  const plain = (x) => x.length < 500 && !/["'>\0]/.test(x);
  if (!/^[a-zA-Z][\w.:-]{0,63}$/.test(name) || !plain(pub) || !plain(sys)) return '<!DOCTYPE html>';
  return `<!DOCTYPE ${name}${pub ? ` PUBLIC "${pub}"${sys ? ` "${sys}"` : ''}` : sys ? ` SYSTEM "${sys}"` : ''}>`;
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
      return /^(mailto|tel):/i.test(link) || loadableUrl(link, base, false) ? link : '#';
    }
    const load = loadableUrl(v, base, RESOURCE_ATTR.test(name));
    return load !== null && safeUrl(v, base) !== null ? load : null;
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

function shown(el, k) {
  return k === 3 ? el.hasAttribute('data-covisit-fullscreen') : k === 1 ? el.matches(':modal') : el.matches(':popover-open');
}

/** Opens `el` in the mirror's top layer. The element is inert meanwhile: opening a dialog
 * or a popover moves focus into it, and the agent's focus must stay in the console. */
function show(el, k) {
  if (k === 3) { el.setAttribute('data-covisit-fullscreen', ''); return; }
  const inert = el.inert;
  el.inert = true;
  try {
    if (k === 1 && el.localName === 'dialog') {
      if (el.open) el.close(); // open but not modal (its `open` attribute): showModal() refuses that
      el.showModal();
    } else if (k === 2 && el.hasAttribute('popover') && !el.matches(':popover-open')) el.showPopover();
  } catch { /* not connected, or not a dialog or popover here */ }
  el.inert = inert;
}

function hide(el, k) {
  try {
    if (k === 3) el.removeAttribute('data-covisit-fullscreen');
    else if (k === 1 && el.matches(':modal')) {
      // The page's `open` attribute may be gone already; close() then does nothing.
      if (!el.hasAttribute('open')) el.setAttribute('open', '');
      el.close();
    }
    else if (k === 2 && el.matches(':popover-open')) el.hidePopover();
  } catch { /* gone meanwhile */ }
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
    this.pointer = document.createElement('div');
    this.pointer.className = 'mirror-pointer';
    this.pointer.dataset.testid = 'mirror-pointer';
    this.pointer.hidden = true;
    this.wrap.append(this.pointer);
    this.own = new WeakMap(); // window → the console's own sheet there (FOCUS_CSS)
    this.modes = new WeakMap(); // document → the doctype it was written with
    this.newFrame();
  }

  /** A new mirror document (mirror.html in a script-less sandbox); records wait for it. */
  newFrame() {
    const old = this.frame;
    const f = (this.frame = document.createElement('iframe'));
    f.setAttribute('sandbox', 'allow-same-origin');
    f.setAttribute('referrerpolicy', 'no-referrer');
    f.setAttribute('title', "The visitor's page");
    f.dataset.testid = 'mirror-frame';
    f.dataset.tab = this.tab;
    f.dataset.state = 'loading';
    f.tabIndex = -1;
    this.queue = [];
    this.doc = null;
    // Custom element names defined in this document: they cannot be undefined again.
    this.defined = new Set();
    f.addEventListener('load', () => {
      if (this.frame !== f) return;
      this.doc = f.contentDocument;
      this.win = f.contentWindow;
      this.modes.set(this.doc, '<!DOCTYPE html>'); // mirror.html's
      this.listen();
      const q = this.queue;
      this.queue = null;
      for (const data of q) this.apply(data);
    }, { once: true });
    // A downloaded recording has no server: the same document, given inline.
    if (this.view.frameDoc) f.srcdoc = this.view.frameDoc;
    else f.src = '/agent/mirror.html';
    if (old) {
      old.replaceWith(f);
      this.view.layout(this);
    } else this.wrap.prepend(f);
  }

  /** Applies a batch of records (queued until the frame document exists), with this
   * tab's asset route in force (loadableUrl). */
  apply(data) {
    if (this.queue) { this.queue.push(data); return; }
    if (!Array.isArray(data)) return;
    route = this.view.assetRoute(this.tab);
    try { this.applyNow(data); } finally { route = null; }
  }

  applyNow(data) {
    this.scrolls = [];
    for (let i = 0; i < data.length; i++) {
      const r = data[i];
      if (!Array.isArray(r)) continue;
      if (r[0] === 'S') {
        // A custom element stays defined in a document: a new snapshot after some were
        // defined gets a new document, so that :defined matches only what the page defined.
        if (this.defined.size) {
          this.newFrame();
          this.queue.push(data.slice(i));
          return;
        }
        this.reset(r);
      } else if (this.started) {
        // Records of an epoch whose start this console missed wait for a resync.
        try { this.record(r); } catch (e) { console.warn('[covisit mirror] record skipped', r[0], e); }
      }
    }
    this.applyStyles();
    for (const [node, x, y] of this.scrolls) this.scrollNode(node, x, y);
    this.view.changed(this);
  }

  reset(r) {
    const [, epoch, url, w, h, focused, dt] = r;
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
    // The page's document mode (an older SDK sends no doctype: standards, as before).
    this.setMode(this.doc, r.length > 6 ? dt : ['html', '', '']);
    this.doc.replaceChildren();
    this.doc.adoptedStyleSheets = [this.ownSheet(this.win)];
    this.models = new Map(); // sheets sent as rules, by id (sheetModel)
    this.long = null; // a long rule arriving in pieces ("H")
    this.img = null; // an image arriving in pieces ("B")
    this.canvasImgs = new WeakMap(); // canvas → its last image (a data: URL)
    this.canvasDims = new WeakMap(); // canvas → {width, height} as the page's attributes say
    this.top = []; // [element, kind] in the top layer, in order
    this.internals = new WeakMap();
    this.pendingStates = new Map();
    this.resize(w, h);
  }

  /** The console's own sheet (FOCUS_CSS) for documents and shadow roots of `win`. */
  ownSheet(win) {
    let s = this.own.get(win);
    if (!s) {
      s = new win.CSSStyleSheet();
      s.replaceSync(FOCUS_CSS);
      this.own.set(win, s);
    }
    return s;
  }

  /** Puts `doc` in the document mode of the page's doctype (doctypeText) by having the
   * parser read that doctype, and nothing else: document.open(), write(), close(). */
  setMode(doc, dt) {
    const text = doctypeText(dt);
    if (this.modes.get(doc) === text) return;
    doc.open();
    doc.write(text);
    doc.close();
    if (doc.documentElement) doc.documentElement.remove();
    this.modes.set(doc, text);
    if (doc === this.doc) this.attach(); // document.open() removed the document's listeners
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
        else if (el && el.tagName === 'OPTION') el.selected = Boolean(r[2]);
        break;
      }
      case 's': this.scrolls.push([n.get(r[1]), Number(r[2]) || 0, Number(r[3]) || 0]); break;
      case 'y': { // an older SDK: the adopted sheets' text
        const root = n.get(r[1]);
        if (!root || !('adoptedStyleSheets' in root)) break;
        const win = (root.ownerDocument || root).defaultView || this.win;
        const sheet = new win.CSSStyleSheet();
        sheet.replaceSync(cleanCss(r[2], this.base));
        root.adoptedStyleSheets = [this.ownSheet(win), sheet];
        break;
      }
      case 'Q': // a constructed sheet; its rules follow
        this.models.set(r[1], { rules: [], dis: Boolean(r[3]), media: String(r[2] ?? ''), el: null, copies: new Map() });
        break;
      case 'Y': {
        const root = n.get(r[1]);
        if (!root || !('adoptedStyleSheets' in root) || !Array.isArray(r[2])) break;
        const win = (root.ownerDocument || root).defaultView || this.win;
        const list = [this.ownSheet(win)];
        for (const id of r[2].slice(0, 1000)) {
          const m = this.models.get(id);
          if (m && m.copies) list.push(this.copy(m, win));
        }
        root.adoptedStyleSheets = list;
        break;
      }
      case 'I': {
        const m = this.sheetModel(r[1]);
        if (m && Array.isArray(r[3])) this.insertRules(m, r[2], cleanRules(r[3].slice(0, 10000).map(String), this.base, this.win));
        break;
      }
      case 'H': {
        if (!this.long || this.long.id !== r[1] || this.long.at !== r[2]) this.long = { id: r[1], at: r[2], text: '' };
        this.long.text += String(r[3]);
        if (this.long.text.length > MAX_IMAGE) this.long = null;
        else if (r[4]) {
          const m = this.sheetModel(r[1]);
          if (m) this.insertRules(m, r[2], cleanRules([this.long.text], this.base, this.win));
          this.long = null;
        }
        break;
      }
      case 'J': {
        const m = this.sheetModel(r[1]);
        if (m) this.deleteRules(m, r[2], r[3]);
        break;
      }
      case 'G': {
        const m = this.sheetModel(r[1]);
        if (!m) break;
        m.dis = Boolean(r[2]);
        m.media = String(r[3] ?? '');
        if (m.el) this.attr(m.el, 'media', m.media || null);
        for (const s of this.lives(m)) {
          s.disabled = m.dis;
          if (!m.el) s.media.mediaText = m.media;
        }
        break;
      }
      case 'e': {
        const d = n.get(r[1]);
        if (!d || d.nodeType !== 9 || !d.defaultView || !Array.isArray(r[2])) break;
        for (const name of r[2].slice(0, 2000)) this.define(d.defaultView, String(name));
        for (const [el, names] of this.pendingStates) this.setStates(el, names);
        break;
      }
      case 'k': {
        const el = n.get(r[1]);
        if (el && el.nodeType === 1 && Array.isArray(r[2])) this.setStates(el, r[2].slice(0, 100).map(String));
        break;
      }
      case 'L': this.topLayer(Array.isArray(r[1]) ? r[1] : []); break;
      case 'B': {
        if (!this.img || this.img.id !== r[1]) this.img = { id: r[1], text: '' };
        this.img.text += String(r[2]);
        if (this.img.text.length > MAX_IMAGE) this.img = null;
        else if (r[3]) {
          this.image(n.get(r[1]), this.img.text);
          this.img = null;
        }
        break;
      }
      case 'm': this.media(n.get(r[1]), Boolean(r[2]), Number(r[3]) || 0); break;
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
      try {
        node = parent.shadowRoot || parent.attachShadow({ mode: 'open' });
        node.adoptedStyleSheets = [this.ownSheet(doc.defaultView || this.win)];
      } catch { node = doc.createDocumentFragment(); }
      this.nodes.set(id, node);
      this.idOf.set(node, id);
      return;
    } else if (t[1] === 2) {
      const inner = parent.contentDocument;
      if (!inner) return;
      // The page's document mode (an older SDK sends none: left as it is, quirks).
      if (t.length > 2) this.setMode(inner, t[2]);
      if (inner.documentElement) inner.documentElement.remove();
      if (inner.defaultView) inner.adoptedStyleSheets = [this.ownSheet(inner.defaultView)];
      this.nodes.set(id, inner);
      this.idOf.set(inner, id);
      return;
    } else if (typeof t[1] === 'string') node = this.element(doc, parent, t[1], t[2]);
    if (!node) return;
    this.nodes.set(id, node);
    this.idOf.set(node, id);
    this.place(node, parent, before);
    // The console's layer comes first in every document (before the page's layers): a
    // statement alone, at the start of the head; its rules are in the adopted FOCUS_CSS.
    if (node.localName === 'head' && parent.nodeType === 1 && parent === doc.documentElement) {
      const own = doc.createElement('style');
      own.setAttribute('data-covisit-own', '');
      own.textContent = `@layer ${NATURAL};`;
      node.prepend(own);
    }
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
    // The agent's console never plays the visitor's sound.
    if (lower === 'video' || lower === 'audio') el.muted = true;
    if (lower === 'canvas') this.canvasLook(el);
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
    // A canvas's size is kept here, not as attributes: in a document without script a
    // canvas with a width attribute gets a min-content width from it, which the page's
    // canvas (a replaced element) does not have when CSS sizes it in percent.
    if (tag === 'canvas' && (name === 'width' || name === 'height')) {
      const dims = this.canvasDims.get(el) || {};
      dims[name] = value;
      this.canvasDims.set(el, dims);
      this.canvasLook(el);
      return;
    }
    // Popovers open and close as the page says ("L"), never on their own (light dismiss).
    if (name === 'popover' && value !== null) value = 'manual';
    if (name === 'data-covisit-box') {
      const [w, h] = String(value || '').split(',').map((x) => Math.max(0, Math.min(5000, Number(x) || 0)));
      el.setAttribute('data-covisit-box', '');
      el.style.setProperty('width', `${w}px`, 'important');
      el.style.setProperty('height', `${h}px`, 'important');
      return;
    }
    if (value === null) {
      try { el.removeAttribute(name); } catch { /* an invalid name was never set */ }
      if (tag === 'canvas' && name === 'style') this.canvasLook(el);
      return;
    }
    const v = cleanAttr(tag, name, value, this.base);
    if (v === null) return;
    try {
      if (name.startsWith('xlink:')) el.setAttributeNS('http://www.w3.org/1999/xlink', name, v);
      else el.setAttribute(name, v);
    } catch { /* not a valid attribute name for the DOM */ }
    if (tag === 'canvas' && name === 'style') this.canvasLook(el);
  }

  /** A mirrored canvas's size and image (see FOCUS_CSS), as custom properties in its
   * style: set again whenever the page's style attribute replaces them. */
  canvasLook(el) {
    const dims = this.canvasDims.get(el) || {};
    const num = (name, d) => { const n = parseInt(dims[name], 10); return n >= 0 && n < 100000 ? n : d; };
    const w = num('width', 300);
    const h = num('height', 150);
    el.style.setProperty('--covisit-w', `${w}px`);
    el.style.setProperty('--covisit-h', `${w ? (h / w) * 100 : 50}%`);
    const url = this.canvasImgs && this.canvasImgs.get(el);
    if (url) {
      el.style.setProperty('--covisit-img', `url("${url}")`);
      el.setAttribute('data-covisit-img', '');
    }
  }

  // ----- style sheets sent as rules ("Q", "Y", "I", "H", "J", "G") ---------------------
  // A model per sheet holds its cleaned rules in the page's order; every live copy (the
  // style element's sheet, or a constructed sheet per window that adopts it) follows it,
  // and is rebuilt from it when it went out of step (e.g. a moved style element).

  /** The model of sheet `id`: a constructed sheet's ("Q"), or a style element's. */
  sheetModel(id) {
    let m = this.models.get(id);
    if (m) return m;
    const el = this.nodes.get(id);
    if (!el || el.nodeType !== 1 || el.localName !== 'style') return null;
    m = { rules: [], dis: false, media: '', el, copies: null };
    this.models.set(id, m);
    return m;
  }

  lives(m) {
    if (!m.el) return [...m.copies.values()];
    const s = m.el.sheet;
    if (!s) return [];
    s.disabled = m.dis;
    return [s];
  }

  /** The copy of a constructed sheet for documents and shadow roots of `win`. */
  copy(m, win) {
    let s = m.copies.get(win);
    if (!s) {
      s = new win.CSSStyleSheet();
      try { s.media.mediaText = m.media; } catch { /* not a media list */ }
      s.disabled = m.dis;
      fill(s, m.rules);
      m.copies.set(win, s);
    }
    return s;
  }

  insertRules(m, index, texts) {
    const at = Math.max(0, Math.min(Number(index) || 0, m.rules.length));
    for (const s of this.lives(m)) {
      if (s.cssRules.length !== m.rules.length) fill(s, m.rules);
      texts.forEach((t, k) => insertRule(s, t, at + k));
    }
    m.rules.splice(at, 0, ...texts);
  }

  deleteRules(m, index, count) {
    const at = Math.max(0, Math.min(Number(index) || 0, m.rules.length));
    const n = Math.max(0, Math.min(Number(count) || 0, m.rules.length - at));
    m.rules.splice(at, n);
    for (const s of this.lives(m)) {
      if (s.cssRules.length !== m.rules.length + n) fill(s, m.rules);
      else for (let k = 0; k < n; k++) s.deleteRule(at);
    }
  }

  // ----- custom elements, the top layer, images, media ---------------------------------

  /** Defines `name` in the mirror window `win` with an empty class made by this script:
   * no code of the page exists here. It makes :defined match as in the page, and lets
   * custom states be set (setStates). */
  define(win, name) {
    if (!CE_NAME.test(name) || CE_RESERVED.has(name) || name.length > 200) return;
    try {
      if (!win.customElements.get(name)) win.customElements.define(name, class extends win.HTMLElement {});
      this.defined.add(name);
    } catch { /* not a name this browser takes */ }
  }

  /** The custom states (:state()) of a mirrored custom element, through its internals. */
  setStates(el, names) {
    let i = this.internals.get(el);
    if (!i) {
      try { i = el.attachInternals(); } catch {
        // Not defined in the mirror yet: tried again when names are defined ("e").
        this.pendingStates.set(el, names);
        return;
      }
      this.internals.set(el, i);
    }
    this.pendingStates.delete(el);
    i.states.clear();
    for (const s of names) try { i.states.add(s); } catch { /* not a state name */ }
  }

  /** Makes the mirror's top layer the page's: modal dialogs (1), popovers (2), the
   * fullscreen element (3), in the page's order. What is the same at the start stays;
   * the rest is closed and opened again in order. */
  topLayer(list) {
    const want = [];
    for (let i = 0; i + 1 < list.length && want.length < 100; i += 2) {
      const el = this.nodes.get(list[i]);
      const k = list[i + 1];
      if (el && el.nodeType === 1 && el.isConnected && (k === 1 || k === 2 || k === 3) && !want.some((w) => w[0] === el)) want.push([el, k]);
    }
    const cur = this.top;
    let same = 0;
    while (same < cur.length && same < want.length && cur[same][0] === want[same][0] && cur[same][1] === want[same][1] && shown(...cur[same])) same++;
    for (let i = cur.length - 1; i >= same; i--) hide(...cur[i]);
    for (let i = same; i < want.length; i++) show(...want[i]);
    this.top = want;
  }

  /** A canvas's image (its background: canvasLook) or a video's frame (its poster). */
  image(el, url) {
    if (!el || el.nodeType !== 1 || !IMAGE.test(url)) return;
    if (el.localName === 'video') { el.setAttribute('poster', url); return; }
    if (el.localName !== 'canvas') return;
    this.canvasImgs.set(el, url);
    this.canvasLook(el);
  }

  /** A media element's state: shown as data-covisit-media; followed (muted) when the
   * mirror's element has a source it could load. */
  media(el, paused, time) {
    if (!el || !/^(video|audio)$/.test(el.localName)) return;
    el.setAttribute('data-covisit-media', `${paused ? 'paused' : 'playing'} ${time}`);
    el.muted = true;
    if (el.readyState < 1) return;
    if (Math.abs(el.currentTime - time) > 0.5) el.currentTime = time;
    if (paused) el.pause();
    else el.play().catch(() => {});
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

  /** The agent's input in the mirror document (attach() puts the listeners on it). */
  listen() {
    const on = (type, fn) => this.handlers.push([type, fn]);
    this.handlers = [];
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
    on('click', (e) => {
      e.preventDefault();
      const el = target(e);
      const id = idOf(el);
      if (id === undefined || !el.getBoundingClientRect) return;
      const r = el.getBoundingClientRect();
      act({ kind: 'click', node: id, x: Math.max(0, Math.round(e.clientX - r.left)), y: Math.max(0, Math.round(e.clientY - r.top)) });
    });
    on('submit', (e) => e.preventDefault());
    // A modal dialog closes as the page says, not on the agent's Escape.
    on('cancel', (e) => e.preventDefault());
    on('input', (e) => {
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
    });
    let moved = 0;
    on('mousemove', (e) => {
      const t = Date.now();
      if (t - moved < 50) return;
      moved = t;
      act({ kind: 'pointer', x: Math.max(0, Math.round(e.clientX)), y: Math.max(0, Math.round(e.clientY)) });
    });
    let pending = new Map();
    let timer = 0;
    on('scroll', (e) => {
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
    });
    this.attach();
  }

  /** Puts the agent's input listeners on the mirror document (again after document.open(),
   * which removes them). */
  attach() {
    if (!this.handlers) return;
    for (const [type, fn] of this.handlers) {
      this.doc.removeEventListener(type, fn, true);
      this.doc.addEventListener(type, fn, true);
    }
  }
}

/** All the tabs of one session's visitor, shown one at a time in `stage`. */
export class MirrorView {
  /**
   * @param {{onAction?: Function, onChange?: Function, scaleOf?: Function, sessionId?: string | null, frameDoc?: string | null}} [options]
   *   `frameDoc`: mirror.html's markup, for a player without a server (replay.js).
   */
  constructor(stage, tabsBar, { onAction, onChange, scaleOf, sessionId, frameDoc = null } = {}) {
    this.stage = stage;
    this.frameDoc = frameDoc;
    // Assets through covisit: the session whose asset proxy serves the page's assets,
    // and the tabs whose page sends its assets through covisit (assetsProxyConfigured).
    this.sessionId = sessionId || null;
    this.assetTabs = new Set();
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

  /** The tabs (uniqueConnectionIds) whose page set `assetsProxyConfigured`. */
  setAssetTabs(tabs) {
    this.assetTabs = new Set(tabs);
  }

  /** How tab `tab`'s http(s) asset URLs become URLs of this server's asset proxy, or
   * null when its page keeps its assets out of covisit. */
  assetRoute(tab) {
    if (!this.sessionId || !this.assetTabs.has(tab)) return null;
    const prefix = `${location.origin}/api/v1/sessions/${encodeURIComponent(this.sessionId)}/assets?tab=${encodeURIComponent(tab)}&url=`;
    return (href) => prefix + encodeURIComponent(href);
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
    // The viewport's borders are outside its content box (console.css): room for them.
    const borders = t.wrap.offsetWidth - t.wrap.clientWidth;
    const avail = (this.stage.clientWidth || t.w) - borders;
    const scale = this.scaleOf ? this.scaleOf(t, borders) : Math.min(1, avail / t.w);
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
