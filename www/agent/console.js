// covisit agent console: one ES module, no framework, no build step.
//
// The agent signs in with email and password (POST /api/v1/auth/sign_in): the server
// sets an HttpOnly session cookie this script never sees, and hands back a CSRF token
// that every REST write carries. It speaks the agent side of the wire protocol
// (docs/PROTOCOL.md, defined once in src/core/protocol.rs) over /ws/agent on this
// origin (the cookie authenticates the socket), and uses the REST API (/api/v1) for
// what the socket does not carry: a visitor or session opened by link, a visitor's
// session history, and the admin pages (admin.js: users, keys, settings, audit log).
//
// The page's markup (index.html) holds every element; this module fills them in and
// toggles `hidden`, so nothing focusable is recreated under the agent's fingers.

import { MirrorView } from './mirror.js';
import { Admin } from './admin.js';
import { Workspace } from './workspace.js';
import { CallPanel } from './call.js';
import { Replay } from './replay.js';

const PROTOCOL_VERSION = 1;
/** Without a snapshot this long after a session is live, ask the visitor for one. */
const RESYNC_AFTER_MS = 1500;
const HEARTBEAT_MS = 25_000;
const MAX_BACKOFF_MS = 15_000;

const $ = (id) => document.getElementById(id);

const el = {
  accountBar: $('account-bar'),
  connStatus: $('conn-status'),
  connText: $('conn-text'),
  agentName: $('agent-name'),
  signout: $('signout'),
  error: $('console-error'),
  errorCode: $('console-error-code'),
  errorMessage: $('console-error-message'),
  errorDismiss: $('console-error-dismiss'),
  announcer: $('announcer'),
  main: $('main'),
  signinView: $('signin-view'),
  signinForm: $('signin-form'),
  signinEmail: $('signin-email'),
  signinPassword: $('signin-password'),
  passwordView: $('password-view'),
  passwordForm: $('password-form'),
  passwordTitle: $('password-title'),
  passwordIntro: $('password-intro'),
  passwordInput: $('password-input'),
  passwordRepeat: $('password-repeat'),
  passwordSubmit: $('password-submit'),
  passwordProblem: $('password-problem'),
  adminNav: $('admin-nav'),
  adminView: $('admin-view'),
  replayView: $('replay-view'),
  replayTitle: $('replay-title'),
  replayStatus: $('replay-status'),
  replayRoot: $('replay-root'),
  personalLink: $('personal-link'),
  signinSubmit: $('signin-submit'),
  signinProblem: $('signin-problem'),
  appView: $('app-view'),
  search: $('visitor-search'),
  visitorCount: $('visitor-count'),
  visitorResults: $('visitor-results'),
  visitorList: $('visitor-list'),
  visitorEmpty: $('visitor-empty'),
  detail: $('detail'),
  placeholderView: $('placeholder-view'),
  placeholderTitle: $('detail-title'),
  placeholderText: $('placeholder-text'),
  visitorView: $('visitor-view'),
  visitorTitle: $('visitor-title'),
  visitorNickname: $('visitor-nickname'),
  visitorSub: $('visitor-sub'),
  visitorBadges: $('visitor-badges'),
  visitorFacts: $('visitor-facts'),
  sessionNone: $('session-none'),
  sessionPending: $('session-pending'),
  sessionInfo: $('session-info'),
  sessionStatus: $('session-status'),
  sessionExplain: $('session-explain'),
  sessionEndedWhy: $('session-ended-why'),
  sessionDisconnectType: $('session-disconnect-type'),
  agentPrompt: $('agent-prompt'),
  agentPromptText: $('agent-prompt-text'),
  sessionFacts: $('session-facts'),
  requestSession: $('request-session'),
  joinSession: $('join-session'),
  endSession: $('end-session'),
  leaveSession: $('leave-session'),
  requestHint: $('request-hint'),
  controlSection: $('control-section'),
  controlStatus: $('control-status'),
  requestControl: $('request-control'),
  releaseControl: $('release-control'),
  redirectForm: $('redirect-form'),
  redirectUrl: $('redirect-url'),
  controlNote: $('control-note'),
  notesSection: $('notes-section'),
  notesList: $('notes-list'),
  notesEmpty: $('notes-empty'),
  noteForm: $('note-form'),
  noteInput: $('note-input'),
  noteSubmit: $('note-submit'),
  historyEmpty: $('history-empty'),
  historyTable: $('history-table'),
  historyBody: $('history-body'),
  mirrorSection: $('mirror-section'),
  mirrorSessions: $('mirror-sessions'),
  mirrorStatus: $('mirror-status'),
  consoleSection: $('console-section'),
  consoleLines: $('console-lines'),
  consoleEmpty: $('console-empty'),
  ratingSection: $('rating-section'),
  ratingForm: $('rating-form'),
  ratingComment: $('rating-comment'),
  ratingSubmit: $('rating-submit'),
  ratingNote: $('rating-note'),
};

/** The most console lines kept per session (the oldest go first). */
const MAX_CONSOLE_LINES = 500;

const state = {
  /** The signed-in user (/api/v1/me) and the CSRF token REST writes carry. */
  me: null,
  csrf: null,
  ws: null,
  /** The current socket got its welcome. */
  welcomed: false,
  /** Some socket of this sign-in got a welcome: closes are then retried. */
  everWelcomed: false,
  signingOut: false,
  backoff: 1000,
  reconnectTimer: 0,
  heartbeatTimer: 0,
  agent: null,
  /** Online visitors, short_id → Visitor. */
  visitors: new Map(),
  /** The pages of the hello's `visitors` received so far (the last has no `more`). */
  helloPages: [],
  /** Every visitor seen, online or not (also from REST), short_id → Visitor. */
  known: new Map(),
  /** session_id → {session, status, controlling_agent_id, communications, live} */
  sessions: new Map(),
  /** short_id → Session[] from REST (history). */
  history: new Map(),
  route: { kind: 'home' },
  /** The replay shown (`#/sessions/{id}/replay`), or null. */
  replay: null,
  /** short_id whose request_session has not yet produced a session_update. */
  pendingRequest: null,
  /** session ids where this agent asked for control and the visitor was not done. */
  controlRequested: new Set(),
  /** short_id → 'lookup_code' | 'search': how the agent found the visitor. */
  foundBy: new Map(),
  /** The last action sent, to attach an error frame to what caused it. */
  lastAction: null,
  /** Which route the REST loaders are working for (a later route wins). */
  loadToken: 0,
  welcomeAt: 0,
  /** Visitor ids whose REST lookup said 404. */
  missing: new Set(),
  /** session_id → {view, box, askedAt}: the live mirror of each session this agent is in. */
  mirrors: new Map(),
  /** The server's answer to the search box: which visitors match `q` (the server's one
   *  search rule, the same as REST's). Null until the first answer. */
  searchResult: null,
  /** session_id → the visitor page's console lines this agent was sent (`console`). */
  consoleLines: new Map(),
};

// ----- small helpers -----------------------------------------------------------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'href'
      || k === 'title' || k === 'id' || k === 'datetime' || k === 'scope') node.setAttribute(k, v === true ? '' : String(v));
    else node[k] = v;
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function show(node, visible) {
  node.hidden = !visible;
}

function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function timeEl(iso) {
  return h('time', { datetime: iso || undefined, title: iso || undefined, text: fmtTime(iso) });
}

/** `MM:SS`, `HH:MM:SS` from one hour: the server's `formatted_length`. */
function formatLength(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const two = (n) => String(n).padStart(2, '0');
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  return hh > 0 ? `${two(hh)}:${two(mm)}:${two(ss)}` : `${two(mm)}:${two(ss)}`;
}

function shortUrl(url) {
  if (!url) return null;
  try {
    const u = new URL(url);
    return (u.host + u.pathname + u.search).replace(/\/$/, '') || url;
  } catch {
    return url;
  }
}

let announceTimer = 0;
function announce(text) {
  clearTimeout(announceTimer);
  el.announcer.textContent = '';
  announceTimer = setTimeout(() => { el.announcer.textContent = text; }, 60);
}

function isLookupQuery(q) {
  return /^\d{4}$/.test(q);
}

/** What to call a visitor: the nickname or name when there is one (the server's
 * nickname falls back to the id), else "Visitor <id>". */
function visitorLabel(v) {
  const id = v?.short_id;
  const named = [v?.nickname, v?.name].find((x) => x && x !== id);
  return named || (id ? `Visitor ${id}` : 'Visitor');
}

function deviceText(v) {
  const parts = [v.browser_name, v.device_name].filter(Boolean);
  let text = parts.join(' on ');
  if (v.device_type) text = text ? `${text} (${v.device_type})` : v.device_type;
  return text || 'Unknown device';
}

const DISCONNECT_TEXT = {
  client: 'the visitor ended or declined it',
  peer: 'an agent ended or cancelled it',
  system: 'the server ended it',
  'transport.failure': "the visitor's connection was lost",
  timeout: 'no answer in time, or the visitor did not come back',
};

const SOURCE_TEXT = {
  'lookup code': 'Lookup code',
  search: 'Search',
  api: 'API',
  'agent request': 'Visitor asked for help',
  'personal link': 'Personal link',
  integration: 'Integration',
};

// ----- errors --------------------------------------------------------------------------

function showError(code, message) {
  el.errorCode.textContent = code || 'error';
  el.errorMessage.textContent = message || '';
  show(el.error, true);
}

function clearError() {
  show(el.error, false);
  el.errorCode.textContent = '';
  el.errorMessage.textContent = '';
}

el.errorDismiss.addEventListener('click', () => {
  clearError();
  el.main.focus();
});

// ----- connection ------------------------------------------------------------------------

function setConn(kind, text) {
  el.connStatus.dataset.state = kind;
  el.connText.textContent = text;
  syncControls();
}

function send(msg) {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || (!state.welcomed && msg.type !== 'hello')) {
    showError('not_connected', 'Not connected to the server right now; the console reconnects by itself. Try again in a moment.');
    return false;
  }
  if (msg.type !== 'hello' && msg.type !== 'heartbeat') {
    state.lastAction = { type: msg.type, session_id: msg.session_id, short_id: msg.short_id, tab: msg.tab };
  }
  ws.send(JSON.stringify(msg));
  return true;
}

/** Sends a frame the agent did not ask for by a click (search, watch): no error shown
 *  when offline; the console sends it again after reconnecting. */
function sendQuiet(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN && state.welcomed) state.ws.send(JSON.stringify(msg));
}

/** Asks the server which online visitors match the search box; its answer
 *  (`search_result`) is what the list shows, and those visitors' updates keep coming. */
let searchTimer = 0;
function searchSoon(delay = 120) {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    const q = el.search.value.trim();
    if (q) sendQuiet({ type: 'search', q });
  }, delay);
}

/** Tells the server this console shows `shortId`, so that its `visitor_update`s come
 *  here even when it is not in the list of online visitors. */
function watchVisitor(shortId) {
  if (shortId) sendQuiet({ type: 'watch', short_id: shortId });
}

function connect() {
  clearTimeout(state.reconnectTimer);
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  let ws;
  try {
    ws = new WebSocket(`${scheme}//${location.host}/ws/agent`);
  } catch (e) {
    failBeforeWelcome(null, e);
    return;
  }
  state.ws = ws;
  state.welcomed = false;
  let helloError = null;
  setConn('connecting', state.everWelcomed ? 'Reconnecting…' : 'Connecting…');
  ws.addEventListener('open', () => {
    if (ws !== state.ws) return;
    // The session cookie (sent with the upgrade) says who this is.
    ws.send(JSON.stringify({ type: 'hello', protocol_version: PROTOCOL_VERSION }));
  });
  ws.addEventListener('message', (ev) => {
    if (ws !== state.ws) return;
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (!state.welcomed && msg.type === 'error') helloError = msg;
    handle(msg);
  });
  ws.addEventListener('close', (ev) => {
    if (ws !== state.ws) return;
    state.ws = null;
    const wasWelcomed = state.welcomed;
    state.welcomed = false;
    clearInterval(state.heartbeatTimer);
    if (state.signingOut) return;
    if (!wasWelcomed && (helloError || ev.code === 1008)) {
      failBeforeWelcome(helloError, null);
      return;
    }
    if (!state.everWelcomed) {
      failBeforeWelcome(null, null);
      return;
    }
    const wait = state.backoff;
    state.backoff = Math.min(state.backoff * 2, MAX_BACKOFF_MS);
    setConn('reconnecting', `Connection lost; retrying in ${Math.round(wait / 1000)} s`);
    announce('Connection to the server lost. Reconnecting.');
    state.reconnectTimer = setTimeout(connect, wait);
  });
}

/** The socket closed before the welcome: back to the sign-in form with the reason. */
function failBeforeWelcome(err, exception) {
  const code = err?.code || 'connection_failed';
  const message = err?.message
    || (exception ? String(exception.message || exception) : 'Could not connect to the covisit server. Check that it is running, then sign in again.');
  showError(code, message);
  showSignin();
  setConn('offline', 'Offline');
  el.signinEmail.focus();
}

function onWelcome(msg) {
  state.agent = msg.agent;
  state.welcomed = true;
  state.everWelcomed = true;
  state.backoff = 1000;
  el.agentName.textContent = msg.agent?.name || state.me?.user.name || '';
  setConn('online', 'Connected');
  clearInterval(state.heartbeatTimer);
  state.heartbeatTimer = setInterval(() => {
    if (state.ws && state.ws.readyState === WebSocket.OPEN && state.welcomed) {
      state.ws.send(JSON.stringify({ type: 'heartbeat' }));
    }
  }, HEARTBEAT_MS);
  state.welcomeAt = Date.now();
  const firstShow = el.appView.hidden;
  if (!el.error.hidden && ['not_connected', 'connection_failed'].includes(el.errorCode.textContent)) clearError();
  showApp();
  if (firstShow) {
    renderAll();
    loadRoute();
    if (state.route.kind === 'home') el.search.focus();
  } else {
    announce('Reconnected to the server.');
    renderAll();
    // The server forgot what this console looked at: tell it again.
    watchVisitor(currentVisitorId());
    searchSoon(0);
    // Live sessions the server did not report again ended while this console was away
    // (a server restart closes them): ask REST how they ended.
    setTimeout(refreshStaleSessions, 1500);
  }
}

async function refreshStaleSessions() {
  for (const [id, e] of state.sessions) {
    if (!isLive(e) || e.updatedAt >= state.welcomeAt) continue;
    try {
      const fresh = await api(`/api/v1/sessions/${encodeURIComponent(id)}`);
      const current = state.sessions.get(id);
      if (!current || current.updatedAt >= state.welcomeAt) continue;
      const { status, ...session } = fresh;
      let comms = current.communications;
      try {
        const c = await api(`/api/v1/sessions/${encodeURIComponent(id)}/communications`);
        if (Array.isArray(c)) comms = c;
      } catch {
        // keep what we had
      }
      state.sessions.set(id, { ...current, session, status, communications: comms, updatedAt: Date.now() });
    } catch {
      // leave it; the next reconnect tries again
    }
  }
  renderAll();
  renderHistory();
}

// ----- incoming messages -----------------------------------------------------------------

function handle(msg) {
  switch (msg.type) {
    case 'welcome':
      state.helloPages = [];
      onWelcome(msg);
      break;
    case 'visitors':
      // The list comes in pages: shown once the last is in.
      state.helloPages.push(...(msg.visitors || []));
      if (!msg.more) onVisitors(state.helloPages.splice(0));
      break;
    case 'visitor_update':
      if (msg.visitor) onVisitor(msg.visitor);
      break;
    case 'visitor_updates':
      for (const v of msg.visitors || []) onVisitor(v, false);
      renderList();
      break;
    case 'search_result':
      onSearchResult(msg);
      break;
    case 'session_update':
      onSessionUpdate(msg);
      break;
    case 'heartbeat_ack':
      break;
    case 'mirror':
      onMirror(msg);
      break;
    case 'draw':
      workspace.onDraw(msg);
      break;
    case 'call':
      calls.onFrame(msg);
      break;
    case 'console':
      onConsole(msg);
      break;
    case 'remote_result':
      if (!msg.ok) setControlNote(`The visitor's page did not apply that ${msg.kind}: ${REFUSAL_TEXT[msg.reason] || msg.reason || 'refused'}.`);
      break;
    case 'error':
      onErrorFrame(msg);
      break;
    default:
      // A newer server may send types this console does not know: ignore them.
      break;
  }
}

function onVisitors(list) {
  const online = new Set();
  for (const v of list) {
    online.add(v.short_id);
    state.known.set(v.short_id, v);
    state.missing.delete(v.short_id);
  }
  // Those that were online before the (re)connect and are not in the list are gone.
  for (const [id, v] of state.visitors) {
    if (!online.has(id)) state.known.set(id, { ...v, is_online: false, is_in_session: false });
  }
  state.visitors = new Map(list.map((v) => [v.short_id, v]));
  renderList();
  renderView();
}

function onSearchResult(msg) {
  if (msg.q !== el.search.value.trim()) return; // an answer to an older query
  const found = Array.isArray(msg.visitors) ? msg.visitors : [];
  for (const v of found) {
    state.known.set(v.short_id, v);
    state.missing.delete(v.short_id);
    if (v.is_online) state.visitors.set(v.short_id, v);
  }
  state.searchResult = { q: msg.q, ids: new Set(found.map((v) => v.short_id)) };
  renderList();
  const n = el.visitorList.children.length;
  el.visitorResults.textContent = `${n} visitor${n === 1 ? '' : 's'} found`;
}

/** A visitor's latest state; `list: false` when the caller repaints the list once for several. */
function onVisitor(v, list = true) {
  const before = state.known.get(v.short_id);
  // A visitor that just came online may match the query on screen: ask again.
  if (v.is_online && !before?.is_online && el.search.value.trim() && !state.searchResult?.ids.has(v.short_id)) {
    searchSoon(300);
  }
  state.known.set(v.short_id, v);
  state.missing.delete(v.short_id);
  if (v.is_online) state.visitors.set(v.short_id, v);
  else state.visitors.delete(v.short_id);
  if (v.is_waiting_for_call && !before?.is_waiting_for_call) {
    announce(`${visitorLabel(v)} is asking for help.`);
  }
  if (state.pendingRequest === v.short_id && !v.is_online) state.pendingRequest = null;
  if (list) renderList();
  if (currentVisitorId() === v.short_id) {
    renderView();
    // Another agent's session started or ended: the history (and Join) come from REST.
    if (Boolean(before?.is_in_session) !== Boolean(v.is_in_session)) loadHistory(v.short_id, state.loadToken);
  }
}

function onSessionUpdate(msg) {
  const s = msg.session;
  if (!s) return;
  const prev = state.sessions.get(s.id);
  const entry = {
    session: s,
    status: msg.status,
    controlling_agent_id: msg.controlling_agent_id ?? null,
    communications: msg.communications || [],
    control: msg.control || null,
    agentPrompt: msg.agent_prompt || null,
    connections: Array.isArray(msg.connections) ? msg.connections : [],
    watching: msg.watching && typeof msg.watching === 'object' ? msg.watching : {},
    call: msg.call || null,
    live: true,
    updatedAt: Date.now(),
  };
  state.sessions.set(s.id, entry);
  if (state.pendingRequest === s.visitor_id) state.pendingRequest = null;
  const me = state.agent?.id;
  if (entry.controlling_agent_id === me || entry.status !== 'active') {
    state.controlRequested.delete(s.id);
  }
  // Keep the history table in step.
  const hist = state.history.get(s.visitor_id);
  if (hist) {
    const i = hist.findIndex((x) => x.id === s.id);
    const row = { ...s, status: entry.status };
    if (i >= 0) hist[i] = row;
    else hist.unshift(row);
  }
  const v = state.known.get(s.visitor_id);
  const who = visitorLabel(v || { short_id: s.visitor_id });
  if (prev?.status !== entry.status) {
    if (entry.status === 'ended') {
      const dt = disconnectTypeOf(entry);
      announce(`Session with ${who} ended${dt ? ` (${dt})` : ''}.`);
    } else if (entry.status === 'active') {
      announce(`Session with ${who} is active.`);
    } else if (entry.status === 'authorizing') {
      announce(`Waiting for ${who} to allow the session.`);
    }
  }
  // A session this agent did not ask for from here (a personal link): open it when
  // the agent is not looking at anyone else.
  if (!prev && s.source === 'personal link' && state.route.kind === 'home' && isLive(entry)) {
    announce(`${who} came through your personal link.`);
    location.hash = `#/visitors/${encodeURIComponent(s.visitor_id)}`;
  }
  const prevCtl = prev?.controlling_agent_id ?? null;
  if (prevCtl !== entry.controlling_agent_id && prev) {
    if (entry.controlling_agent_id === me) announce(`You now control ${who}'s page.`);
    else if (prevCtl === me) announce(`You no longer control ${who}'s page.`);
  }
  syncMirror(entry);
  if (currentVisitorId() === s.visitor_id || (state.route.kind === 'session' && state.route.id === s.id)) {
    renderView();
  }
  renderList();
}

// ----- co-browsing: the mirror of the visitor's page -----------------------------------

// Keyed by exactly the reasons of RemoteRefusal (src/core/protocol.rs; tests/facts.rs checks).
const REFUSAL_TEXT = {
  masked_target: 'that element is masked',
  permission_denied: 'the site does not allow it',
  control_not_granted: 'control is not granted',
  not_editable: 'that element cannot be typed into',
  unknown_node: 'the element is gone',
  not_ready: 'the page was still being captured',
  cross_origin: 'only pages of the same site can be opened',
  session_not_active: 'the session is not active in that tab',
  unknown_action: "the visitor's browser does not know this action",
  failed: 'it failed on the page',
};

/** The mirror of a live session this agent is in: created, kept in step, or dropped. */
function syncMirror(entry) {
  const id = entry.session.id;
  const live = entry.status === 'active' && amIn(entry);
  let m = state.mirrors.get(id);
  if (!live) {
    if (m) {
      workspace.detach(m);
      m.view.destroy();
      m.box.remove();
      state.mirrors.delete(id);
    }
    return;
  }
  if (!m) {
    const tabs = h('div', { class: 'mirror-tabs', 'data-testid': 'mirror-tabs', role: 'group', 'aria-label': "Visitor's tabs" });
    const stage = h('div', { class: 'mirror-stage', 'data-testid': 'mirror-stage' });
    const box = h('div', { class: 'mirror-session', 'data-session': id }, tabs, stage);
    el.mirrorSessions.append(box);
    // The visitor's tabs are listed by the workspace (title, address, the one the visitor
    // is in, the one to watch), so the view's own tab bar stays out of the page.
    const view = new MirrorView(stage, document.createElement('div'), {
      sessionId: id,
      onAction: (tab, action) => send({ type: 'remote_action', session_id: id, tab, action }),
      onChange: (t) => { renderMirrorStatus(); workspace.mirrorChanged(m, t); },
      scaleOf: (t, borders) => workspace.scaleOf(t, stage, borders),
    });
    m = { view, box, tabs, stage, askedAt: 0 };
    state.mirrors.set(id, m);
    workspace.attach(id, m);
    setTimeout(() => askForSnapshot(id), RESYNC_AFTER_MS);
  }
  m.view.setAssetTabs((entry.connections || []).filter((t) => t.assetsProxyConfigured).map((t) => t.uniqueConnectionId));
  const c = entry.control;
  m.view.setControl(c && c.state === 'granted' && c.agent_id === state.agent?.id ? c.tab : null);
  workspace.sessionUpdate(entry, m);
}

/** Asks the visitor's tabs for a fresh snapshot when this console has none to show. */
function askForSnapshot(id, force) {
  const m = state.mirrors.get(id);
  if (!m || (!force && m.view.hasSnapshot()) || Date.now() - m.askedAt < 3000) return;
  m.askedAt = Date.now();
  if (state.ws && state.welcomed) state.ws.send(JSON.stringify({ type: 'mirror_resync', session_id: id }));
}

function onMirror(msg) {
  const m = state.mirrors.get(msg.session_id);
  if (!m) return;
  m.view.handle(String(msg.tab), msg.data);
  if (m.view.missingStart()) askForSnapshot(msg.session_id, true);
}

function renderMirrorStatus() {
  const entry = viewEntry();
  const m = entry && state.mirrors.get(entry.session.id);
  const t = m && m.view.tabs.get(m.view.selected);
  el.mirrorStatus.textContent = !t ? "Waiting for the visitor's page…"
    : `${t.ready ? 'Live' : 'Loading'} · ${t.url}${m.view.tabs.size > 1 ? ` · ${m.view.tabs.size} tabs` : ''}${m.view.control === t.tab ? ' · you control this tab' : ''}`;
}

/** The remote console: lines of the visitor's page (read-only; shown as text only). */
function onConsole(msg) {
  const lines = state.consoleLines.get(msg.session_id) || [];
  for (const e of msg.entries || []) lines.push({ ...e, tab: msg.tab });
  if (lines.length > MAX_CONSOLE_LINES) lines.splice(0, lines.length - MAX_CONSOLE_LINES);
  state.consoleLines.set(msg.session_id, lines);
  const id = currentVisitorId();
  const entry = id ? sessionForView(id) : null;
  if (entry && entry.session.id === msg.session_id) renderConsole(entry);
}

function renderConsole(entry) {
  const lines = state.consoleLines.get(entry.session.id) || [];
  show(el.consoleSection, lines.length > 0);
  el.consoleLines.replaceChildren(...lines.map((l) => h('li', { class: `console-line console-${l.kind}`, 'data-kind': l.kind },
    h('span', { class: 'console-kind', text: l.kind }), ' ',
    h('span', { class: 'console-text', text: l.text }))));
  show(el.consoleEmpty, lines.length === 0);
}

function onErrorFrame(msg) {
  const action = state.lastAction;
  state.lastAction = null;
  if (workspace.onError(action, msg)) return;
  // The agent protocol does not say when a visitor declines control; these two errors
  // are how the console finds out where a control request stands.
  if (msg.code === 'wrong_control_state' && action?.type === 'request_control'
    && state.controlRequested.has(action.session_id)) {
    setControlNote('Still waiting for the visitor to answer the control request.');
    return;
  }
  if (msg.code === 'wrong_control_state' && action?.type === 'release_control') {
    setControlNote('Nothing to withdraw: the visitor had already answered the control request.');
    renderView();
    return;
  }
  if (action?.type === 'request_session' && state.pendingRequest === action.short_id) {
    state.pendingRequest = null;
  }
  if (action?.type === 'request_control' && msg.code !== 'wrong_control_state') {
    state.controlRequested.delete(action.session_id);
  }
  const what = action ? ` (while ${action.type.replace(/_/g, ' ')})` : '';
  showError(msg.code, `${msg.message || 'The server refused that.'}${what}`);
  renderView();
}

// ----- REST --------------------------------------------------------------------------------

/** A REST call with the sign-in cookie; writes carry the CSRF token. Throws an Error
 * with the server's `code` and `status` on failure. */
async function api(path, options = {}) {
  const method = options.method || 'GET';
  const headers = {};
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
  const res = await fetch(path, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    cache: 'no-store',
    credentials: 'same-origin',
  });
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    const err = body?.error || { code: `http_${res.status}`, message: res.statusText };
    throw Object.assign(new Error(err.message), { code: err.code, status: res.status });
  }
  return body;
}

async function loadVisitor(shortId, token) {
  if (state.known.has(shortId)) return state.known.get(shortId);
  try {
    const v = await api(`/api/v1/visitors/${encodeURIComponent(shortId)}`);
    if (!state.known.has(shortId)) state.known.set(shortId, v);
    return state.known.get(shortId);
  } catch (e) {
    if (token !== state.loadToken) return null;
    if (e.status === 404) state.missing.add(shortId);
    else showError(e.code, e.message);
    return null;
  }
}

async function loadHistory(shortId, token) {
  try {
    const body = await api(`/api/v1/sessions?visitor_id=${encodeURIComponent(shortId)}`);
    if (token !== state.loadToken) return;
    const list = (body?.sessions || []).map((s) => {
      const known = state.sessions.get(s.id);
      if (known?.live) return { ...known.session, status: known.status };
      const { status, ...session } = s;
      if (status === 'authorizing' || status === 'active' || known) {
        // A live session of another agent (Join), or a REST copy to refresh.
        state.sessions.set(s.id, {
          session,
          status,
          controlling_agent_id: known?.controlling_agent_id ?? null,
          communications: known?.communications || [],
          live: false,
          updatedAt: Date.now(),
        });
      }
      return s;
    });
    for (const [, e] of state.sessions) {
      if (e.session.visitor_id === shortId && !list.some((s) => s.id === e.session.id)) {
        list.push({ ...e.session, status: e.status });
      }
    }
    list.sort((a, b) => String(b.started_at).localeCompare(String(a.started_at)));
    state.history.set(shortId, list);
    if (currentVisitorId() === shortId) renderView();
  } catch (e) {
    if (token === state.loadToken && e.status !== 404) showError(e.code, `Could not load the session history: ${e.message}`);
  }
}

async function loadSession(sessionId, token) {
  if (state.sessions.has(sessionId)) return state.sessions.get(sessionId);
  try {
    const s = await api(`/api/v1/sessions/${encodeURIComponent(sessionId)}`);
    let comms = [];
    try {
      comms = await api(`/api/v1/sessions/${encodeURIComponent(sessionId)}/communications`);
    } catch {
      comms = [];
    }
    if (!state.sessions.has(sessionId)) {
      const { status, ...session } = s;
      state.sessions.set(sessionId, {
        session,
        status,
        controlling_agent_id: null,
        communications: Array.isArray(comms) ? comms : (comms?.communications || []),
        live: false,
        updatedAt: Date.now(),
      });
    }
    return state.sessions.get(sessionId);
  } catch (e) {
    if (token === state.loadToken) {
      if (e.status === 404) {
        state.route = { kind: 'missing', what: 'session', id: sessionId };
        renderView();
      } else {
        showError(e.code, e.message);
      }
    }
    return null;
  }
}

// ----- routing -----------------------------------------------------------------------------

function parseRoute() {
  const a = location.hash.match(/^#\/(admin|audit)(?:\/(users|keys|settings))?\/?$/);
  if (a) return { kind: 'admin', page: a[1] === 'audit' ? 'audit' : (a[2] || 'users') };
  // A session's recording (the Session's public_video_url).
  const r = location.hash.match(/^#\/sessions\/([A-Za-z0-9_-]{1,64})\/replay\/?$/);
  if (r) return { kind: 'replay', id: r[1] };
  const m = location.hash.match(/^#\/(visitors|sessions)\/([^/?#]+)/);
  if (!m) return { kind: 'home' };
  let id;
  try {
    id = decodeURIComponent(m[2]);
  } catch {
    id = m[2];
  }
  return m[1] === 'visitors' ? { kind: 'visitor', id } : { kind: 'session', id };
}

function currentVisitorId() {
  const r = state.route;
  if (r.kind === 'visitor') return r.id;
  if (r.kind === 'session') return state.sessions.get(r.id)?.session.visitor_id || null;
  return null;
}

async function loadRoute() {
  state.route = parseRoute();
  const token = ++state.loadToken;
  renderView();
  renderList();
  if (!state.welcomed) return;
  const r = state.route;
  if (r.kind === 'visitor') {
    watchVisitor(r.id);
    await loadVisitor(r.id, token);
    if (token !== state.loadToken) return;
    renderView();
    loadHistory(r.id, token);
  } else if (r.kind === 'replay') {
    await loadReplay(r.id, token);
  } else if (r.kind === 'session') {
    const entry = await loadSession(r.id, token);
    if (token !== state.loadToken || !entry) return;
    watchVisitor(entry.session.visitor_id);
    await loadVisitor(entry.session.visitor_id, token);
    if (token !== state.loadToken) return;
    renderView();
    renderList();
    loadHistory(entry.session.visitor_id, token);
  }
}

/** The replay of a session's recording (replay.js, on this console's mirror renderer).
 * The server audits the read. */
async function loadReplay(id, token) {
  el.replayTitle.textContent = `Recording of session ${id}`;
  el.replayStatus.textContent = 'Loading the recording…';
  state.replay?.destroy();
  state.replay = null;
  try {
    const rec = await api(`/api/v1/sessions/${encodeURIComponent(id)}/recording`);
    if (token !== state.loadToken) return;
    state.replay = new Replay(el.replayRoot, rec, { View: MirrorView });
    el.replayStatus.textContent = `Started ${fmtTime(rec.started_at)}; recorded on the server as the agents saw it (masked fields never left the visitor's page).`;
  } catch (e) {
    if (token !== state.loadToken) return;
    el.replayStatus.textContent = e.code === 'recording_not_available'
      ? 'This session has no recording to play: none was made, it is still being finalised, or it expired or was deleted.'
      : `The recording could not be loaded: ${e.message}`;
  }
}

window.addEventListener('hashchange', async () => {
  const link = location.hash.match(/^#\/(invite|reset)\/([A-Za-z0-9_-]+)$/);
  if (link) {
    showPasswordForm(link[1], link[2]);
    return;
  }
  await loadRoute();
  if (state.route.kind !== 'home' && !el.visitorView.hidden) el.visitorTitle.focus();
});

// ----- rendering: visitor list ------------------------------------------------------------

/** Whether the list shows `v` for the query `q`: the server decides who matches (its
 *  `search_result`); until its answer to `q` arrives, the previous answer stands. */
function matches(v, q) {
  if (!q) return true;
  return Boolean(state.searchResult?.ids.has(v.short_id));
}

function sortVisitors(a, b) {
  if (a.is_waiting_for_call !== b.is_waiting_for_call) return a.is_waiting_for_call ? -1 : 1;
  return String(b.added_at).localeCompare(String(a.added_at)) || a.short_id.localeCompare(b.short_id);
}

function badge(text, kind) {
  return h('span', { class: `badge badge-${kind}`, text });
}

function visitorBadges(v, { withOnline } = {}) {
  const out = [];
  if (withOnline) {
    if (v.is_online) out.push(badge('Online', 'online'));
    else if (v.is_in_session) out.push(badge('Away: expected back', 'waiting'));
    else out.push(badge('Offline', 'offline'));
  }
  if (v.is_waiting_for_call) out.push(badge('Waiting for call', 'waiting'));
  if (v.is_in_session) out.push(badge('In session', 'session'));
  return out;
}

const rowCache = new Map();

function rowFor(v) {
  let a = rowCache.get(v.short_id);
  if (!a) {
    a = h('a', { class: 'visitor-row', 'data-testid': 'visitor-row' });
    rowCache.set(v.short_id, a);
  }
  a.href = `#/visitors/${encodeURIComponent(v.short_id)}`;
  a.dataset.shortId = v.short_id;
  a.dataset.lookupCode = v.lookup_code || '';
  const selected = currentVisitorId() === v.short_id;
  if (selected) a.setAttribute('aria-current', 'page');
  else a.removeAttribute('aria-current');
  const secondary = v.name && v.name !== v.nickname ? v.name : (v.email && v.email !== v.nickname ? v.email : null);
  a.replaceChildren(...[
    h('span', { class: 'row-top' },
      h('span', { class: 'row-name' }, visitorLabel(v)),
      v.lookup_code
        ? h('span', { class: 'code', 'aria-label': `lookup code ${v.lookup_code.split('').join(' ')}` }, v.lookup_code)
        : h('span', { class: 'code code-none', text: 'no code' })),
    secondary ? h('span', { class: 'row-line' }, secondary) : null,
    h('span', { class: 'row-line row-url', title: v.last_url || undefined }, shortUrl(v.last_url) || 'No page yet'),
    h('span', { class: 'row-line row-device' }, deviceText(v)),
    h('span', { class: 'row-badges' }, visitorBadges(v)),
  ].filter(Boolean));
  return a;
}

function renderList() {
  const q = el.search.value.trim();
  const all = [...state.visitors.values()].sort(sortVisitors);
  const shown = all.filter((v) => matches(v, q));
  el.visitorCount.textContent = String(all.length);
  const activeId = document.activeElement?.closest?.('.visitor-row')?.dataset.shortId;

  const wanted = shown.map((v) => v.short_id);
  const current = [...el.visitorList.children].map((li) => li.dataset.shortId);
  const sameOrder = wanted.length === current.length && wanted.every((id, i) => id === current[i]);
  const items = shown.map((v) => {
    const a = rowFor(v);
    let li = a.parentElement;
    if (!li) li = h('li', {}, a);
    li.dataset.shortId = v.short_id;
    return li;
  });
  if (!sameOrder) el.visitorList.replaceChildren(...items);
  for (const id of rowCache.keys()) {
    if (!state.visitors.has(id)) rowCache.delete(id);
  }
  if (activeId && document.activeElement === document.body) {
    rowCache.get(activeId)?.focus();
  }

  if (all.length === 0) {
    el.visitorEmpty.textContent = 'No visitors online right now. Visitors appear here as soon as they open a page with covisit.';
  } else if (shown.length === 0) {
    el.visitorEmpty.textContent = isLookupQuery(q)
      ? `No online visitor has the lookup code ${q}. Codes expire after an hour; ask the visitor to read it again.`
      : `No online visitor matches “${q}”.`;
  }
  show(el.visitorEmpty, shown.length === 0);
  const waiting = all.filter((v) => v.is_waiting_for_call).length;
  document.title = waiting > 0 ? `(${waiting} waiting) covisit agent console` : 'covisit agent console';
}

el.search.addEventListener('input', () => {
  const q = el.search.value.trim();
  if (!q) {
    state.searchResult = null;
    el.visitorResults.textContent = '';
    renderList();
  }
  searchSoon();
});

el.search.addEventListener('keydown', (e) => {
  if (e.key === 'ArrowDown') {
    const first = el.visitorList.querySelector('.visitor-row');
    if (first) {
      e.preventDefault();
      first.focus();
    }
  } else if (e.key === 'Enter') {
    const first = el.visitorList.querySelector('.visitor-row');
    if (first) {
      e.preventDefault();
      rememberFoundBy(first.dataset.shortId);
      location.hash = first.getAttribute('href');
    }
  } else if (e.key === 'Escape' && el.search.value) {
    el.search.value = '';
    state.searchResult = null;
    el.visitorResults.textContent = '';
    renderList();
  }
});

el.visitorList.addEventListener('keydown', (e) => {
  const row = e.target.closest('.visitor-row');
  if (!row) return;
  const rows = [...el.visitorList.querySelectorAll('.visitor-row')];
  const i = rows.indexOf(row);
  if (e.key === 'ArrowDown' && i < rows.length - 1) {
    e.preventDefault();
    rows[i + 1].focus();
  } else if (e.key === 'ArrowUp') {
    e.preventDefault();
    (i > 0 ? rows[i - 1] : el.search).focus();
  }
});

el.visitorList.addEventListener('click', (e) => {
  const row = e.target.closest('.visitor-row');
  if (row) rememberFoundBy(row.dataset.shortId);
});

function rememberFoundBy(shortId) {
  const q = el.search.value.trim();
  const v = state.visitors.get(shortId);
  state.foundBy.set(shortId, isLookupQuery(q) && v?.lookup_code === q ? 'lookup_code' : 'search');
}

document.addEventListener('keydown', (e) => {
  if (e.key !== '/' || e.ctrlKey || e.metaKey || e.altKey || el.appView.hidden) return;
  const t = e.target;
  if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t?.isContentEditable) return;
  e.preventDefault();
  el.search.focus();
  el.search.select();
});

// ----- rendering: visitor view --------------------------------------------------------------

function fact(dl, label, value, opts = {}) {
  if (value === null || value === undefined || value === '' || (Array.isArray(value) && value.length === 0)) {
    if (!opts.always) return;
    value = '—';
  }
  const dd = h('dd', { class: opts.class, id: opts.id });
  if (value instanceof Node) dd.append(value);
  else if (Array.isArray(value)) dd.append(...value.map((x) => h('span', { class: 'chip', text: x })));
  else dd.textContent = String(value);
  dl.append(h('div', { class: 'fact' }, h('dt', { text: label }), dd));
}

/** The session shown for the visitor: the one the route names, else the live one, else the newest. */
function sessionForView(shortId) {
  if (state.route.kind === 'session') {
    const e = state.sessions.get(state.route.id);
    if (e && e.session.visitor_id === shortId) {
      // A newer session of the same visitor (requested from this view) takes over.
      const newer = newestSession(shortId);
      if (newer && newer !== e && String(newer.session.started_at) > String(e.session.started_at)) return newer;
      return e;
    }
  }
  return newestSession(shortId);
}

function newestSession(shortId) {
  let best = null;
  for (const e of state.sessions.values()) {
    if (e.session.visitor_id !== shortId) continue;
    const live = e.status === 'authorizing' || e.status === 'active';
    const bestLive = best && (best.status === 'authorizing' || best.status === 'active');
    if (!best || (live && !bestLive)
      || (live === bestLive && String(e.session.started_at) > String(best.session.started_at))) best = e;
  }
  return best;
}

function isLive(entry) {
  return entry && (entry.status === 'authorizing' || entry.status === 'active');
}

/** This agent's own communication in the session, if it has one. */
function myPart(entry) {
  const me = state.agent?.id;
  if (!entry || !me) return null;
  return entry.communications.find((c) => c.cobrowseRole === 'viewer'
    && c.self?.addressRaw === `covisit:agent/${me}`) || null;
}

function amIn(entry) {
  if (!entry) return false;
  const part = myPart(entry);
  if (part) return part.state !== 'disconnected';
  return entry.live && (entry.session.agents || []).some((a) => a.id === state.agent?.id);
}

function othersIn(entry) {
  const me = state.agent?.id;
  return entry.communications.filter((c) => c.cobrowseRole === 'viewer' && c.state !== 'disconnected'
    && c.self?.addressRaw !== `covisit:agent/${me}`);
}

function sharerOf(entry) {
  return entry?.communications.find((c) => c.cobrowseRole === 'sharer') || null;
}

function disconnectTypeOf(entry) {
  const sharer = sharerOf(entry);
  if (sharer?.disconnectType) return sharer.disconnectType;
  const any = entry?.communications.find((c) => c.disconnectType);
  return any?.disconnectType || null;
}

/** The visitor is between pages (an open Hold segment on the sharer's communication). */
function onHold(entry) {
  const segs = sharerOf(entry)?.segments || [];
  const last = segs[segs.length - 1];
  return Boolean(last && last.type === 'Hold' && !last.endTime);
}

/** The `agentPrompt` the visitor's page configured (`session_update.agent_prompt`). */
function agentPromptOf(entry) {
  const prompt = entry?.agentPrompt;
  return typeof prompt === 'string' && prompt.trim() ? prompt : null;
}

function agentName(entry, id) {
  if (id === 'api') return 'API';
  if (id === state.agent?.id) return `${state.agent.name} (you)`;
  const a = (entry?.session.agents || []).find((x) => x.id === id);
  return a?.name || id;
}

/**
 * Re-renders the detail pane. When the control that had focus disappears or is
 * disabled by the change (Request session → End session, say), focus moves to the
 * control that replaced it instead of falling back to the page.
 */
function renderView() {
  const before = document.activeElement;
  const inDetail = before && before !== document.body && el.visitorView.contains(before);
  renderViewInner();
  if (!inDetail) return;
  const lost = !before.isConnected || before.disabled || before.closest('[hidden]') !== null
    || document.activeElement === document.body;
  if (!lost) return;
  const usable = (node) => node && !node.disabled && node.closest('[hidden]') === null;
  const groups = [
    before.closest('#control-section') ? el.controlSection : null,
    document.getElementById('session-actions'),
    el.controlSection,
  ].filter(Boolean);
  for (const g of groups) {
    const target = [...g.querySelectorAll('button')].find(usable);
    if (target) {
      target.focus();
      return;
    }
  }
  el.visitorTitle.focus();
}

function renderViewInner() {
  renderViewBody();
  // Mirror-first while this agent is in the active session the view shows.
  const id = el.visitorView.hidden ? null : currentVisitorId();
  const entry = id ? sessionForView(id) : null;
  workspace.setLayout(Boolean(entry && entry.status === 'active' && amIn(entry)));
}

function renderViewBody() {
  const r = state.route;
  show(el.replayView, r.kind === 'replay');
  if (r.kind !== 'replay' && state.replay) {
    state.replay.destroy();
    state.replay = null;
  }
  if (r.kind === 'replay') {
    admin.hide();
    show(el.visitorView, false);
    show(el.placeholderView, false);
    el.detail.setAttribute('aria-labelledby', 'replay-title');
    return;
  }
  if (r.kind === 'admin') {
    show(el.visitorView, false);
    show(el.placeholderView, false);
    el.detail.setAttribute('aria-labelledby', 'admin-title');
    admin.show(r.page);
    return;
  }
  admin.hide();
  const shortId = currentVisitorId();
  const v = shortId ? state.known.get(shortId) : null;
  if (!v) {
    show(el.visitorView, false);
    show(el.placeholderView, true);
    el.detail.setAttribute('aria-labelledby', 'detail-title');
    if (r.kind === 'home') {
      el.placeholderTitle.textContent = 'No visitor selected';
      el.placeholderText.textContent = 'Choose a visitor from the list, or search by the 4-digit code the visitor reads to you.';
    } else if (r.kind === 'missing' || (r.kind === 'visitor' && state.missing.has(r.id))) {
      el.placeholderTitle.textContent = r.kind === 'missing' ? 'Session not found' : 'Visitor not found';
      el.placeholderText.textContent = `Nothing with the id “${r.id}” exists in this account.`;
    } else {
      el.placeholderTitle.textContent = 'Loading…';
      el.placeholderText.textContent = r.kind === 'session' ? `Looking up session ${r.id}.` : `Looking up visitor ${r.id}.`;
    }
    return;
  }
  show(el.placeholderView, false);
  show(el.visitorView, true);
  el.detail.setAttribute('aria-labelledby', 'visitor-title');
  const online = state.visitors.has(v.short_id);
  const live = state.visitors.get(v.short_id) || v;

  el.visitorNickname.textContent = visitorLabel(live);
  const label = visitorLabel(live);
  el.visitorSub.textContent = [live.name && !label.includes(live.name) ? live.name : null, live.email,
    label.includes(live.short_id) ? null : `ID ${live.short_id}`].filter(Boolean).join(' · ');
  el.visitorBadges.replaceChildren(...visitorBadges({ ...live, is_online: online }, { withOnline: true }));

  const f = el.visitorFacts;
  f.replaceChildren();
  fact(f, 'Lookup code', live.lookup_code
    ? h('span', { class: 'code code-big' }, live.lookup_code) : (online ? 'Expired' : null), { always: true });
  fact(f, 'Current page', live.last_url ? h('span', { class: 'url', title: live.last_url, text: live.last_url }) : null, { always: true });
  fact(f, 'Device', deviceText(live));
  fact(f, 'Chat widget', live.integration);
  if (live.is_supported === false) fact(f, 'Supported', `No: lacks ${(live.missing_capabilities || []).join(', ')}`);
  fact(f, 'Unique ID', live.unique_id);
  fact(f, 'Identities', live.identities);
  fact(f, 'Tags', live.tags);
  fact(f, 'Email', live.email);
  fact(f, 'IP address', live.ip_address);
  fact(f, 'First seen', live.added_at ? timeEl(live.added_at) : null);
  fact(f, 'Last seen', live.last_seen_at ? timeEl(live.last_seen_at) : null);
  if (live.location_city || live.location_country_name) {
    fact(f, 'Location', [live.location_city, live.location_country_name].filter(Boolean).join(', '));
  }

  renderSession(live, online);
  renderHistory();
}

function renderSession(v, online) {
  const entry = sessionForView(v.short_id);
  const pending = state.pendingRequest === v.short_id && !isLive(entry);
  const connected = state.welcomed;
  show(el.sessionPending, pending);
  show(el.sessionNone, !entry && !pending);
  show(el.sessionInfo, Boolean(entry));

  const liveEntry = isLive(entry);
  const inIt = amIn(entry);
  // Request: when there is no live session to act on.
  show(el.requestSession, !liveEntry);
  el.requestSession.disabled = !connected || !online;
  // While the request is on its way the button keeps focus (aria-disabled, not disabled),
  // so that focus can move on to End session when the session appears.
  el.requestSession.setAttribute('aria-disabled', pending ? 'true' : 'false');
  el.requestSession.textContent = entry && entry.status === 'ended' ? 'Request a new session' : 'Request session';
  let hint = '';
  if (v.is_supported === false) {
    el.requestSession.disabled = true;
    hint = `This visitor's browser cannot co-browse: it lacks ${(v.missing_capabilities || []).join(', ') || 'what covisit needs'}. A session cannot start.`;
  } else if (!liveEntry) {
    if (!online) hint = 'The visitor is offline; a session can be requested when they are back on the site.';
    else if (v.is_in_session) hint = 'The visitor is in a session with another agent.';
    else if (pending) hint = '';
    else hint = `The visitor is asked to allow it. Found by ${requestFoundBy(v) === 'lookup_code' ? 'lookup code' : 'search'}.`;
  }
  el.requestHint.textContent = hint;
  show(el.requestHint, Boolean(hint));
  show(el.joinSession, liveEntry && !inIt);
  el.joinSession.disabled = !connected;
  show(el.endSession, liveEntry && inIt);
  el.endSession.disabled = !connected;
  el.endSession.textContent = entry?.status === 'authorizing' ? 'Cancel request' : 'End session';
  show(el.leaveSession, liveEntry && inIt && othersIn(entry).length > 0);
  el.leaveSession.disabled = !connected;

  if (!entry) {
    show(el.controlSection, false);
    show(el.notesSection, false);
    return;
  }

  const s = entry.session;
  const status = entry.status;
  el.sessionStatus.textContent = status;
  el.sessionStatus.dataset.status = status;
  const dtype = status === 'ended' ? disconnectTypeOf(entry) : null;
  show(el.sessionEndedWhy, status === 'ended');
  el.sessionDisconnectType.textContent = dtype || 'unknown';
  let explain = '';
  if (status === 'authorizing') explain = 'Waiting for the visitor to allow the session.';
  else if (status === 'active') explain = onHold(entry) ? 'Live. The visitor is between pages; waiting for them to come back.' : 'Live. The visitor shares this tab.';
  else if (status === 'ended') explain = dtype ? `Ended: ${DISCONNECT_TEXT[dtype] || dtype}.` : 'Ended.';
  el.sessionExplain.textContent = explain;

  const prompt = agentPromptOf(entry);
  show(el.agentPrompt, Boolean(prompt) && status !== 'ended');
  el.agentPromptText.textContent = prompt || '';

  const sf = el.sessionFacts;
  sf.replaceChildren();
  fact(sf, 'Session', h('a', { href: `#/sessions/${encodeURIComponent(s.id)}`, text: s.id }));
  fact(sf, 'Started', timeEl(s.started_at));
  if (status === 'ended') fact(sf, 'Ended', timeEl(s.ended_at));
  fact(sf, 'Length', status === 'active' ? liveLength(s) : s.formatted_length, { id: 'session-length', class: 'mono' });
  if (s.went_live && s.formatted_call_length && s.call_length_seconds > 0) fact(sf, 'Call length', s.formatted_call_length);
  fact(sf, 'Found by', SOURCE_TEXT[s.source] || s.source);
  fact(sf, 'Authorized', s.session_authorized ? 'Yes' : 'No');
  fact(sf, 'Start page', s.start_url ? h('span', { class: 'url', title: s.start_url, text: s.start_url }) : null);
  fact(sf, 'Agents', (s.agents || []).map((a) => (a.id === state.agent?.id ? `${a.name} (you)` : a.name)));
  if (s.features_used?.length) fact(sf, 'Features used', s.features_used);
  if (s.visitor_agent_rating !== null && s.visitor_agent_rating !== undefined) {
    fact(sf, 'Visitor rating', `${s.visitor_agent_rating} / 5${s.visitor_agent_feedback ? ` — “${s.visitor_agent_feedback}”` : ''}`);
  }

  // The mirror: while this agent is in the active session, the view is mirror-first.
  const active = status === 'active';
  show(el.mirrorSection, active && inIt);
  for (const [id, m] of state.mirrors) m.box.hidden = id !== s.id;
  renderMirrorStatus();
  // Calls and the visitor's share, next to the mirror.
  calls.show(active && inIt ? s.id : null, entry.call, entry.connections);

  // Control.
  show(el.controlSection, active && inIt);
  const me = state.agent?.id;
  const ctl = entry.controlling_agent_id;
  const requested = state.controlRequested.has(s.id) && !ctl;
  let ctlState = 'none';
  let ctlText = 'Not controlling. You can see the page; ask to guide it.';
  if (ctl && ctl === me) {
    ctlState = 'you';
    ctlText = 'You are controlling the page.';
  } else if (ctl) {
    ctlState = 'other';
    ctlText = `${agentName(entry, ctl)} is controlling the page.`;
  } else if (requested) {
    ctlState = 'requested';
    ctlText = 'Control requested. Waiting for the visitor to allow it.';
  }
  if (ctlState !== (el.controlStatus.dataset.control || 'none') && ctlState !== 'requested') setControlNote('');
  el.controlStatus.dataset.control = ctlState;
  el.controlStatus.textContent = ctlText;
  el.requestControl.disabled = !connected || !active || (ctlState !== 'none' && ctlState !== 'requested');
  el.requestControl.textContent = ctlState === 'requested' ? 'Ask again' : 'Request control';
  el.releaseControl.disabled = !connected || !active || (ctlState !== 'you' && ctlState !== 'requested');
  el.releaseControl.textContent = ctlState === 'requested' ? 'Withdraw request' : 'Release control';
  // Redirect: only while this agent controls the page (the site may still refuse it).
  show(el.redirectForm, ctlState === 'you' && connected);

  renderConsole(entry);

  // This agent's rating, once the session is over (only an agent who was in it).
  const wasIn = (s.agents || []).some((a) => a.id === me);
  show(el.ratingSection, status === 'ended' && wasIn);
  const mine = (s.quality_feedback || []).find((q) => q.by === me);
  el.ratingSubmit.disabled = !connected;
  el.ratingNote.textContent = mine ? `Your rating: ${mine.rating} / 5${mine.feedback ? ` — “${mine.feedback}”` : ''}. Sending again replaces it.` : '';
  const others = (s.quality_feedback || []).filter((q) => q.by !== me);
  if (others.length) {
    fact(sf, 'Ratings', others.map((q) => `${q.by === s.visitor_id ? 'Visitor' : agentName(entry, q.by)}: ${q.rating} / 5${q.feedback ? ` — “${q.feedback}”` : ''}`));
  }

  // Notes.
  show(el.notesSection, true);
  const notes = s.agent_notes || [];
  el.notesList.replaceChildren(...notes.map((n) => h('li', { class: 'note' },
    h('p', { class: 'note-text', text: n.text }),
    h('p', { class: 'note-by', text: agentName(entry, n.by) }))));
  show(el.notesEmpty, notes.length === 0);
  const canNote = (connected || (status === 'ended' && !online))
    && (inIt || (s.agents || []).some((a) => a.id === me));
  el.noteInput.disabled = !canNote;
  el.noteSubmit.disabled = !canNote;
}

/** The length of a live session at `now` (one `now` per repaint, so the card and the history row agree). */
function liveLength(s, now = Date.now()) {
  const started = Date.parse(s.started_at);
  if (Number.isNaN(started)) return s.formatted_length;
  return formatLength(Math.max(s.length_seconds || 0, (now - started) / 1000));
}

setInterval(() => {
  const shortId = currentVisitorId();
  if (!shortId) return;
  const entry = sessionForView(shortId);
  const dd = document.getElementById('session-length');
  const now = Date.now();
  if (entry?.status === 'active' && dd) dd.textContent = liveLength(entry.session, now);
  // The history row of the same live session shows the same length.
  for (const td of el.historyBody.querySelectorAll('[data-session-length]')) {
    const e = state.sessions.get(td.dataset.sessionLength);
    if (e?.status === 'active') td.textContent = liveLength(e.session, now);
  }
}, 1000);

function renderHistory() {
  const shortId = currentVisitorId();
  const list = (shortId && state.history.get(shortId)) || [];
  const shownId = shortId ? sessionForView(shortId)?.session.id : null;
  el.historyBody.replaceChildren(...list.map((s) => {
    const live = state.sessions.get(s.id);
    const status = live ? live.status : s.status;
    const sess = live ? live.session : s;
    const link = h('a', { href: `#/sessions/${encodeURIComponent(s.id)}` }, fmtTime(sess.started_at));
    if (s.id === shownId) link.setAttribute('aria-current', 'true');
    // A ready recording (REST's video fields): its replay here, and its download link.
    const recording = s.video_status === 'ready' && s.public_video_url ? [
      ' ', h('a', { href: `#/sessions/${encodeURIComponent(s.id)}/replay`, 'data-testid': 'replay-link' }, 'Replay'),
      ' ', h('a', { href: s.secret_video_url, download: '', 'data-testid': 'download-recording' }, 'Download'),
    ] : [];
    return h('tr', {},
      h('td', {}, link, ...recording),
      h('td', {}, h('span', { class: `status-pill status-small`, 'data-status': status, text: status || '—' })),
      h('td', { class: 'mono', 'data-session-length': status === 'active' ? s.id : null, text: (status === 'active' ? liveLength(sess) : sess.formatted_length) || '—' }),
      h('td', { text: SOURCE_TEXT[sess.source] || sess.source || '—' }),
      h('td', { text: (sess.agents || []).map((a) => a.name).join(', ') || '—' }));
  }));
  show(el.historyTable, list.length > 0);
  show(el.historyEmpty, list.length === 0);
}

// ----- actions ------------------------------------------------------------------------------

function requestFoundBy(v) {
  const q = el.search.value.trim();
  if (isLookupQuery(q) && v.lookup_code === q) return 'lookup_code';
  return state.foundBy.get(v.short_id) === 'lookup_code' ? 'lookup_code' : 'search';
}

function viewEntry() {
  const id = currentVisitorId();
  return id ? sessionForView(id) : null;
}

el.requestSession.addEventListener('click', () => {
  const id = currentVisitorId();
  const v = id && state.visitors.get(id);
  if (!v || state.pendingRequest === v.short_id) return;
  clearError();
  if (send({ type: 'request_session', short_id: v.short_id, found_by: requestFoundBy(v) })) {
    state.pendingRequest = v.short_id;
    // If this view was opened on an older session, follow the visitor instead.
    if (state.route.kind === 'session') history.replaceState(null, '', `#/visitors/${encodeURIComponent(v.short_id)}`);
    state.route = { kind: 'visitor', id: v.short_id };
    renderView();
  }
});

el.joinSession.addEventListener('click', () => {
  const e = viewEntry();
  if (!e) return;
  clearError();
  send({ type: 'join_session', session_id: e.session.id });
});

el.endSession.addEventListener('click', () => {
  const e = viewEntry();
  if (!e) return;
  clearError();
  send({ type: 'end_session', session_id: e.session.id });
});

el.leaveSession.addEventListener('click', () => {
  const e = viewEntry();
  if (!e) return;
  clearError();
  send({ type: 'leave_session', session_id: e.session.id });
});

function setControlNote(text) {
  el.controlNote.textContent = text;
}

el.requestControl.addEventListener('click', () => {
  const e = viewEntry();
  if (!e) return;
  clearError();
  setControlNote('');
  if (send({ type: 'request_control', session_id: e.session.id })) {
    state.controlRequested.add(e.session.id);
    renderView();
  }
});

el.redirectForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const e = viewEntry();
  const url = el.redirectUrl.value.trim();
  const tab = e?.control?.tab;
  if (!e || !url || !tab) return;
  clearError();
  setControlNote('');
  if (send({ type: 'remote_action', session_id: e.session.id, tab, action: { kind: 'redirect', url } })) el.redirectUrl.value = '';
});

el.releaseControl.addEventListener('click', () => {
  const e = viewEntry();
  if (!e) return;
  clearError();
  setControlNote('');
  if (send({ type: 'release_control', session_id: e.session.id })) {
    state.controlRequested.delete(e.session.id);
    renderView();
  }
});

el.ratingForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const e = viewEntry();
  const picked = el.ratingForm.querySelector('input[name="agent-rating"]:checked');
  if (!e || !picked) {
    el.ratingNote.textContent = 'Pick a rating from 1 to 5 first.';
    return;
  }
  clearError();
  const feedback = el.ratingComment.value.trim() || null;
  const rating = Number(picked.value);
  if (e.status === 'ended' && !state.visitors.has(e.session.visitor_id)) {
    // Gone from the server's memory with its visitor (as notes above): REST takes it.
    api(`/api/v1/sessions/${encodeURIComponent(e.session.id)}/ratings`, { method: 'POST', body: { rating, feedback } })
      .then((body) => {
        const current = state.sessions.get(e.session.id) || e;
        current.session = { ...current.session, quality_feedback: body?.quality_feedback || current.session.quality_feedback };
        renderView();
      })
      .catch((err) => showError(err.code, err.message));
    return;
  }
  send({ type: 'rate_session', session_id: e.session.id, rating, feedback });
});

el.noteForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const e = viewEntry();
  const text = el.noteInput.value.trim();
  if (!e || !text) {
    el.noteInput.focus();
    return;
  }
  clearError();
  if (e.status === 'ended' && !state.visitors.has(e.session.visitor_id)) {
    // The server forgets a session once it is over and its visitor has left; REST
    // still takes notes for it (recorded with `by: "api"`).
    el.noteSubmit.disabled = true;
    api(`/api/v1/sessions/${encodeURIComponent(e.session.id)}/notes`, { method: 'POST', body: { text } })
      .then((body) => {
        const current = state.sessions.get(e.session.id) || e;
        current.session = { ...current.session, agent_notes: body?.agent_notes || [...(current.session.agent_notes || []), { text, by: 'api' }] };
        el.noteInput.value = '';
        renderView();
        el.noteInput.focus();
      })
      .catch((err) => showError(err.code, err.message))
      .finally(() => { el.noteSubmit.disabled = false; });
    return;
  }
  if (send({ type: 'note', session_id: e.session.id, text })) {
    el.noteInput.value = '';
    el.noteInput.focus();
  }
});

el.noteInput.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
    ev.preventDefault();
    el.noteForm.requestSubmit();
  }
});

// ----- sign in / out, invites and password resets ------------------------------------------

function showSignin() {
  show(el.appView, false);
  show(el.accountBar, false);
  show(el.passwordView, false);
  show(el.signinView, true);
}

function showApp() {
  show(el.signinView, false);
  show(el.passwordView, false);
  show(el.signinProblem, false);
  show(el.appView, true);
  show(el.accountBar, true);
}

/** Signed in (`me` from /api/v1/me, sign-in or a set password): the socket connects. */
function startSession(me) {
  state.me = me;
  state.csrf = me.csrf_token;
  state.signingOut = false;
  state.everWelcomed = false;
  state.backoff = 1000;
  admin.setUser(me);
  el.personalLink.textContent = me.user.personal_link;
  el.personalLink.href = me.user.personal_link;
  connect();
}

function signinProblem(text, focus) {
  el.signinProblem.textContent = text;
  show(el.signinProblem, true);
  (focus || el.signinEmail).focus();
}

el.signinForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const email = el.signinEmail.value.trim();
  const password = el.signinPassword.value;
  show(el.signinProblem, false);
  if (!email || !password) {
    signinProblem(!email ? 'Enter your email address.' : 'Enter your password.', !email ? el.signinEmail : el.signinPassword);
    return;
  }
  clearError();
  el.signinSubmit.disabled = true;
  el.signinSubmit.textContent = 'Signing in…';
  try {
    await api('/api/v1/auth/sign_in', { method: 'POST', body: { email, password } });
    el.signinPassword.value = '';
    startSession(await api('/api/v1/me'));
  } catch (e) {
    resetSigninButton();
    const why = {
      invalid_credentials: 'Wrong email or password.',
      too_many_attempts: 'Too many failed sign-ins. Wait a few minutes, then try again.',
      user_disabled: 'This user is disabled. Ask an admin.',
    }[e.code] || e.message;
    signinProblem(why, el.signinPassword);
  }
});

function resetSigninButton() {
  el.signinSubmit.disabled = false;
  el.signinSubmit.textContent = 'Sign in';
}

/** `#/invite/TOKEN` and `#/reset/TOKEN`: choose a password, then signed in. */
function showPasswordForm(kind, token) {
  show(el.appView, false);
  show(el.accountBar, false);
  show(el.signinView, false);
  show(el.passwordView, true);
  el.passwordTitle.textContent = kind === 'invite' ? 'Welcome to covisit' : 'Choose a new password';
  el.passwordIntro.textContent = kind === 'invite'
    ? 'Choose your password to finish setting up your account. It needs at least 12 characters; a few words make a good one.'
    : 'Choose a new password. It needs at least 12 characters; a few words make a good one.';
  el.passwordForm.dataset.token = token;
  el.passwordInput.focus();
}

el.passwordForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const password = el.passwordInput.value;
  const problem = (text) => { el.passwordProblem.textContent = text; show(el.passwordProblem, true); el.passwordInput.focus(); };
  show(el.passwordProblem, false);
  if (password.length < 12) return problem('The password needs at least 12 characters.');
  if (password !== el.passwordRepeat.value) return problem('The two passwords differ.');
  el.passwordSubmit.disabled = true;
  try {
    await api('/api/v1/auth/accept', { method: 'POST', body: { token: el.passwordForm.dataset.token, password } });
    el.passwordInput.value = '';
    el.passwordRepeat.value = '';
    history.replaceState(null, '', location.pathname);
    state.route = parseRoute();
    startSession(await api('/api/v1/me'));
  } catch (e) {
    problem(e.code === 'link_invalid'
      ? 'This link is unknown, was used already, or has expired. Ask an admin for a new one.'
      : e.message);
  } finally {
    el.passwordSubmit.disabled = false;
  }
});

el.signout.addEventListener('click', async () => {
  state.signingOut = true;
  clearTimeout(state.reconnectTimer);
  clearInterval(state.heartbeatTimer);
  try {
    await api('/api/v1/auth/sign_out', { method: 'POST' });
  } catch {
    // the session may have expired already: signed out either way
  }
  const ws = state.ws;
  state.ws = null;
  state.welcomed = false;
  if (ws) ws.close(1000, 'signed out');
  Object.assign(state, {
    me: null, csrf: null, agent: null, everWelcomed: false, pendingRequest: null, lastAction: null, searchResult: null,
  });
  state.visitors.clear();
  state.known.clear();
  state.sessions.clear();
  state.history.clear();
  state.controlRequested.clear();
  state.foundBy.clear();
  state.missing.clear();
  rowCache.clear();
  el.visitorList.replaceChildren();
  el.search.value = '';
  admin.setUser(null);
  clearError();
  setConn('offline', 'Offline');
  showSignin();
  announce('Signed out.');
  el.signinEmail.focus();
});

function syncControls() {
  if (el.connStatus.dataset.state !== 'connecting') resetSigninButton();
  if (!el.appView.hidden) renderView();
}

function renderAll() {
  renderList();
  renderView();
}

// ----- start ---------------------------------------------------------------------------------

const admin = new Admin({ api, h, announce, showError, fmtTime, main: el.adminView, nav: el.adminNav });
const workspace = new Workspace({
  send,
  me: () => state.agent,
  current: () => viewEntry(),
  mirrors: state.mirrors,
  announce,
});
const calls = new CallPanel(el.mirrorSection, el.mirrorSessions, {
  send,
  me: () => state.agent?.id ?? null,
  announce,
});

async function boot() {
  state.route = parseRoute();
  const link = location.hash.match(/^#\/(invite|reset)\/([A-Za-z0-9_-]+)$/);
  if (link) {
    showPasswordForm(link[1], link[2]);
    return;
  }
  showSignin();
  // A sign-in that is still valid (the cookie) goes straight to the console.
  try {
    const session = await api('/api/v1/auth/session');
    if (session.signed_in) {
      startSession(session);
      return;
    }
  } catch (e) {
    showError(e.code, e.message);
  }
  el.signinEmail.focus();
}

boot();
