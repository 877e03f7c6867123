// The facade's small JS half: the default UI (prompts, in-session indicator, rating,
// lookup code) inside a shadow root, and the history patch for SPA navigation. It holds
// no session logic: it draws what Rust tells it and reports the visitor's clicks as
// actions through one callback.

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
`;

export class Ui {
  constructor(onAction) {
    this.onAction = onAction;
    this.host = null;
    this.root = null;
    this.prompt = null;
    this.indicator = null;
    this.ctrlPresses = [];
    this.onKey = (e) => {
      if (e.key !== 'Control' || e.repeat) return;
      const t = Date.now();
      this.ctrlPresses = this.ctrlPresses.filter((p) => t - p < 3000).concat(t);
      if (this.ctrlPresses.length >= 5) {
        this.ctrlPresses = [];
        this.onAction('lookupCode', undefined);
      }
    };
    window.addEventListener('keydown', this.onKey, true);
  }

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
    this.root.append(style);
    (document.body || document.documentElement).append(host);
    this.host = host;
    return this.root;
  }

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

  dialog(id, title, message, buttons, extra) {
    this.hidePrompt();
    const root = this.ensureRoot();
    const heading = this.el('h2', { id: `cv-${id}-title`, text: title });
    const body = this.el('p', { id: `cv-${id}-desc`, text: message });
    const row = this.el('div', { class: 'row' }, buttons);
    const panel = this.el('div', {
      class: 'cv panel', role: 'alertdialog', 'aria-modal': 'false',
      'aria-labelledby': heading.id, 'aria-describedby': body.id, 'data-covisit': id,
    }, [heading, body, ...(extra || []), row]);
    panel.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { e.stopPropagation(); buttons[0].click(); }
    });
    root.append(panel);
    this.prompt = panel;
    const primary = buttons[buttons.length - 1];
    primary.focus({ preventScroll: true });
    return panel;
  }

  answer(action) {
    this.hidePrompt();
    this.onAction(action, undefined);
  }

  showSessionPrompt(title, message, agentName) {
    this.dialog('session-prompt', title, message.split('{agentName}').join(agentName), [
      this.el('button', { type: 'button', text: 'Deny', onclick: () => this.answer('deny') }),
      this.el('button', { type: 'button', class: 'primary', text: 'Allow', onclick: () => this.answer('allow') }),
    ]);
  }

  showControlPrompt(agentName) {
    this.dialog('control-prompt', 'Allow remote control?', agentName + ' would like to control this page. They will be able to click, scroll and type on this page; you can take control back at any time.', [
      this.el('button', { type: 'button', text: 'Deny', onclick: () => this.answer('denyControl') }),
      this.el('button', { type: 'button', class: 'primary', text: 'Allow control', onclick: () => this.answer('grantControl') }),
    ]);
  }

  showLookupCode(code) {
    this.dialog('lookup-code', 'Your support code', 'Read this code to the support agent:', [
      this.el('button', { type: 'button', class: 'primary', text: 'Close', onclick: () => this.hidePrompt() }),
    ], [this.el('div', { class: 'code', 'data-covisit': 'code', text: code })]);
  }

  showRating(agentName) {
    let rating = 0;
    const stars = [1, 2, 3, 4, 5].map((n) => this.el('button', {
      type: 'button', 'aria-pressed': 'false', 'aria-label': `${n} of 5`, text: String(n),
      onclick: () => { rating = n; stars.forEach((s, i) => s.setAttribute('aria-pressed', String(i < n))); },
    }));
    const feedback = this.el('textarea', { rows: '2', 'aria-label': 'Feedback (optional)', placeholder: 'Feedback (optional)' });
    this.dialog('rating', 'How was your session?', agentName ? `Rate your session with ${agentName}.` : 'Rate your session.', [
      this.el('button', { type: 'button', text: 'Skip', onclick: () => this.hidePrompt() }),
      this.el('button', { type: 'button', class: 'primary', text: 'Send', onclick: () => {
        if (!rating) return;
        this.hidePrompt();
        this.onAction('rate', { rating, feedback: feedback.value || null });
      } }),
    ], [this.el('div', { class: 'row stars', role: 'group', 'aria-label': 'Rating' }, stars), feedback]);
  }

  hidePrompt() {
    if (this.prompt) { this.prompt.remove(); this.prompt = null; }
  }

  showIndicator(agentName, controlGranted) {
    const root = this.ensureRoot();
    const who = agentName || 'Support';
    const key = `${who}|${controlGranted}`;
    if (this.indicator && this.indicator.dataset.key === key) return;
    if (this.indicator) this.indicator.remove();
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

  destroy() {
    window.removeEventListener('keydown', this.onKey, true);
    if (this.host) this.host.remove();
    this.host = this.root = this.prompt = this.indicator = null;
  }
}

// Calls onChange after every pushState/replaceState. Returns a function that restores
// the originals (left alone if someone patched them again after us).
export function patchHistory(onChange) {
  const { pushState, replaceState } = history;
  const wrap = (original) => function (...args) {
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
let lastPageUrl = null;
export function pageView(pageLoad) {
  const url = location.href;
  const first = pageLoad || lastPageUrl === null;
  if (!first && url === lastPageUrl) return '';
  const referrer = first ? document.referrer : lastPageUrl;
  lastPageUrl = url;
  const d = document, n = navigator, ua = n.userAgentData, kw = d.querySelector('meta[name="keywords"]');
  const text = (s) => (s ? String(s).slice(0, 1024) : undefined);
  return JSON.stringify({
    url, title: text(d.title), referrer: referrer || undefined, lang: text(n.language),
    pageLang: text(d.documentElement.lang), keywords: text(kw && kw.content),
    viewWidth: innerWidth, viewHeight: innerHeight, screenWidth: screen.width, screenHeight: screen.height,
    platform: text(ua && ua.platform), mobile: ua ? ua.mobile : undefined, pdf: n.pdfViewerEnabled,
    webrtc: typeof RTCPeerConnection === 'function',
  });
}

// Sends what is still queued when the page goes away; text/plain needs no CORS preflight.
export function sendBeacon(url, body) {
  try { return navigator.sendBeacon(url, body); } catch (e) { return false; }
}

// A server frame as the browser parses it (the SDK carries no JSON parser of its own);
// undefined for binary data, text over the limit, or text that is not JSON.
export function parseFrame(data, limit) {
  if (typeof data !== 'string' || data.length > limit) return undefined;
  try { return JSON.parse(data); } catch (e) { return undefined; }
}
