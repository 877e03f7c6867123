// The agent's workspace during a live session (issue 16): the mirror-first layout, the
// session's tool bar (actions, pointer and drawing tools, view modes, panels), keyboard
// shortcuts, and the visitor's tabs (title, address, which one the visitor is in), of
// which the agent chooses the one to watch (`set_active_connection`, the seed's
// setActiveConnection). console.js calls in at a few points (setLayout, attach,
// sessionUpdate, mirrorChanged, onDraw, onError); the ink itself is draw.js's.
//
// Before a session the visitor view is as it always was ("browse"). Once this agent is
// in an active session ("session"), the session card's action buttons and the control
// buttons move into the bar (the same elements, so their listeners and test ids stay),
// the mirror fills the window and the rest sits in a side panel; when the session ends
// they move back.

import { DrawBoard } from './draw.js';

const $ = (id) => document.getElementById(id);
const TOOLS = ['laser', 'pen', 'arrow'];
const TOOL_NAMES = { laser: 'Laser pointer', pen: 'Drawing', arrow: 'Arrow' };

function isTyping(t) {
  return t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement
    || Boolean(t && t.isContentEditable);
}

function pathOf(url) {
  try {
    const u = new URL(url);
    return u.host + u.pathname + u.search;
  } catch {
    return url || '';
  }
}

export class Workspace {
  /**
   * `send(frame)`: to the server; `me()`: this agent ({id, name}); `current()`: the
   * session entry the view shows; `mirrors`: session id → {view, box, tabs, stage};
   * `announce(text)`: the console's live region.
   */
  constructor({ send, me, current, mirrors, announce }) {
    this.send = send;
    this.me = me;
    this.current = current;
    this.mirrors = mirrors;
    this.announce = announce;
    this.layout = 'browse';
    this.zoom = 'fit';
    this.tool = 'none';
    this.pinned = false;
    this.el = {
      body: document.body,
      workspace: document.querySelector('.workspace'),
      view: $('visitor-view'),
      toolbar: $('session-toolbar'),
      tbActions: $('tb-actions'),
      tbControl: $('tb-control'),
      actions: $('session-actions'),
      controlButtons: $('control-buttons'),
      panel: $('side-panel'),
      nav: $('visitor-nav'),
      note: $('tb-note'),
      listButton: $('toggle-list'),
      panelButton: $('toggle-panel'),
      fit: $('view-fit'),
      actual: $('view-actual'),
      fullscreen: $('view-fullscreen'),
      pin: $('pin-ink'),
      clear: $('clear-ink'),
      shortcuts: $('shortcuts'),
    };
    // Where the moved controls live in the browse layout.
    this.homes = [this.el.actions, this.el.controlButtons].map((n) => {
      const mark = document.createComment(`home of #${n.id}`);
      n.before(mark);
      return [n, mark];
    });
    for (const name of TOOLS) $(`tool-${name}`).addEventListener('click', () => this.setTool(this.tool === name ? 'none' : name));
    this.el.pin.addEventListener('click', () => this.setPinned(!this.pinned));
    this.el.clear.addEventListener('click', () => this.clearInk());
    this.el.fit.addEventListener('click', () => this.setZoom('fit'));
    this.el.actual.addEventListener('click', () => this.setZoom('actual'));
    this.el.fullscreen.addEventListener('click', () => this.toggleFullscreen());
    this.el.listButton.addEventListener('click', () => this.setList(this.el.workspace.dataset.list !== 'open'));
    this.el.panelButton.addEventListener('click', () => this.setPanel(this.el.view.dataset.panel === 'closed'));
    document.addEventListener('fullscreenchange', () => {
      const on = document.fullscreenElement === this.el.view;
      this.el.fullscreen.setAttribute('aria-pressed', String(on));
      this.el.fullscreen.textContent = on ? 'Exit full screen' : 'Full screen';
      this.relayout();
    });
    document.addEventListener('keydown', (e) => this.onKey(e));
  }

  // ----- layout ------------------------------------------------------------------------

  /** Mirror-first while this agent is in an active session (console.js, renderSession). */
  setLayout(session) {
    const layout = session ? 'session' : 'browse';
    if (layout === this.layout) return;
    this.layout = layout;
    const focused = document.activeElement;
    if (session) {
      this.el.tbActions.append(this.el.actions);
      this.el.tbControl.append(this.el.controlButtons);
      this.el.panel.setAttribute('role', 'complementary');
      this.el.panel.setAttribute('aria-label', 'Visitor and session details');
    } else {
      for (const [n, mark] of this.homes) mark.after(n);
      this.el.panel.removeAttribute('role');
      this.el.panel.removeAttribute('aria-label');
      this.setTool('none');
      if (document.fullscreenElement === this.el.view) document.exitFullscreen().catch(() => {});
    }
    // Moving an element out of the document and back drops its focus: give it back.
    if (focused && focused !== document.activeElement && focused.isConnected && !focused.closest('[hidden]')) focused.focus({ preventScroll: true });
    this.el.toolbar.hidden = !session;
    this.el.view.dataset.layout = layout;
    this.el.workspace.dataset.layout = layout;
    this.el.body.dataset.layout = layout;
    this.el.listButton.setAttribute('aria-expanded', String(this.el.workspace.dataset.list === 'open'));
    this.relayout();
  }

  setList(open) {
    this.el.workspace.dataset.list = open ? 'open' : 'closed';
    this.el.listButton.setAttribute('aria-expanded', String(open));
    this.relayout();
  }

  setPanel(open) {
    this.el.view.dataset.panel = open ? 'open' : 'closed';
    this.el.panelButton.setAttribute('aria-expanded', String(open));
    this.relayout();
  }

  setZoom(zoom) {
    this.zoom = zoom;
    this.el.fit.setAttribute('aria-pressed', String(zoom === 'fit'));
    this.el.actual.setAttribute('aria-pressed', String(zoom === 'actual'));
    for (const m of this.mirrors.values()) {
      m.stage.dataset.zoom = zoom;
      // A stage that scrolls can be scrolled by keyboard too.
      if (zoom === 'actual') {
        m.stage.tabIndex = 0;
        m.stage.setAttribute('aria-label', "The visitor's page at actual size; scroll to see all of it");
      } else {
        m.stage.removeAttribute('tabindex');
        m.stage.removeAttribute('aria-label');
      }
    }
    this.relayout();
  }

  toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else if (this.el.view.requestFullscreen) this.el.view.requestFullscreen().catch(() => this.note('Full screen is not available here.'));
  }

  /** The scale of a tab's mirror (MirrorView's `scaleOf`): fit shows the visitor's whole
   * viewport in the space there is, less the viewport's `borders` (never larger than
   * 1:1); actual is 1:1. */
  scaleOf(t, stage, borders = 0) {
    if (this.zoom === 'actual') return 1;
    const w = (stage.clientWidth || t.w) - borders;
    const h = stage.clientHeight - borders;
    return Math.max(0.1, Math.min(1, w / t.w, h > 0 ? h / t.h : 1));
  }

  relayout() {
    requestAnimationFrame(() => {
      for (const m of this.mirrors.values()) m.view.tabs.forEach((t) => m.view.layout(t));
    });
  }

  // ----- tools -------------------------------------------------------------------------

  setTool(tool) {
    this.tool = tool;
    for (const name of TOOLS) $(`tool-${name}`).setAttribute('aria-pressed', String(name === tool));
    for (const m of this.mirrors.values()) m.board?.setTool(tool);
    if (this.layout === 'session') this.announce(tool === 'none' ? 'Pointer tools off.' : `${TOOL_NAMES[tool]} on: the visitor sees it over their page.`);
  }

  setPinned(pinned) {
    this.pinned = pinned;
    this.el.pin.setAttribute('aria-pressed', String(pinned));
    for (const m of this.mirrors.values()) if (m.board) m.board.pinned = pinned;
  }

  clearInk() {
    const m = this.currentMirror();
    if (m?.board) m.board.clear();
  }

  currentMirror() {
    const entry = this.current();
    return entry ? this.mirrors.get(entry.session.id) : null;
  }

  note(text) {
    this.el.note.textContent = text;
  }

  onKey(e) {
    if (this.layout !== 'session' || e.ctrlKey || e.metaKey || e.altKey || isTyping(e.target)) return;
    if (e.target instanceof Element && e.target.closest('dialog[open]')) return;
    const k = e.key;
    const key = ['Escape', 'F', '?', '[', ']'].includes(k) ? k : k.toLowerCase();
    const run = {
      l: () => this.setTool(this.tool === 'laser' ? 'none' : 'laser'),
      d: () => this.setTool(this.tool === 'pen' ? 'none' : 'pen'),
      a: () => this.setTool(this.tool === 'arrow' ? 'none' : 'arrow'),
      p: () => this.setPinned(!this.pinned),
      x: () => this.clearInk(),
      f: () => this.setZoom('fit'),
      F: () => this.toggleFullscreen(),
      1: () => this.setZoom('actual'),
      '[': () => this.setList(this.el.workspace.dataset.list !== 'open'),
      ']': () => this.setPanel(this.el.view.dataset.panel === 'closed'),
      '?': () => this.el.shortcuts.togglePopover?.(),
      // Escape puts a tool away; without one it is left to whoever else wants it.
      Escape: this.tool !== 'none' ? () => this.setTool('none') : null,
    }[key];
    if (!run) return;
    e.preventDefault();
    run();
  }

  // ----- a session's mirror ------------------------------------------------------------

  /** A mirror was made for session `id` (console.js, syncMirror). */
  attach(id, m) {
    m.id = id;
    m.board = new DrawBoard({
      sessionId: id,
      view: m.view,
      send: (frame) => this.send(frame),
      me: () => this.me()?.id,
    });
    m.board.setTool(this.tool);
    m.board.pinned = this.pinned;
    m.stage.dataset.zoom = this.zoom;
    if (this.zoom === 'actual') this.setZoom('actual');
    m.tabsSig = '';
  }

  detach(m) {
    m.board?.destroy();
  }

  /** A batch reached one of the session's tab mirrors. */
  mirrorChanged(m, t) {
    m.board?.changed(t);
    // A tab this agent chose before (a reload) shows once its mirror is there.
    const want = m.entry?.watching?.[this.me()?.id];
    if (want && want === t.tab && !m.view.chosen && m.pendingChoice === undefined) {
      m.view.chosen = want;
      m.view.select(want);
    }
    this.renderTabs(m);
  }

  /** A session_update of a session with a mirror: colours, the tab list, the watched tab. */
  sessionUpdate(entry, m) {
    m.entry = entry;
    m.board?.setAgents(entry.session.agents);
    const me = this.me()?.id;
    const watching = entry.watching?.[me] ?? null;
    const open = (entry.connections || []).map((c) => c.uniqueConnectionId);
    if (m.view.chosen && open.length && !open.includes(m.view.chosen)) {
      // The tab this agent watched closed: follow the visitor again.
      this.choose(m, null, { quiet: true });
    } else if (watching !== m.view.chosen && watching && m.view.tabs.has(watching) && !m.pendingChoice) {
      // This agent chose a tab before (another console, a reload).
      m.view.chosen = watching;
      m.view.select(watching);
    }
    if (m.pendingChoice !== undefined && watching === m.pendingChoice) m.pendingChoice = undefined;
    this.renderTabs(m);
  }

  /** The agent watches `tab` (null: the tab the visitor is in). */
  choose(m, tab, { quiet = false } = {}) {
    m.view.chosen = tab;
    m.pendingChoice = tab;
    if (tab) m.view.select(tab);
    else {
      const focused = [...m.view.tabs.values()].find((t) => t.focused);
      if (focused) m.view.select(focused.tab);
    }
    if (!quiet || tab) this.send({ type: 'set_active_connection', session_id: m.id, uniqueConnectionId: tab });
    this.renderTabs(m);
    const t = tab && m.view.tabs.get(tab);
    const control = m.view.control;
    if (t) this.announce(`Watching ${this.titleOf(t) || 'the tab'}${control && control !== tab ? '. Your control stays in the other tab.' : '.'}`);
    else if (!quiet) this.announce("Following the visitor's tab.");
  }

  titleOf(t) {
    let title = '';
    try { title = (t.doc && t.doc.title) || ''; } catch { title = ''; }
    return title.replace(/\s+/g, ' ').trim().slice(0, 120);
  }

  /** The tab strip: every open tab of the visitor, with title, address, and marks. */
  renderTabs(m) {
    const bar = m.tabs;
    if (!bar) return;
    const entry = m.entry;
    const conns = entry?.connections || [];
    const ids = conns.length ? conns.map((c) => c.uniqueConnectionId) : [...m.view.tabs.keys()];
    const rows = ids.map((id, i) => {
      const t = m.view.tabs.get(id);
      const c = conns.find((x) => x.uniqueConnectionId === id);
      return {
        id,
        n: i + 1,
        title: (t && this.titleOf(t)) || '',
        url: (t && t.url) || c?.currentUrl || '',
        focused: t ? Boolean(t.focused) : Boolean(c?.hasFocus),
        selected: m.view.selected === id,
        control: m.view.control === id,
        ready: Boolean(t),
      };
    });
    const sig = JSON.stringify([rows, m.view.chosen]);
    if (sig === m.tabsSig) return;
    m.tabsSig = sig;
    const buttons = rows.map((r) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'mirror-tab';
      b.dataset.testid = 'mirror-tab';
      b.dataset.tab = r.id;
      b.dataset.focused = String(r.focused);
      b.setAttribute('aria-pressed', String(r.selected));
      b.disabled = !r.ready;
      const title = document.createElement('span');
      title.className = 'tab-title';
      title.textContent = r.title || `Tab ${r.n}`;
      const url = document.createElement('span');
      url.className = 'tab-url';
      url.textContent = pathOf(r.url) || 'Loading…';
      const marks = document.createElement('span');
      marks.className = 'tab-marks';
      if (r.focused) marks.append(Object.assign(document.createElement('span'), { className: 'tab-mark', textContent: 'Visitor is here' }));
      if (r.control) marks.append(Object.assign(document.createElement('span'), { className: 'tab-mark control', textContent: 'You control this tab' }));
      b.append(title, url, marks);
      b.title = `${r.title || `Tab ${r.n}`} — ${r.url}`;
      b.addEventListener('click', () => this.choose(m, r.id));
      return b;
    });
    const follow = document.createElement('button');
    follow.type = 'button';
    follow.className = 'btn btn-small btn-quiet mirror-follow';
    follow.dataset.testid = 'follow-visitor';
    follow.setAttribute('aria-pressed', String(!m.view.chosen));
    follow.textContent = 'Follow the visitor';
    follow.title = 'Show whichever tab the visitor is in';
    follow.addEventListener('click', () => this.choose(m, null));
    // Keep focus on the same tab button across re-renders.
    const had = bar.contains(document.activeElement) ? document.activeElement.dataset.tab || document.activeElement.dataset.testid : null;
    bar.replaceChildren(...buttons, ...(rows.length > 1 ? [follow] : []));
    if (had) [...bar.children].find((x) => x.dataset.tab === had || x.dataset.testid === had)?.focus();
    bar.hidden = rows.length === 0;
  }

  /** A `draw` frame of another agent (server → agent). */
  onDraw(msg) {
    this.mirrors.get(msg.session_id)?.board?.receive(msg);
  }

  /** An error frame that answered one of our frames: whether the workspace handled it. */
  onError(action, msg) {
    if (action?.type !== 'draw') return false;
    const m = this.mirrors.get(action.session_id);
    if (msg.code === 'permission_denied' && m?.board && action.tab) {
      m.board.refuse(action.tab);
      this.note("This page of the visitor's site does not allow pointing or drawing (allowAgentDrawing is off).");
      return true;
    }
    return false;
  }
}
