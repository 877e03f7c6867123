// The replay of a recorded session (issue 18): the console's replay page
// (`#/sessions/{id}/replay`) and the downloaded player file both run this, on the live
// mirror's own renderer (mirror.js's MirrorView, handed in): the same script-less
// sandbox, the same re-sanitising of every record. A recording is hostile input too.
//
// A recording is a list of lines (server/src/store/recording.rs): `[t, "m", tab,
// records]`, a mirror frame as the agents received it at `t` (ms since the epoch), and
// `[t, "e", action, actor, result]`, an event of the session (authorize, control,
// redirect, join, end), and `[t, "n", agent, text]`, a note. Navigation is read from the frames (a snapshot's or an `u`
// record's URL).
//
// Playing applies frames in order as the clock passes them. Seeking rebuilds each tab
// from its last snapshot before the target (`S` record) and applies only what follows,
// so reaching a point costs the frames since that tab's last page load, not the whole
// session. "Skip idle" jumps over stretches without records longer than IDLE_MS.

/** A gap between records longer than this is skipped when "Skip idle" is on. */
const IDLE_MS = 3000;
/** How close to the next record a skip lands. */
const SKIP_LEAD_MS = 300;
const SPEEDS = [0.5, 1, 2, 4, 8];

/**
 * @typedef {{t: number, tab: string, data: unknown[], snapshot: boolean, url: string | null}} Frame
 * @typedef {{t: number, kind: string, label: string}} ReplayEvent
 * @typedef {{start: number, end: number, frames: Frame[], events: ReplayEvent[]}} Parsed
 * @typedef {{handle(tab: string, data: unknown[]): void, destroy(): void, setControl(tab: string | null): void,
 *   tabs: Map<string, {queue: unknown[] | null}>}} View
 * @typedef {new (stage: HTMLElement, tabsBar: HTMLElement, options: {frameDoc?: string | null}) => View} ViewClass
 * @typedef {{records?: unknown, session_id?: unknown}} Recording
 */

/** What the events of the audit trail are called on the timeline. */
const LABELS = /** @type {Record<string, string>} */ ({
  'session.authorized': 'The visitor allowed the session',
  'session.started': 'The session started',
  'session.joined': 'An agent joined',
  'session.ended': 'The session ended',
  'control.requested': 'Control requested',
  'control.granted': 'Control granted',
  'control.denied': 'Control denied',
  'control.revoked': 'The visitor took control back',
  'control.released': 'The agent released control',
  'control.ended': 'Control ended',
  redirect: 'The agent sent the visitor to another page',
});

/** `m:ss` (or `h:mm:ss`) of a duration in ms. */
export function clock(/** @type {number} */ ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** The URL a frame's records navigate to (a snapshot's page or an SPA URL), if any. */
function urlOf(/** @type {unknown[]} */ data) {
  let url = null;
  for (const r of data) {
    if (!Array.isArray(r)) continue;
    if (r[0] === 'S' && typeof r[2] === 'string') url = r[2];
    else if (r[0] === 'u' && typeof r[1] === 'string') url = r[1];
  }
  return url;
}

/** The path and query of a URL, for a label. */
function path(/** @type {string} */ url) {
  try {
    const u = new URL(url);
    return u.pathname + u.search;
  } catch {
    return url;
  }
}

/**
 * Reads a recording's lines, trusting none of them: anything that is not a line of a
 * known kind with the right types is left out.
 * @param {unknown} records
 * @returns {Parsed}
 */
export function parseRecording(records) {
  /** @type {Frame[]} */
  const frames = [];
  /** @type {ReplayEvent[]} */
  const events = [];
  const list = Array.isArray(records) ? records : [];
  /** @type {Map<string, string>} */
  const lastUrl = new Map();
  for (const line of list) {
    if (!Array.isArray(line) || typeof line[0] !== 'number' || !Number.isFinite(line[0])) continue;
    const t = line[0];
    if (line[1] === 'm' && typeof line[2] === 'string' && Array.isArray(line[3])) {
      const data = line[3];
      const snapshot = data.some((r) => Array.isArray(r) && r[0] === 'S');
      const url = urlOf(data);
      frames.push({ t, tab: line[2], data, snapshot, url });
      if (url && lastUrl.get(line[2]) !== url) {
        lastUrl.set(line[2], url);
        events.push({ t, kind: 'navigation', label: `Page: ${path(url)}` });
      }
    } else if (line[1] === 'e' && typeof line[2] === 'string') {
      const label = LABELS[line[2]];
      if (label) events.push({ t, kind: line[2], label });
    } else if (line[1] === 'n' && typeof line[3] === 'string') {
      // Shown as text (textContent), never as markup.
      events.push({ t, kind: 'note', label: `Note: ${line[3].slice(0, 500)}` });
    }
  }
  frames.sort((a, b) => a.t - b.t);
  events.sort((a, b) => a.t - b.t);
  const times = [...frames.map((f) => f.t), ...events.map((e) => e.t)];
  const start = times.length ? Math.min(...times) : 0;
  const end = times.length ? Math.max(...times) : 0;
  return { start, end, frames, events };
}

/** An element with attributes and children, built with DOM calls only. */
function h(/** @type {string} */ tag, /** @type {Record<string, string>} */ attrs = {}, /** @type {(Node | string)[]} */ ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v);
  }
  el.append(...children);
  return el;
}

/** The player: controls, timeline, events and the mirror stage, inside `root`. */
export class Replay {
  /**
   * @param {HTMLElement} root
   * @param {Recording} recording `{records}` as the server sends it
   * @param {{View: ViewClass, frameDoc?: string | null}} options
   */
  constructor(root, recording, { View, frameDoc = null }) {
    this.root = root;
    this.View = View;
    this.frameDoc = frameDoc;
    this.rec = parseRecording(recording.records);
    this.duration = Math.max(0, this.rec.end - this.rec.start);
    /** Position in ms from the start, and the index of the next frame to apply. */
    this.pos = 0;
    this.next = 0;
    this.speed = 1;
    this.playing = false;
    this.skipIdle = true;
    /** @type {number | null} */
    this.raf = null;
    this.last = 0;

    this.playButton = /** @type {HTMLButtonElement} */ (h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'replay-play', text: 'Play' }));
    this.seekInput = /** @type {HTMLInputElement} */ (h('input', { type: 'range', min: '0', max: String(this.duration), step: 'any', value: '0',
      'aria-label': 'Position in the recording', 'data-testid': 'replay-seek', class: 'replay-seek' }));
    this.time = h('span', { class: 'mono replay-time', 'data-testid': 'replay-time', 'aria-live': 'off' });
    const speed = /** @type {HTMLSelectElement} */ (h('select', { 'data-testid': 'replay-speed', 'aria-label': 'Speed' },
      ...SPEEDS.map((s) => h('option', { value: String(s), text: `${s}×` }))));
    speed.value = '1';
    const skip = /** @type {HTMLInputElement} */ (h('input', { type: 'checkbox', 'data-testid': 'replay-skip-idle' }));
    skip.checked = true;
    this.marks = h('div', { class: 'replay-marks', 'aria-hidden': 'true' });
    this.list = h('ol', { class: 'replay-events', 'data-testid': 'replay-events', 'aria-label': 'Events of the session' });
    const tabs = h('div', { class: 'mirror-tabs', 'data-testid': 'replay-tabs' });
    this.stage = h('div', { class: 'replay-stage mirror-stage', 'data-testid': 'replay-stage' });
    this.tabsBar = tabs;
    root.replaceChildren(
      h('div', { class: 'replay-bar' }, this.playButton, h('div', { class: 'replay-track' }, this.seekInput, this.marks), this.time,
        h('label', { class: 'replay-option' }, 'Speed ', speed),
        h('label', { class: 'replay-option' }, skip, ' Skip idle')),
      h('div', { class: 'replay-body' }, h('div', { class: 'replay-screen' }, tabs, this.stage), this.list));
    this.playButton.addEventListener('click', () => (this.playing ? this.pause() : this.play()));
    this.seekInput.addEventListener('input', () => this.seek(Number(this.seekInput.value)));
    speed.addEventListener('change', () => { this.speed = Number(speed.value) || 1; });
    skip.addEventListener('change', () => { this.skipIdle = skip.checked; });
    this.renderEvents();
    this.view = this.newView();
    this.seek(0);
  }

  newView() {
    const view = new this.View(this.stage, this.tabsBar, { frameDoc: this.frameDoc });
    view.setControl(null); // a replay is never controlled: the mirror stays inert
    return view;
  }

  renderEvents() {
    const d = this.duration || 1;
    this.marks.replaceChildren(...this.rec.events.map((e) => {
      const m = h('span', { class: 'replay-mark', 'data-kind': e.kind });
      m.style.left = `${((e.t - this.rec.start) / d) * 100}%`;
      return m;
    }));
    this.list.replaceChildren(...this.rec.events.map((e) => {
      const b = h('button', { type: 'button', class: 'linklike', 'data-testid': 'replay-event', 'data-kind': e.kind,
        'data-t': String(e.t - this.rec.start) }, h('span', { class: 'mono', text: clock(e.t - this.rec.start) }), ` ${e.label}`);
      b.addEventListener('click', () => this.seek(e.t - this.rec.start));
      return h('li', {}, b);
    }));
  }

  /** Applies the frames up to the position. */
  advance() {
    const until = this.rec.start + this.pos;
    const frames = this.rec.frames;
    while (this.next < frames.length && frames[this.next].t <= until) {
      const f = frames[this.next++];
      this.view.handle(f.tab, f.data);
    }
  }

  /**
   * Goes to `ms` from the start: each tab is rebuilt from its last snapshot up to
   * there and only what follows it is applied.
   * @param {number} ms
   */
  seek(ms) {
    this.pos = Math.max(0, Math.min(this.duration, Number(ms) || 0));
    const until = this.rec.start + this.pos;
    const frames = this.rec.frames;
    let end = 0;
    while (end < frames.length && frames[end].t <= until) end++;
    /** @type {Map<string, number>} each tab's last snapshot before the target */
    const from = new Map();
    for (let i = 0; i < end; i++) if (frames[i].snapshot) from.set(frames[i].tab, i);
    this.view.destroy();
    this.view = this.newView();
    for (let i = 0; i < end; i++) {
      const f = frames[i];
      if (i >= (from.get(f.tab) ?? 0)) this.view.handle(f.tab, f.data);
    }
    this.next = end;
    this.render();
  }

  play() {
    if (this.pos >= this.duration) this.seek(0);
    this.playing = true;
    this.last = performance.now();
    this.render();
    const step = (/** @type {number} */ now) => {
      if (!this.playing) return;
      this.pos = Math.min(this.duration, this.pos + (now - this.last) * this.speed);
      this.last = now;
      if (this.skipIdle) this.skipGap();
      this.advance();
      if (this.pos >= this.duration) this.pause();
      else this.raf = requestAnimationFrame(step);
      this.render();
    };
    this.raf = requestAnimationFrame(step);
  }

  pause() {
    this.playing = false;
    if (this.raf !== null) cancelAnimationFrame(this.raf);
    this.raf = null;
    this.render();
  }

  /** Jumps over a stretch without records longer than IDLE_MS. */
  skipGap() {
    const now = this.rec.start + this.pos;
    const prev = this.next > 0 ? this.rec.frames[this.next - 1].t : this.rec.start;
    const nextFrame = this.rec.frames[this.next];
    const nextEvent = this.rec.events.find((e) => e.t > now);
    const upcoming = Math.min(nextFrame ? nextFrame.t : Infinity, nextEvent ? nextEvent.t : Infinity);
    if (!Number.isFinite(upcoming)) return;
    if (upcoming - prev > IDLE_MS && upcoming - now > SKIP_LEAD_MS) {
      this.pos = Math.max(this.pos, upcoming - SKIP_LEAD_MS - this.rec.start);
    }
  }

  render() {
    this.seekInput.value = String(Math.round(this.pos));
    this.time.textContent = `${clock(this.pos)} / ${clock(this.duration)}`;
    this.playButton.textContent = this.playing ? 'Pause' : 'Play';
    this.playButton.setAttribute('aria-pressed', String(this.playing));
    this.root.dataset.position = String(Math.round(this.pos));
    this.root.dataset.playing = String(this.playing);
  }

  /** Resolves once every tab's mirror document exists and took the frames so far. */
  rendered() {
    return new Promise((resolve) => {
      const check = () => {
        if ([...this.view.tabs.values()].every((t) => t.queue === null)) resolve(undefined);
        else setTimeout(check, 10);
      };
      check();
    });
  }

  destroy() {
    this.pause();
    this.view.destroy();
    this.root.replaceChildren();
  }
}

/**
 * Starts a player in `root` (the downloaded file's entry point; the console builds a
 * Replay itself).
 * @param {HTMLElement} root
 * @param {Recording} recording
 * @param {{View: ViewClass, frameDoc?: string | null}} options
 */
export function startPlayer(root, recording, options) {
  const replay = new Replay(root, recording, options);
  /** @type {any} */ (window).covisitReplay = replay;
  return replay;
}
