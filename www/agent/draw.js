// Pointing and drawing on the visitor's page without control (issue 16): the console's
// half. One DrawBoard per live session this agent is in; for each of the visitor's tabs
// in the mirror it lays an overlay over the mirror frame, in the mirrored page's own
// coordinates (scaled with it), that shows every agent's laser and ink and, while a
// tool is chosen, turns the agent's pointer into `draw` frames (docs/PROTOCOL.md):
//
// - laser: the dot follows the pointer, anchored to the page (node 0: document
//   coordinates), at most 25 frames a second;
// - pen / arrow: a stroke anchored to the element under its first point (a mirror node
//   id, with the element's place in the page as the fallback), its points in CSS pixels
//   from that element's top-left corner, so the visitor's page draws it on the same
//   content wherever that is on their screen; pen strokes go out in pieces every 50 ms.
//
// Other agents' inks arrive as `draw` frames and are shown the same way. Names are text,
// colours come from the palette by index (the agent's place in Session.agents), exactly
// as the SDK's layer (src/web/draw.js) does on the visitor's page.

const PALETTE = ['#d92d20', '#1570ef', '#067647', '#b54708', '#6941c6', '#c11574', '#0e7090', '#3e4784'];
const FADE_MS = 4000;
const FADE_OUT_MS = 700;
const LASER_MS = 1500;
const LASER_EVERY_MS = 40;
const STROKE_EVERY_MS = 50;
const MAX_POINTS_PER_FRAME = 200; // the protocol allows 256
const MAX_INKS = 200;
const LIMIT = 1e6;
const SVG = 'http://www.w3.org/2000/svg';

const clamp = (v) => Math.max(-LIMIT, Math.min(LIMIT, Math.round(Number(v) || 0)));
export const inkColor = (i) => PALETTE[(Number(i) >>> 0) % PALETTE.length];

function node(tag, attrs, text) {
  const n = tag === 'svg' || tag === 'path' ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  return n;
}

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
  return `M${first[0]} ${first[1]}` + (rest.length ? rest.map((p) => `L${p[0]} ${p[1]}`).join('') : `L${first[0]} ${first[1]}`);
}

/** Where a document of the mirror (a nested frame's) sits in the mirror's viewport. */
function frameOffset(doc, top) {
  let x = 0;
  let y = 0;
  for (let d = doc; d && d !== top;) {
    const f = d.defaultView && d.defaultView.frameElement;
    if (!f) break;
    const r = f.getBoundingClientRect();
    x += r.left + f.clientLeft;
    y += r.top + f.clientTop;
    d = f.ownerDocument;
  }
  return [x, y];
}

export class DrawBoard {
  /**
   * `view`: the session's MirrorView; `send(frame)`; `me()`: this agent's id;
   * `onRefused(tab)`: the server said this tab's page does not allow drawing.
   */
  constructor({ sessionId, view, send, me }) {
    this.sessionId = sessionId;
    this.view = view;
    this.send = send;
    this.me = me;
    this.tool = 'none';
    this.pinned = false;
    this.agents = [];
    this.tabs = new Map(); // tab id → {t, overlay, inks, lasers, ...}
    this.refused = new Set();
    this.drewOn = new Set();
    this.nextId = (Date.now() % 1e6) * 1000;
  }

  /** The session's agents in the order they joined: their colours. */
  setAgents(agents) {
    this.agents = (agents || []).map((a) => a.id);
  }

  colorOf(agentId) {
    const i = this.agents.indexOf(agentId);
    return i < 0 ? 0 : i;
  }

  setTool(tool) {
    this.tool = tool;
    for (const b of this.tabs.values()) b.overlay.dataset.tool = this.refused.has(b.tab) ? 'none' : tool;
  }

  /** The tab's mirror changed (a batch was applied): make sure it has an overlay, re-place. */
  changed(t) {
    const b = this.board(t);
    if (b) this.schedule(b);
  }

  board(t) {
    if (!t || !t.wrap) return null;
    let b = this.tabs.get(t.tab);
    if (b && b.t === t) return b;
    const overlay = node('div', { class: 'ink-overlay', 'data-testid': 'ink-overlay', 'data-tab': t.tab, 'data-tool': this.tool });
    t.wrap.append(overlay);
    b = { tab: t.tab, t, overlay, inks: new Map(), lasers: new Map(), frame: 0, scrollHooked: null };
    this.tabs.set(t.tab, b);
    const resize = new ResizeObserver(() => this.schedule(b));
    resize.observe(t.wrap);
    b.resize = resize;
    this.listen(b);
    return b;
  }

  /** Re-places every ink of the tab at the next frame (after a scroll, a batch, a resize). */
  schedule(b) {
    const win = b.t.win;
    if (win && b.scrollHooked !== win) {
      // The mirror frame's window exists once its document loaded; it is replaced on reset.
      win.addEventListener('scroll', () => this.schedule(b), { capture: true, passive: true });
      b.scrollHooked = win;
    }
    if (b.frame) return;
    b.frame = requestAnimationFrame(() => {
      b.frame = 0;
      this.size(b);
      for (const s of b.inks.values()) this.placeOne(b, s);
      for (const l of b.lasers.values()) this.placeOne(b, l);
    });
  }

  size(b) {
    const { t, overlay } = b;
    const w = `${t.w}px`;
    const h = `${t.h}px`;
    if (overlay.style.width !== w) overlay.style.width = w;
    if (overlay.style.height !== h) overlay.style.height = h;
    const tr = `scale(${t.scale || 1})`;
    if (overlay.style.transform !== tr) overlay.style.transform = tr;
  }

  // ----- where an ink is -------------------------------------------------------------

  origin(b, a) {
    const { t } = b;
    // Node ids are per mirror epoch: an ink of an older snapshot keeps its place in the page.
    const el = (a.id === 0 || !a.epoch || a.epoch === t.epoch) && t.nodes ? t.nodes.get(a.id) : null;
    if (el && el.isConnected) {
      if (el.nodeType === 9 && el.defaultView) {
        const f = frameOffset(el, t.doc);
        return [f[0] - el.defaultView.scrollX, f[1] - el.defaultView.scrollY];
      }
      const host = el.nodeType === 11 ? el.host : el;
      if (host && host.getBoundingClientRect) {
        const r = host.getBoundingClientRect();
        const f = frameOffset(host.ownerDocument, t.doc);
        return [r.left + f[0], r.top + f[1]];
      }
    }
    const w = t.win;
    return [a.ox - (w ? w.scrollX : 0), a.oy - (w ? w.scrollY : 0)];
  }

  placeOne(b, item) {
    const [x, y] = this.origin(b, item.anchor);
    const tr = `translate(${Math.round(x + (item.x || 0))}px, ${Math.round(y + (item.y || 0))}px)`;
    if (item.el.style.transform !== tr) item.el.style.transform = tr;
  }

  /** The mirror point under a pointer event, in the mirrored page's CSS pixels. */
  point(b, e) {
    const r = b.overlay.getBoundingClientRect();
    const s = b.t.scale || 1;
    return [(e.clientX - r.left) / s, (e.clientY - r.top) / s];
  }

  /** The anchor for a stroke starting at (x, y): the mirrored element there. */
  anchorAt(b, x, y) {
    const { t } = b;
    let hit = null;
    try { hit = t.doc && t.doc.elementFromPoint(x, y); } catch { hit = null; }
    for (let n = hit; n; n = n.parentNode || n.host) {
      const id = t.idOf && t.idOf.get(n);
      if (id !== undefined && n.nodeType === 1 && n.getBoundingClientRect) {
        const r = n.getBoundingClientRect();
        const w = t.win;
        return { id, epoch: t.epoch >>> 0, ox: clamp(r.left + (w ? w.scrollX : 0)), oy: clamp(r.top + (w ? w.scrollY : 0)), left: r.left, top: r.top };
      }
    }
    const w = t.win;
    return { id: 0, epoch: t.epoch >>> 0, ox: 0, oy: 0, left: -(w ? w.scrollX : 0), top: -(w ? w.scrollY : 0) };
  }

  // ----- the agent drawing -------------------------------------------------------------

  listen(b) {
    const o = b.overlay;
    let stroke = null;
    let lastLaser = 0;
    const flush = (done) => {
      if (!stroke) return;
      const points = stroke.pending.splice(0, MAX_POINTS_PER_FRAME);
      if (!points.length && !done) return;
      if (!points.length) points.push(stroke.points[stroke.points.length - 1]);
      this.out(b.tab, {
        kind: 'stroke', id: stroke.id, node: stroke.anchor.id, epoch: stroke.anchor.epoch, ox: stroke.anchor.ox, oy: stroke.anchor.oy,
        shape: stroke.shape, pinned: stroke.pinned, done: done && !stroke.pending.length, points,
      });
      if (stroke.pending.length) flush(done);
    };
    o.addEventListener('pointerdown', (e) => {
      if (this.tool === 'none' || this.refused.has(b.tab) || e.button !== 0) return;
      e.preventDefault();
      if (this.tool === 'laser') return;
      o.setPointerCapture(e.pointerId);
      const [x, y] = this.point(b, e);
      const anchor = this.anchorAt(b, x, y);
      const first = [clamp(x - anchor.left), clamp(y - anchor.top)];
      stroke = {
        id: (this.nextId = (this.nextId + 1) % 4294967295), anchor, shape: this.tool === 'arrow' ? 'arrow' : 'free',
        pinned: this.pinned, points: [first], pending: this.tool === 'arrow' ? [] : [first],
      };
      this.show(b, this.me(), null, this.colorOf(this.me()), {
        kind: 'stroke', id: stroke.id, node: anchor.id, epoch: anchor.epoch, ox: anchor.ox, oy: anchor.oy, shape: stroke.shape,
        pinned: stroke.pinned, done: false, points: [first],
      });
      if (stroke.shape === 'free') stroke.timer = setInterval(() => flush(false), STROKE_EVERY_MS);
    });
    // The laser goes out at most every LASER_EVERY_MS, and its last place always does.
    let laserNext = null;
    let laserTimer = 0;
    const sendLaser = () => {
      laserTimer = 0;
      if (!laserNext || this.tool !== 'laser') return;
      lastLaser = performance.now();
      this.out(b.tab, laserNext);
      laserNext = null;
    };
    o.addEventListener('pointermove', (e) => {
      if (this.tool === 'none' || this.refused.has(b.tab)) return;
      const [x, y] = this.point(b, e);
      if (this.tool === 'laser') {
        const w = b.t.win;
        const ink = { kind: 'laser', node: 0, epoch: b.t.epoch >>> 0, ox: 0, oy: 0, x: clamp(x + (w ? w.scrollX : 0)), y: clamp(y + (w ? w.scrollY : 0)) };
        this.show(b, this.me(), null, this.colorOf(this.me()), ink);
        laserNext = ink;
        const wait = LASER_EVERY_MS - (performance.now() - lastLaser);
        if (wait <= 0) sendLaser();
        else if (!laserTimer) laserTimer = setTimeout(sendLaser, wait);
        return;
      }
      if (!stroke) return;
      const p = [clamp(x - stroke.anchor.left), clamp(y - stroke.anchor.top)];
      const last = stroke.points[stroke.points.length - 1];
      if (stroke.shape === 'arrow') {
        stroke.points = [stroke.points[0], p];
        this.redraw(b, this.me(), stroke.id, stroke.points);
        return;
      }
      if (Math.abs(p[0] - last[0]) + Math.abs(p[1] - last[1]) < 2 || stroke.points.length >= 4000) return;
      stroke.points.push(p);
      stroke.pending.push(p);
      this.redraw(b, this.me(), stroke.id, stroke.points);
    });
    const end = (e) => {
      if (!stroke) return;
      if (e && o.hasPointerCapture && o.hasPointerCapture(e.pointerId)) o.releasePointerCapture(e.pointerId);
      clearInterval(stroke.timer);
      if (stroke.shape === 'arrow') stroke.pending = stroke.points.slice();
      flush(true);
      this.finish(b, this.me(), stroke.id, stroke.pinned);
      stroke = null;
    };
    o.addEventListener('pointerup', end);
    o.addEventListener('pointercancel', end);
  }

  out(tab, ink) {
    this.drewOn.add(tab);
    this.send({ type: 'draw', session_id: this.sessionId, tab, ink });
  }

  /** Takes away this agent's ink, here and on the visitor's tabs it drew on. */
  clear() {
    const me = this.me();
    for (const b of this.tabs.values()) this.clearAgent(b, me);
    for (const tab of this.drewOn) this.send({ type: 'draw', session_id: this.sessionId, tab, ink: { kind: 'clear' } });
    this.drewOn.clear();
  }

  refuse(tab) {
    this.refused.add(tab);
    const b = this.tabs.get(tab);
    if (b) b.overlay.dataset.tool = 'none';
  }

  // ----- showing inks ----------------------------------------------------------------

  /** Another agent's `draw` frame (server → agent). */
  receive(msg) {
    if (!msg || typeof msg.ink !== 'object' || !msg.ink) return;
    const t = this.view.tabs.get(String(msg.tab));
    const b = this.board(t);
    if (!b) return;
    if (msg.ink.kind === 'clear') { this.clearAgent(b, String(msg.agent_id)); return; }
    this.show(b, String(msg.agent_id), String(msg.name || ''), Number(msg.color) >>> 0, msg.ink);
    if (msg.ink.kind === 'stroke' && msg.ink.done) this.finish(b, String(msg.agent_id), msg.ink.id >>> 0, Boolean(msg.ink.pinned));
  }

  /** Shows (or extends) an ink on the tab's overlay. `name` null: this agent's own. */
  show(b, agent, name, color, ink) {
    const label = name === null ? 'You' : (name || 'Agent').slice(0, 64);
    const anchor = { id: ink.node >>> 0, epoch: ink.epoch >>> 0, ox: clamp(ink.ox), oy: clamp(ink.oy) };
    if (ink.kind === 'laser') {
      let l = b.lasers.get(agent);
      if (!l) {
        const el = node('div', { class: 'laser', 'data-testid': 'ink-laser', 'data-agent': agent });
        el.style.color = inkColor(color);
        const dot = node('div', { class: 'dot' });
        dot.style.background = inkColor(color);
        const tag = node('span', { class: 'tag' }, label);
        tag.style.background = inkColor(color);
        el.append(dot, tag);
        b.overlay.append(el);
        l = { el };
        b.lasers.set(agent, l);
      }
      Object.assign(l, { anchor, x: clamp(ink.x), y: clamp(ink.y) });
      l.el.classList.remove('off');
      clearTimeout(l.timer);
      l.timer = setTimeout(() => l.el.classList.add('off'), LASER_MS);
      this.size(b);
      this.placeOne(b, l);
      return;
    }
    if (ink.kind !== 'stroke' || !Array.isArray(ink.points)) return;
    const key = `${agent}\n${ink.id >>> 0}`;
    let s = b.inks.get(key);
    if (!s) {
      if (b.inks.size >= MAX_INKS) this.drop(b, b.inks.keys().next().value);
      const el = node('div', { class: 'ink', 'data-testid': 'ink', 'data-agent': agent, 'data-state': 'drawing' });
      const svg = node('svg', { width: '1', height: '1' });
      const halo = node('path', { stroke: '#fff', 'stroke-width': '8', 'stroke-opacity': '0.85' });
      const line = node('path', { stroke: inkColor(color), 'stroke-width': '4' });
      svg.append(halo, line);
      const tag = node('span', { class: 'tag' }, label);
      tag.style.background = inkColor(color);
      el.append(svg, tag);
      b.overlay.append(el);
      s = { key, agent, el, halo, line, tag, anchor, shape: ink.shape === 'arrow' ? 'arrow' : 'free', points: [] };
      b.inks.set(key, s);
    }
    for (const p of ink.points.slice(0, 256)) if (Array.isArray(p) && s.points.length < 4000) s.points.push([clamp(p[0]), clamp(p[1])]);
    this.render(s);
    this.size(b);
    this.placeOne(b, s);
  }

  redraw(b, agent, id, points) {
    const s = b.inks.get(`${agent}\n${id}`);
    if (!s) return;
    s.points = points.slice();
    this.render(s);
  }

  render(s) {
    const d = pathOf(s.shape, s.points);
    s.halo.setAttribute('d', d);
    s.line.setAttribute('d', d);
    const [tx, ty] = s.points[0] || [0, 0];
    s.tag.style.transform = `translate(${tx}px, ${ty}px)`;
  }

  /** The agent let go: the stroke fades unless pinned. */
  finish(b, agent, id, pinned) {
    const key = `${agent}\n${id}`;
    const s = b.inks.get(key);
    if (!s || s.el.dataset.state !== 'drawing') return;
    s.el.dataset.state = 'shown';
    s.el.dataset.pinned = String(pinned);
    if (pinned) return;
    s.timer = setTimeout(() => {
      s.el.dataset.state = 'fading';
      s.el.classList.add('fading');
      s.timer = setTimeout(() => this.drop(b, key), FADE_OUT_MS);
    }, FADE_MS);
  }

  drop(b, key) {
    const s = b.inks.get(key);
    if (!s) return;
    clearTimeout(s.timer);
    s.el.remove();
    b.inks.delete(key);
  }

  clearAgent(b, agent) {
    for (const s of [...b.inks.values()]) if (s.agent === agent) this.drop(b, s.key);
    const l = b.lasers.get(agent);
    if (l) { clearTimeout(l.timer); l.el.remove(); b.lasers.delete(agent); }
  }

  destroy() {
    for (const b of this.tabs.values()) {
      cancelAnimationFrame(b.frame);
      b.resize.disconnect();
      for (const s of b.inks.values()) clearTimeout(s.timer);
      for (const l of b.lasers.values()) clearTimeout(l.timer);
      b.overlay.remove();
    }
    this.tabs.clear();
  }
}
