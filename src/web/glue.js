// The facade's small JS half: the default UI (prompts, in-session indicator, rating,
// lookup code) inside a shadow root, and the history patch for SPA navigation. It holds
// no session logic: it draws what Rust tells it and reports the visitor's clicks as
// actions through one callback.
// @ts-check

const CSS = `
:host { all: initial; }
.cv { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #14181f; }
.panel { position: fixed; right: 16px; bottom: 16px; max-width: 360px; box-sizing: border-box;
  background: #fff; border: 1px solid #c9d1dd; border-radius: 10px; padding: 16px;
  box-shadow: 0 8px 28px rgba(16, 24, 40, .22); z-index: 2147483647; }
.bar { position: fixed; left: 16px; bottom: 16px; display: flex; gap: 10px;
  align-items: center; background: #0b5cff; color: #fff; border-radius: 999px; padding: 6px 8px 6px 14px;
  box-shadow: 0 4px 16px rgba(16, 24, 40, .25); z-index: 2147483647; }
.bar.control { background: #b42318; }
h2 { font-size: 16px; margin: 0 0 6px; }
p { margin: 0 0 12px; }
.row { display: flex; gap: 8px; justify-content: flex-end; flex-wrap: wrap; }
button { font: inherit; cursor: pointer; border-radius: 6px; padding: 6px 14px; border: 1px solid #98a2b3; background: #fff; color: #14181f; }
button.primary { background: #0b5cff; border-color: #0b5cff; color: #fff; }
.bar button { border-color: #fff; background: transparent; color: #fff; padding: 3px 12px; border-radius: 999px; }
button:focus-visible { outline: 3px solid #ffb020; outline-offset: 2px; }
.stars button { min-width: 40px; }
.stars button[aria-pressed="true"] { background: #ffb020; border-color: #ffb020; }
textarea { font: inherit; width: 100%; box-sizing: border-box; margin: 0 0 10px; }
.code { font: 600 28px/1.2 ui-monospace, monospace; letter-spacing: .2em; margin: 4px 0 12px; }
.panel.info { bottom: auto; top: 16px; }
.hint { font-size: 12px; color: #475467; margin: 10px 0 0; }
button[aria-disabled="true"] { opacity: .55; cursor: default; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;

// A consent prompt must never be answered by input that started before it was shown
// (issue: a visitor typing a sentence granted control with a space). So no prompt takes
// focus (it is announced to assistive technology instead, and reachable by Tab or
// Alt+Shift+Y), and its buttons ignore activation for ARM_MS after it appears and while
// a key that was already down when it appeared is still held, as browsers do for their
// own permission prompts. Only trusted events (the visitor's own) answer it.
const ARM_MS = 700;
const LOOKUP_PRESSES = 5;
const LOOKUP_WINDOW_MS = 3000;

/** The arguments of `Ui.draw`, queued until the drawing layer is in. */
/** @typedef {[agentId: string, name: string, color: number, ink: string]} DrawArgs */
/** What a visitor did in the UI (src/web/session.rs `install_ui`), with its argument. */
/** @typedef {'allow' | 'deny' | 'end' | 'grantControl' | 'denyControl' | 'revokeControl' | 'rate' | 'lookupCode' | 'callSend' | `on:${string}`} UiAction */

export class Ui {
  /**
   * @param {(action: UiAction, arg: unknown) => boolean} onAction false: not done (or, for
   *   `on:<event>`, which fires a page event, no page handler)
   * @param {string} [callUrl] the on-demand call file (covisit-call.js)
   */
  constructor(onAction, callUrl) {
    this.onAction = onAction;
    this.callUrl = callUrl;
    /** @type {HTMLElement | null} */
    this.host = null;
    /** @type {ShadowRoot | null} */
    this.root = null;
    /** @type {HTMLElement | null} */
    this.prompt = null;
    /** Prompts asked while another is shown, in order: [id, show]. */
    /** @type {[string, () => void][]} */
    this.waiting = [];
    /** Each prompt button's action, for Escape (the page cannot reach it to call it). */
    /** @type {WeakMap<Element, () => void>} */
    this.runs = new WeakMap();
    /** @type {HTMLElement | null} */
    this.info = null;
    /** @type {HTMLElement | null} */
    this.indicator = null;
    /** @type {HTMLElement | null} */
    this.live = null;
    /** Keys down right now (KeyboardEvent.code), and those of them already down when the prompt appeared. */
    /** @type {Set<string>} */
    this.held = new Set();
    /** @type {Set<string>} */
    this.heldAtShow = new Set();
    this.armAt = 0;
    this.armTimer = 0;
    /** @type {HTMLElement | null} */
    this.lastFocus = null;
    // Ctrl pressed and released with nothing else between: LOOKUP_PRESSES of those
    // within LOOKUP_WINDOW_MS show the support code. Copy and paste (Ctrl+C…) never counts.
    this.ctrlAlone = false;
    /** @type {number[]} */
    this.ctrlPresses = [];
    /** @param {KeyboardEvent} e */
    this.onKeyDown = (e) => {
      if (!e.isTrusted) return;
      this.held.add(e.code || e.key);
      if (e.key === 'Control') { if (!e.repeat) this.ctrlAlone = true; } else this.ctrlAlone = false;
      if (this.prompt && e.altKey && e.shiftKey && !e.ctrlKey && !e.metaKey && e.code === 'KeyY') {
        e.preventDefault();
        this.focusPrompt();
      }
    };
    /** @param {KeyboardEvent} e */
    this.onKeyUp = (e) => {
      if (!e.isTrusted) return;
      const code = e.code || e.key;
      this.held.delete(code);
      if (this.heldAtShow.delete(code)) this.arm();
      if (e.key !== 'Control') return;
      const alone = this.ctrlAlone;
      this.ctrlAlone = false;
      if (!alone) return;
      const t = Date.now();
      this.ctrlPresses = this.ctrlPresses.filter((p) => t - p < LOOKUP_WINDOW_MS).concat(t);
      if (this.ctrlPresses.length >= LOOKUP_PRESSES) {
        this.ctrlPresses = [];
        this.onAction('lookupCode', undefined);
      }
    };
    // A click or wheel with Ctrl down (zoom, open in new tab) is not a lone Ctrl either.
    this.onPointer = () => { this.ctrlAlone = false; };
    // Where focus was last outside the SDK's UI: it goes back there when a prompt the
    // visitor moved into (by keyboard or by clicking) closes.
    /** @param {FocusEvent} e */
    this.onFocusIn = (e) => {
      const path = e.composedPath();
      if (!this.host || !path.includes(this.host)) this.lastFocus = /** @type {HTMLElement} */ (path[0]);
    };
    // Keys released while the window had no focus send no keyup.
    this.onBlur = () => { this.held.clear(); this.ctrlAlone = false; if (this.heldAtShow.size) { this.heldAtShow.clear(); this.arm(); } };
    window.addEventListener('keydown', this.onKeyDown, true);
    window.addEventListener('keyup', this.onKeyUp, true);
    window.addEventListener('pointerdown', this.onPointer, true);
    window.addEventListener('wheel', this.onPointer, { capture: true, passive: true });
    window.addEventListener('blur', this.onBlur);
    window.addEventListener('focusin', this.onFocusIn, true);
  }

  /** @returns {ShadowRoot} */
  ensureRoot() {
    if (this.root) return this.root;
    const host = document.createElement('covisit-ui');
    // Inline !important beats any page stylesheet, so the page cannot hide the UI.
    host.style.setProperty('display', 'block', 'important');
    host.style.setProperty('position', 'static', 'important');
    host.style.setProperty('visibility', 'visible', 'important');
    host.style.setProperty('opacity', '1', 'important');
    this.root = host.attachShadow({ mode: 'open' });
    const style = document.createElement('style');
    style.textContent = CSS;
    // Announcements: a prompt is read out without moving focus to it.
    this.live = this.el('div', { class: 'sr', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' });
    this.root.append(style, this.live);
    (document.body || document.documentElement).append(host);
    this.host = host;
    return this.root;
  }

  /**
   * An element with attributes (`text`: its text, `onclick`: a click listener) and children.
   * @param {string} tag
   * @param {Record<string, any>} [attrs]
   * @param {(Node | string)[]} [children]
   * @returns {HTMLElement}
   */
  el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') node.textContent = v;
      else if (k === 'onclick') node.addEventListener('click', v);
      else node.setAttribute(k, v);
    }
    for (const c of children || []) node.append(c);
    return node;
  }

  /**
   * A prompt button: `run` happens only for the visitor's own, deliberate activation.
   * @param {string} text
   * @param {() => void} run
   * @param {Record<string, string>} [attrs]
   */
  button(text, run, attrs) {
    const b = /** @type {HTMLButtonElement} */ (this.el('button', { type: 'button', text, ...(attrs || {}) }));
    b.addEventListener('click', (e) => {
      if (!e.isTrusted || !this.armed()) return;
      run();
    });
    this.runs.set(b, run);
    return b;
  }

  /** Whether prompt buttons take activation now (see ARM_MS). */
  armed() {
    return performance.now() >= this.armAt && this.heldAtShow.size === 0;
  }

  /** Marks the prompt's buttons usable once it is armed (and re-checks until then). */
  arm() {
    clearTimeout(this.armTimer);
    const panels = /** @type {HTMLElement[]} */ ([this.prompt, this.info].filter(Boolean));
    const ready = this.armed();
    for (const p of panels) {
      p.dataset.armed = String(ready);
      for (const b of p.querySelectorAll('button')) {
        if (ready) b.removeAttribute('aria-disabled');
        else b.setAttribute('aria-disabled', 'true');
      }
    }
    if (!ready && this.heldAtShow.size === 0) {
      this.armTimer = setTimeout(() => this.arm(), Math.max(0, this.armAt - performance.now()) + 5);
    }
  }

  /** Builds a prompt panel; `slot` 'prompt' (consent, rating) or 'info' (the support
   * code, which never replaces a question the visitor has to answer). No focus moves.
   * @param {string} id
   * @param {string} title
   * @param {string} message
   * @param {HTMLButtonElement[]} buttons the first one answers Escape
   * @param {HTMLElement[] | null} [extra]
   * @param {'prompt' | 'info'} [slot]
   */
  dialog(id, title, message, buttons, extra, slot = 'prompt') {
    if (slot === 'prompt') {
      const shown = this.prompt && this.prompt.dataset.covisit;
      // One question at a time: another waits until this one is answered or withdrawn.
      if (shown && shown !== id) {
        this.waiting = this.waiting.filter(([w]) => w !== id);
        this.waiting.push([id, () => this.dialog(id, title, message, buttons, extra)]);
        return;
      }
      this.drop(this.prompt);
    } else this.hideInfo();
    const root = this.ensureRoot();
    const heading = this.el('h2', { id: `cv-${id}-title`, text: title });
    const body = this.el('p', { id: `cv-${id}-desc`, text: message });
    const hint = this.el('p', { class: 'hint', text: 'Alt+Shift+Y moves to this box.' });
    const row = this.el('div', { class: 'row' }, buttons);
    const panel = this.el('div', {
      class: slot === 'prompt' ? 'cv panel' : 'cv panel info', role: slot === 'prompt' ? 'alertdialog' : 'dialog',
      'aria-modal': 'false', 'aria-labelledby': heading.id, 'aria-describedby': body.id, 'data-covisit': id,
    }, [heading, body, ...(extra || []), row, hint]);
    panel.addEventListener('keydown', (e) => {
      const run = this.runs.get(buttons[0]);
      if (e.key === 'Escape' && e.isTrusted && this.armed() && run) { e.stopPropagation(); run(); }
    });
    root.append(panel);
    if (slot === 'prompt') this.prompt = panel;
    else this.info = panel;
    this.armAt = performance.now() + ARM_MS;
    this.heldAtShow = new Set(this.held);
    this.arm();
    /** @type {HTMLElement} */ (this.live).textContent = ''; // ensureRoot made it
    // A fresh text node is what screen readers announce in a live region.
    setTimeout(() => { if (this.live) this.live.textContent = `${title}. ${message} Alt+Shift+Y moves to it.`; }, 50);
    return panel;
  }

  /** Alt+Shift+Y: the visitor asks to move to the prompt (focus comes back after). */
  focusPrompt() {
    const panel = this.prompt || this.info;
    if (!panel) return;
    const first = panel.querySelector('button');
    if (first) first.focus({ preventScroll: true });
  }

  /** @param {UiAction} action */
  answer(action) {
    this.hidePrompt();
    this.onAction(action, undefined);
  }

  /** @param {string} title @param {string} message with `{agentName}` @param {string} agentName
   * @param {boolean} console the page shares its console with the agent (`allowRemoteConsole`): said in every prompt, the page's own message or not */
  showSessionPrompt(title, message, agentName, console) {
    const text = message.split('{agentName}').join(agentName)
      + (console ? ' They will also see this page\'s console messages and failed network requests.' : '');
    this.dialog('session-prompt', title, text, [
      this.button('Deny', () => this.answer('deny')),
      this.button('Allow', () => this.answer('allow'), { class: 'primary' }),
    ]);
  }

  /** @param {string} agentName */
  showControlPrompt(agentName) {
    this.dialog('control-prompt', 'Allow remote control?', agentName + ' would like to control this page. They will be able to click, scroll and type on this page; you can take control back at any time.', [
      this.button('Deny', () => this.answer('denyControl')),
      this.button('Allow control', () => this.answer('grantControl'), { class: 'primary' }),
    ]);
  }

  /** @param {string} code */
  showLookupCode(code) {
    this.dialog('lookup-code', 'Your support code', 'Read this code to the support agent:', [
      this.button('Close', () => this.hideInfo(), { class: 'primary' }),
    ], [this.el('div', { class: 'code', 'data-covisit': 'code', text: code })], 'info');
  }

  /** @param {string} agentName empty when unknown */
  showRating(agentName) {
    let rating = 0;
    const stars = [1, 2, 3, 4, 5].map((n) => this.button(String(n), () => {
      rating = n;
      stars.forEach((s, i) => s.setAttribute('aria-pressed', String(i < n)));
    }, { 'aria-pressed': 'false', 'aria-label': `${n} of 5` }));
    const feedback = /** @type {HTMLTextAreaElement} */ (this.el('textarea', { rows: '2', 'aria-label': 'Feedback (optional)', placeholder: 'Feedback (optional)' }));
    this.dialog('rating', 'How was your session?', agentName ? `Rate your session with ${agentName}.` : 'Rate your session.', [
      this.button('Skip', () => this.hidePrompt()),
      this.button('Send', () => {
        if (!rating) return;
        this.hidePrompt();
        this.onAction('rate', { rating, feedback: feedback.value || null });
      }, { class: 'primary' }),
    ], [this.el('div', { class: 'row stars', role: 'group', 'aria-label': 'Rating' }, stars), feedback]);
  }

  /** Removes a panel; focus that the visitor moved into it goes back where it was.
   * @param {HTMLElement | null} panel */
  drop(panel) {
    if (!panel) return;
    const inside = this.root && panel.contains(this.root.activeElement);
    panel.remove();
    const back = this.lastFocus;
    if (inside && back && back.isConnected && back.focus) back.focus({ preventScroll: true });
  }

  /** Takes the shown prompt away, and the next waiting one shows; `only`: just prompts
   * whose id matches, shown or waiting. @param {RegExp} [only] */
  hidePrompt(only) {
    if (only) this.waiting = this.waiting.filter(([id]) => !only.test(id));
    const p = this.prompt;
    if (!p || (only && !only.test(/** @type {string} */ (p.dataset.covisit)))) return;
    this.drop(p);
    this.prompt = null;
    if (this.live) this.live.textContent = '';
    const next = this.waiting.shift();
    if (next) next[1]();
  }

  /** The session's and control's questions (withdrawn, or answered elsewhere). */
  hideAsked() { this.hidePrompt(/^(session|control)-prompt$/); }

  /** Every question (the session is over), not a rating the visitor may still give. */
  hideConsent() { this.hidePrompt(/-prompt$/); }

  hideInfo() {
    this.drop(this.info);
    this.info = null;
  }

  /** @param {string} agentName empty when unknown @param {boolean} controlGranted */
  showIndicator(agentName, controlGranted) {
    const root = this.ensureRoot();
    const who = agentName || 'Support';
    const key = `${who}|${controlGranted}`;
    if (this.indicator && this.indicator.dataset.key === key) return;
    if (this.indicator) this.indicator.remove();
    // Taking the page back needs no arming: it only ever withdraws what was shared.
    const buttons = [this.el('button', { type: 'button', text: 'End', 'aria-label': 'End screen sharing', onclick: () => this.onAction('end', undefined) })];
    if (controlGranted) {
      buttons.unshift(this.el('button', { type: 'button', text: 'Take back control', onclick: () => this.onAction('revokeControl', undefined) }));
    }
    const label = controlGranted ? `${who} is controlling this page` : `${who} can see this page`;
    this.indicator = this.el('div', { class: controlGranted ? 'cv bar control' : 'cv bar', role: 'status', 'data-covisit': 'indicator' },
      [this.el('span', { text: label }), ...buttons]);
    this.indicator.dataset.key = key;
    root.append(this.indicator);
  }

  hideIndicator() {
    if (this.indicator) { this.indicator.remove(); this.indicator = null; }
  }

  // ----- agents' laser and ink: draw.js, fetched on demand (covisit-draw.js) -----------
  // Rust calls drawStart when a session is active on a page that allows drawing; until
  // the module is in, inks wait here (a few: they are transient).

  /**
   * @param {string | undefined} url covisit-draw.js; none: drawing is off
   * @param {{ find?: (id: number, epoch: number) => unknown } | null | undefined} capture
   *   the page's capture (capture.js), which finds the nodes inks are anchored to
   */
  drawStart(url, capture) {
    this.drawCapture = capture;
    if (this.drawLoading || !url) return;
    const gen = (this.drawGen = (this.drawGen || 0) + 1);
    /** @type {DrawArgs[]} */
    this.drawQueue = [];
    this.drawLoading = import(/* webpackIgnore: true */ /* @vite-ignore */ url).then((m) => {
      if (gen !== this.drawGen) return; // stopped meanwhile
      /** @param {number} id @param {number} epoch */
      const find = (id, epoch) => (this.drawCapture && this.drawCapture.find ? this.drawCapture.find(id, epoch) : null);
      this.drawLayer = new m.DrawLayer(this.ensureRoot(), find);
      for (const args of /** @type {DrawArgs[]} */ (this.drawQueue).splice(0)) this.drawLayer.ink(...args);
    }, (e) => {
      this.drawLoading = null;
      console.error('[covisit] the drawing layer did not load', e);
    });
  }

  /** An agent's laser or ink (`ink`: the JSON text of an Ink, src/core/protocol.rs).
   * @param {string} agentId @param {string} name @param {number} color @param {string} ink */
  draw(agentId, name, color, ink) {
    // drawQueue exists once drawStart ran (drawLoading set), hence the casts.
    if (this.drawLayer) this.drawLayer.ink(agentId, name, color, ink);
    else if (this.drawLoading && /** @type {DrawArgs[]} */ (this.drawQueue).length < 64) /** @type {DrawArgs[]} */ (this.drawQueue).push([agentId, name, color, ink]);
  }

  drawStop() {
    this.drawGen = (this.drawGen || 0) + 1;
    this.drawLoading = null;
    /** @type {DrawArgs[]} */
    this.drawQueue = [];
    if (this.drawLayer) this.drawLayer.destroy();
    this.drawLayer = null;
  }

  /** Calls (Connection `audioSupported`): whether this browser can make them, detected. @returns {boolean} */
  static audioSupported() {
    return typeof window.RTCPeerConnection === 'function' && !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }

  // ----- calls and sharing: call.js, fetched on demand (covisit-call.js) -------------
  // Rust hands over each `call` frame of an active session (the first one loads the
  // file, in order), and says callStop when the session is over here.
  /** @param {string} frame */
  callFrame(frame) {
    const url = this.callUrl;
    if (!this.callLoading) {
      const gen = (this.callGen = (this.callGen || 0) + 1);
      /** @type {Promise<any> | null} */
      this.callLoading = (url ? import(/* webpackIgnore: true */ /* @vite-ignore */ url) : Promise.reject(new Error('no call file')))
        .then((m) => (gen === this.callGen ? (this.calls = new m.Calls(this)) : null), (e) => { console.error('[covisit] the call file did not load', e); return null; });
    }
    /** @type {Promise<any>} */ (this.callLoading).then((c) => c && c.frame(frame));
  }

  callStop() {
    this.callGen = (this.callGen || 0) + 1;
    this.callLoading = null;
    if (this.calls) this.calls.stop();
    this.calls = null;
  }

  /** @param {string} name @param {unknown} arg @returns {Promise<void>} */
  callApi(name, arg) {
    return this.calls ? this.calls.api(name, arg) : Promise.reject(Object.assign(new Error(`\`${name}\` is not valid now: there is no call`), { code: 'wrong_call_state' }));
  }

  // ----- the remote console's hooks: console.js, fetched on demand (covisit-console.js) --
  // Rust starts them when a session is active on a page that allows it, and stops them
  // when it ends. Until the module is in, nothing is recorded (the session is active).

  /** @param {string | undefined} url @param {(batch: string) => boolean} onBatch */
  consoleStart(url, onBatch) {
    if (this.consoleOff || !url) return;
    const gen = (this.consoleGen = (this.consoleGen || 0) + 1);
    /** @type {(() => void) | null} */
    this.consoleOff = () => {};
    import(/* webpackIgnore: true */ /* @vite-ignore */ url).then((m) => {
      if (gen === this.consoleGen) this.consoleOff = m.hook(onBatch);
    }, (e) => {
      if (gen === this.consoleGen) this.consoleOff = null;
      console.error('[covisit] the remote console did not load', e);
    });
  }

  consoleStop() {
    this.consoleGen = (this.consoleGen || 0) + 1;
    if (this.consoleOff) this.consoleOff();
    this.consoleOff = null;
  }

  destroy() {
    this.consoleStop();
    this.drawStop();
    this.callStop();
    clearTimeout(this.armTimer);
    window.removeEventListener('keydown', this.onKeyDown, true);
    window.removeEventListener('keyup', this.onKeyUp, true);
    window.removeEventListener('pointerdown', this.onPointer, true);
    window.removeEventListener('wheel', this.onPointer, { capture: true });
    window.removeEventListener('blur', this.onBlur);
    window.removeEventListener('focusin', this.onFocusIn, true);
    if (this.host) this.host.remove();
    this.host = this.root = this.prompt = this.info = this.indicator = this.live = null;
    this.waiting = [];
  }
}

// An agent's personal link sends the visitor here with `#covisit_call=TOKEN`: the token
// is taken out of the address at once (it is one-time, and must not end up in a
// bookmark, a shared link or the mirror) and handed to the SDK.
/** @returns {string | undefined} */
export function takeCallToken() {
  const m = /(^#|&)covisit_call=([A-Za-z0-9_-]{16,128})(&|$)/.exec(location.hash);
  if (!m) return undefined;
  const rest = location.hash.slice(1).split('&').filter((p) => !p.startsWith('covisit_call=')).join('&');
  try { history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : '')); } catch (e) { /* sandboxed: keep going */ }
  return m[2];
}

// The live-chat widget on the page, by its public global (set by its snippet, before
// its script loads) or its script's host: the Visitor's `integration`. The names are
// protocol::INTEGRATIONS (src/core/protocol.rs).
/** @type {[name: string, global: string, host: string][]} */
const WIDGETS = [
  ['intercom', 'Intercom', 'widget.intercom.io'], ['zendesk', 'zE', 'static.zdassets.com'],
  ['drift', 'drift', 'js.driftt.com'], ['livechat', 'LiveChatWidget', 'cdn.livechatinc.com'],
  ['crisp', '$crisp', 'client.crisp.chat'], ['hubspot', 'HubSpotConversations', 'js.usemessages.com'],
  ['freshchat', 'fcWidget', 'wchat.freshchat.com'], ['tawk.to', 'Tawk_API', 'embed.tawk.to'],
  ['olark', 'olark', 'static.olark.com'], ['gorgias', 'GorgiasChat', 'config.gorgias.chat'],
];
/** @returns {string | undefined} */
export function integration() {
  const w = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (window));
  const hosts = Array.from(document.scripts, (s) => s.src);
  for (const [name, global, host] of WIDGETS) {
    if (w[global] || hosts.some((src) => src.includes(`//${host}/`))) return name;
  }
  return undefined;
}

// What co-browsing needs of the browser (protocol::CAPABILITIES; WebAssembly itself is
// checked by index.js before the wasm loads): the names of those missing, comma-separated.
/** @returns {string} */
export function missing() {
  const w = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (window));
  const has = {
    WebAssembly: typeof w.WebAssembly === 'object', WebSocket: typeof w.WebSocket === 'function',
    MutationObserver: typeof w.MutationObserver === 'function',
    ShadowRoot: typeof w.Element === 'function' && typeof Element.prototype.attachShadow === 'function',
    WeakSet: typeof w.WeakSet === 'function', CSSStyleSheet: typeof w.CSSStyleSheet === 'function',
  };
  return Object.entries(has).filter(([, ok]) => !ok).map(([name]) => name).join(',');
}

// Calls onChange after every pushState/replaceState. Returns a function that restores
// the originals (left alone if someone patched them again after us).
/** @param {() => void} onChange @returns {() => void} */
export function patchHistory(onChange) {
  const { pushState, replaceState } = history;
  /** @param {History['pushState']} original @returns {History['pushState']} */
  const wrap = (original) => /** @this {History} */ function (...args) {
    const result = original.apply(this, args);
    try { onChange(); } catch (e) { console.error('[covisit]', e); }
    return result;
  };
  const push = wrap(pushState);
  const replace = wrap(replaceState);
  history.pushState = push;
  history.replaceState = replace;
  return () => {
    if (history.pushState === push) history.pushState = pushState;
    if (history.replaceState === replace) history.replaceState = replaceState;
  };
}

// Journey tracking: the facts of a page view (PageFacts in src/core/journey/event.rs,
// without `at`) as JSON text, collected in one call instead of a binding per property.
// A page load (or the page's first view, recorded by trackPageView()) comes from
// document.referrer, an SPA navigation from the previous URL; the same URL again
// (replaceState of state only) is no new page view: ''.
/** @type {string | null} */
let lastPageUrl = null;
/** @param {boolean} pageLoad @returns {string} */
export function pageView(pageLoad) {
  const url = location.href;
  const first = pageLoad || lastPageUrl === null;
  if (!first && url === lastPageUrl) return '';
  const referrer = first ? document.referrer : lastPageUrl;
  lastPageUrl = url;
  // User-Agent Client Hints are not in every browser (nor in TypeScript's DOM types).
  /** @typedef {Navigator & { userAgentData?: { platform: string, mobile: boolean } }} WithHints */
  const d = document, n = /** @type {WithHints} */ (navigator), ua = n.userAgentData, kw = d.querySelector('meta[name="keywords"]');
  /** @param {unknown} s */
  const text = (s) => (s ? String(s).slice(0, 1024) : undefined);
  // The facts are PageFacts (src/core/journey/event.rs) without `at`.
  return JSON.stringify(/** @satisfies {Omit<import('../../www/agent/wire').PageFacts, 'at'>} */ ({
    url, title: text(d.title), referrer: referrer || undefined, lang: text(n.language),
    pageLang: text(d.documentElement.lang), keywords: text(kw && /** @type {HTMLMetaElement} */ (kw).content),
    viewWidth: innerWidth, viewHeight: innerHeight, screenWidth: screen.width, screenHeight: screen.height,
    platform: text(ua && ua.platform), mobile: ua ? ua.mobile : undefined, pdf: n.pdfViewerEnabled,
    webrtc: typeof RTCPeerConnection === 'function',
  }));
}

// Sends what is still queued when the page goes away; text/plain needs no CORS preflight.
/** @param {string} url @param {string} body @returns {boolean} */
export function sendBeacon(url, body) {
  try { return navigator.sendBeacon(url, body); } catch (e) { return false; }
}

// A server frame as the browser parses it (the SDK carries no JSON parser of its own);
// undefined for binary data, text over the limit, or text that is not JSON.
/** @param {unknown} data @param {number} limit @returns {unknown} */
export function parseFrame(data, limit) {
  if (typeof data !== 'string' || data.length > limit) return undefined;
  try { return JSON.parse(data); } catch (e) { return undefined; }
}
