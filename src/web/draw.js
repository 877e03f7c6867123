// Agents' laser pointer and ink on the visitor's page (issue 16). Loaded on demand (the
// build writes it as covisit-draw.js) once a session is active on a page that allows
// drawing; glue.js stands in for it until then. It draws in the SDK's own shadow root
// (the page's styles cannot reach it, and the co-browsing capture never mirrors it),
// over the page, and never takes the page's input (pointer-events: none), except for
// one button with which the visitor hides all of it.
//
// Rust decided that an ink may be shown (src/core/client/draw.rs: an active session, a
// page that allows drawing) and checked every number; this module still trusts nothing
// of it: names are text (textContent), colours an index into a fixed palette.
//
// Every ink is anchored to the page's content: to the element the agent drew on (a
// mirror node id, found through the capture) with its points in CSS pixels from that
// element's top-left corner, so it stays on the content when the visitor scrolls, a
// box scrolls, or the layout moves it. Without the element, to where it was in the page.

const PALETTE = ['#d92d20', '#1570ef', '#067647', '#b54708', '#6941c6', '#c11574', '#0e7090', '#3e4784'];
const FADE_MS = 4000; // an unpinned stroke stays this long after the agent let go
const FADE_OUT_MS = 700; // then it fades out over this long
const LASER_MS = 1500; // a laser dot that did not move for this long fades
const MAX_INKS = 200; // strokes kept at once; the oldest go first
const MAX_POINTS = 4000; // points of one stroke; more are ignored
const RESOLVE_MS = 1000; // an element that left the page is looked for again at most this often
const REFRESH_MS = 300; // layout can move content without a scroll: re-place this often
const SVG = 'http://www.w3.org/2000/svg';

const CSS = `
.cv-draw { position: fixed; inset: 0; overflow: hidden; pointer-events: none; z-index: 2147483646; }
.cv-draw[hidden] { display: none; }
.ink, .laser { position: absolute; left: 0; top: 0; will-change: transform; transition: opacity ${FADE_OUT_MS}ms ease-out; }
.ink svg { position: absolute; left: 0; top: 0; overflow: visible; }
.ink path { fill: none; stroke-linecap: round; stroke-linejoin: round; }
.ink.fading, .laser.off { opacity: 0; }
.tag { position: absolute; left: 10px; top: -26px; white-space: nowrap; max-width: 240px; overflow: hidden; text-overflow: ellipsis;
  font: 600 12px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #fff; padding: 1px 8px; border-radius: 999px;
  box-shadow: 0 1px 3px rgba(16, 24, 40, .35); }
.dot { position: absolute; left: -9px; top: -9px; width: 18px; height: 18px; border-radius: 50%; border: 3px solid #fff;
  box-sizing: border-box; box-shadow: 0 0 0 4px rgba(255, 255, 255, .35), 0 0 12px 4px currentColor; }
.hide { position: fixed; left: 16px; bottom: 64px; z-index: 2147483647; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  background: #fff; color: #14181f; border: 1px solid #98a2b3; border-radius: 999px; padding: 5px 14px; cursor: pointer;
  box-shadow: 0 4px 16px rgba(16, 24, 40, .25); pointer-events: auto; }
.hide:focus-visible { outline: 3px solid #ffb020; outline-offset: 2px; }
.hide[hidden] { display: none; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
@media (prefers-reduced-motion: reduce) { .ink, .laser { transition: none; } }
`;

function node(tag, attrs, text) {
  const n = tag === 'svg' || tag === 'path' ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text; // text, never markup
  return n;
}

const colorOf = (i) => PALETTE[(Number(i) >>> 0) % PALETTE.length];
const LIMIT = 1e6; // the protocol's coordinate bound (MAX_INK_COORD)
/** A number of the ink as the protocol allows it, whatever the frame held: an integer within ±LIMIT, else 0. */
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? Math.max(-LIMIT, Math.min(LIMIT, Math.round(v))) : 0);

/** The SVG path of a stroke: freehand through its points, or an arrow from the first to the last. */
function pathOf(shape, points) {
  if (!points.length) return '';
  if (shape === 'arrow') {
    const [x1, y1] = points[0];
    const [x2, y2] = points[points.length - 1];
    const a = Math.atan2(y2 - y1, x2 - x1);
    const head = (d) => `${Math.round(x2 - 16 * Math.cos(a + d))} ${Math.round(y2 - 16 * Math.sin(a + d))}`;
    return `M${x1} ${y1}L${x2} ${y2}M${head(0.5)}L${x2} ${y2}L${head(-0.5)}`;
  }
  const [first, ...rest] = points;
  // A single point is a dot: a zero-length line with round caps.
  return `M${first[0]} ${first[1]}` + (rest.length ? rest.map((p) => `L${p[0]} ${p[1]}`).join('') : `L${first[0]} ${first[1]}`);
}

export class DrawLayer {
  /** `root`: the SDK's shadow root; `find(id, epoch)`: the page node of a mirror node id
   * of that mirror epoch (or null). */
  constructor(root, find) {
    this.root = root;
    this.find = find;
    this.inks = new Map(); // `${agent}\n${id}` → ink
    this.lasers = new Map(); // agent → laser
    this.names = new Set(); // agents announced already
    this.style = node('style', {}, CSS);
    this.box = node('div', { class: 'cv-draw', 'data-covisit': 'draw-layer', 'aria-hidden': 'true' });
    this.status = node('div', { class: 'sr', role: 'status', 'aria-live': 'polite' });
    // Not a consent prompt: it only ever takes something away, so it needs no arming.
    this.button = node('button', { type: 'button', class: 'hide', 'data-covisit': 'hide-drawings' }, 'Hide drawings');
    this.button.hidden = true;
    this.button.addEventListener('click', () => this.setHidden(!this.box.hidden));
    root.append(this.style, this.box, this.status, this.button);
    this.frame = 0;
    this.place = () => {
      if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.placeAll(); });
    };
    addEventListener('scroll', this.place, { capture: true, passive: true });
    addEventListener('resize', this.place, { passive: true });
    this.refresh = setInterval(this.place, REFRESH_MS);
  }

  /** One ink of an agent, as Rust checked it (JSON text of the protocol's `Ink`). */
  ink(agentId, name, color, json) {
    let ink;
    try { ink = JSON.parse(json); } catch { return; }
    if (!ink || typeof ink !== 'object') return;
    const agent = String(agentId);
    const label = String(name || 'Support').slice(0, 64);
    if (ink.kind === 'clear') return this.clear(agent);
    if (ink.kind === 'laser') this.laser(agent, label, color, ink);
    else if (ink.kind === 'stroke') this.stroke(agent, label, color, ink);
    else return;
    if (!this.names.has(agent)) {
      this.names.add(agent);
      this.status.textContent = `${label} is pointing at this page. The Hide drawings button hides it.`;
    }
    this.sync();
  }

  /** The hide button shows while there is something to hide (or it is all hidden). */
  sync() {
    const showing = this.inks.size > 0 || [...this.lasers.values()].some((l) => !l.el.classList.contains('off'));
    this.button.hidden = !showing && !this.box.hidden;
  }

  laser(agent, label, color, ink) {
    let l = this.lasers.get(agent);
    if (!l) {
      const el = node('div', { class: 'laser', 'data-covisit': 'laser', 'data-agent': agent });
      el.style.color = colorOf(color);
      const dot = node('div', { class: 'dot' });
      dot.style.background = colorOf(color);
      const tag = node('span', { class: 'tag', 'data-covisit': 'ink-name' }, label);
      tag.style.background = colorOf(color);
      el.append(dot, tag);
      this.box.append(el);
      l = { el, anchor: null };
      this.lasers.set(agent, l);
    }
    l.anchor = this.anchor(ink, l.anchor);
    l.x = num(ink.x);
    l.y = num(ink.y);
    l.el.classList.remove('off');
    clearTimeout(l.timer);
    l.timer = setTimeout(() => { l.el.classList.add('off'); this.sync(); }, LASER_MS);
    this.placeOne(l);
  }

  stroke(agent, label, color, ink) {
    const key = `${agent}\n${Number(ink.id) >>> 0}`;
    let s = this.inks.get(key);
    const points = Array.isArray(ink.points)
      ? ink.points.slice(0, 256).filter(Array.isArray).map((p) => [num(p[0]), num(p[1])])
      : [];
    if (!s) {
      if (this.inks.size >= MAX_INKS) this.drop(this.inks.keys().next().value);
      const el = node('div', { class: 'ink', 'data-covisit': 'ink', 'data-agent': agent, 'data-state': 'drawing' });
      const svg = node('svg', { width: '1', height: '1' });
      // A white halo under the colour keeps the ink visible on any background.
      const halo = node('path', { stroke: '#fff', 'stroke-width': '8', 'stroke-opacity': '0.85' });
      const line = node('path', { stroke: colorOf(color), 'stroke-width': '4' });
      svg.append(halo, line);
      const tag = node('span', { class: 'tag', 'data-covisit': 'ink-name' }, label);
      tag.style.background = colorOf(color);
      el.append(svg, tag);
      this.box.append(el);
      s = { key, agent, el, halo, line, tag, points: [], shape: ink.shape === 'arrow' ? 'arrow' : 'free', anchor: this.anchor(ink, null) };
      this.inks.set(key, s);
    }
    for (const p of points) if (s.points.length < MAX_POINTS) s.points.push(p);
    const d = pathOf(s.shape, s.points);
    s.halo.setAttribute('d', d);
    s.line.setAttribute('d', d);
    const [tx, ty] = s.points[0] || [0, 0];
    s.tag.style.transform = `translate(${tx}px, ${ty}px)`;
    s.el.dataset.pinned = String(Boolean(ink.pinned));
    if (ink.done && s.el.dataset.state === 'drawing') {
      s.el.dataset.state = 'shown';
      if (!ink.pinned) {
        s.timer = setTimeout(() => {
          s.el.dataset.state = 'fading';
          s.el.classList.add('fading');
          s.timer = setTimeout(() => this.drop(key), FADE_OUT_MS);
        }, FADE_MS);
      }
    }
    this.placeOne(s);
  }

  /** Where an ink hangs: its element (looked up once, and again only if it left the page). */
  anchor(ink, previous) {
    const id = Number(ink.node) >>> 0;
    const epoch = Number(ink.epoch) >>> 0;
    const a = previous && previous.id === id && previous.epoch === epoch ? previous : { id, epoch, ref: null, at: 0 };
    a.ox = num(ink.ox);
    a.oy = num(ink.oy);
    return a;
  }

  /** The anchor's top-left corner in viewport pixels now. */
  origin(a) {
    let el = a.ref && a.ref.deref();
    if ((!el || !el.isConnected) && performance.now() - a.at >= RESOLVE_MS) {
      a.at = performance.now();
      let found = null;
      try { found = this.find(a.id, a.epoch); } catch { found = null; }
      a.ref = found ? new WeakRef(found) : null;
      el = found;
    }
    if (el && el.isConnected) {
      if (el.nodeType === 9) { // a document: the page itself (node 0), or a frame's
        const w = el.defaultView;
        const f = frameOffset(el);
        if (w) return [f[0] - w.scrollX, f[1] - w.scrollY];
      } else {
        const host = el.nodeType === 11 ? el.host : el;
        if (host && host.getBoundingClientRect) {
          const r = host.getBoundingClientRect();
          const f = frameOffset(host.ownerDocument);
          return [r.left + f[0], r.top + f[1]];
        }
      }
    }
    return [a.ox - scrollX, a.oy - scrollY];
  }

  placeOne(item) {
    const [x, y] = this.origin(item.anchor);
    const dx = item.x === undefined ? 0 : item.x;
    const dy = item.y === undefined ? 0 : item.y;
    const t = `translate(${Math.round(x + dx)}px, ${Math.round(y + dy)}px)`;
    if (item.el.style.transform !== t) item.el.style.transform = t;
  }

  placeAll() {
    for (const s of this.inks.values()) this.placeOne(s);
    for (const l of this.lasers.values()) this.placeOne(l);
  }

  drop(key) {
    const s = this.inks.get(key);
    if (!s) return;
    clearTimeout(s.timer);
    s.el.remove();
    this.inks.delete(key);
    this.sync();
  }

  clear(agent) {
    for (const s of [...this.inks.values()]) if (s.agent === agent) this.drop(s.key);
    const l = this.lasers.get(agent);
    if (l) { clearTimeout(l.timer); l.el.remove(); this.lasers.delete(agent); }
    this.sync();
  }

  setHidden(hidden) {
    this.box.hidden = hidden;
    this.button.textContent = hidden ? 'Show drawings' : 'Hide drawings';
    this.button.dataset.hidden = String(hidden);
    this.sync();
  }

  destroy() {
    removeEventListener('scroll', this.place, { capture: true });
    removeEventListener('resize', this.place);
    clearInterval(this.refresh);
    cancelAnimationFrame(this.frame);
    for (const s of this.inks.values()) clearTimeout(s.timer);
    for (const l of this.lasers.values()) clearTimeout(l.timer);
    this.inks.clear();
    this.lasers.clear();
    for (const n of [this.style, this.box, this.status, this.button]) n.remove();
  }
}

/** Where a (same-origin) frame's document sits in the page's viewport. */
function frameOffset(doc) {
  let x = 0;
  let y = 0;
  for (let d = doc; d && d !== document;) {
    let f = null;
    try { f = d.defaultView && d.defaultView.frameElement; } catch { f = null; }
    if (!f) break;
    const r = f.getBoundingClientRect();
    x += r.left + f.clientLeft;
    y += r.top + f.clientTop;
    d = f.ownerDocument;
  }
  return [x, y];
}
