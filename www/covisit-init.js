// The demo shop's covisit snippet, in a same-origin file so that pages also work under a
// strict Content-Security-Policy (`script-src 'self' 'wasm-unsafe-eval'`, no inline
// scripts). Every page with covisit loads, in <head>:
//
//   <script src="/covisit-init.js"></script>
//   <script async src="/sdk/covisit.js"></script>
//
// The first three statements are the script-tag snippet of the README: a queue stub
// (calls made before the SDK arrives are replayed by it) and the init call.

window.Covisit = window.Covisit || function () { (Covisit.q = Covisit.q || []).push(arguments); };
Covisit('init', {
  apiKey: 'pk_demo',
  server: location.origin,
  maskedElements: ['.covisit-mask'],
  agentPrompt: 'Acme Outdoor demo shop. Never ask the customer to read out a password or card number.',
});

// ---------------------------------------------------------------------------------------
// The rest is the shop's own UI around covisit: a status line with the SDK's state, a
// "Show my support code" button and an "Ask for help" button. Every call is defensive:
// when the SDK did not load, the page says so instead of waiting forever.
(function () {
  'use strict';

  var stub = window.Covisit;
  var heard = false; // the SDK answered something (an event or a callback)
  var lastState = null;
  var online = null;
  var waiting = false;
  var version = null;

  function $(id) { return document.getElementById(id); }

  function sdkLoaded() { return window.Covisit !== stub; }

  function setStatus(text, kind) {
    var el = $('sdk-status');
    if (!el) return;
    if (el.textContent !== text) el.textContent = text;
    el.setAttribute('data-state', kind);
    el.setAttribute('data-ok', kind === 'error' || kind === 'missing' || kind === 'loading' ? 'false' : 'true');
  }

  function statusOf(st) {
    if (!st) return 'none';
    if (typeof st.status === 'string') return st.status;
    if (st.session && typeof st.session.status === 'string') return st.session.status;
    var c = st.communication && st.communication.state;
    if (c === 'alerting') return 'authorizing';
    if (c === 'connected') return 'active';
    if (c === 'disconnected') return 'ended';
    return 'none';
  }

  function render() {
    if (!lastState && online === null) return;
    var st = lastState || {};
    var isOnline = online !== null ? online : Boolean(st.connection && st.connection.status === 'active');
    var status = statusOf(st);
    // An agent's request answers a help request (the server clears is_waiting_for_call).
    if (waiting && (status === 'authorizing' || status === 'active')) setWaiting(false);
    var text = 'covisit' + (version ? ' ' + version : '') + ': ' + (isOnline ? 'connected' : 'offline');
    if (status === 'authorizing') text += ' · an agent asks to co-browse';
    else if (status === 'active') text += ' · co-browsing with an agent';
    else if (status === 'ended') text += ' · session ended';
    else text += ' · no session';
    if (waiting) text += ' · waiting for an agent';
    setStatus(text, status === 'active' || status === 'authorizing' ? status : (isOnline ? 'ready' : 'offline'));
  }

  function setWaiting(on) {
    waiting = on;
    var help = $('ask-for-help');
    if (!help) return;
    help.setAttribute('aria-pressed', on ? 'true' : 'false');
    help.textContent = on ? 'Cancel help request' : 'Ask an agent for help';
  }

  function onState(st) {
    heard = true;
    lastState = st || null;
    render();
  }

  // Queued now, replayed by the SDK once it runs.
  Covisit('on', 'stateChange', onState);
  Covisit('on', 'connectionChange', function (e) { heard = true; online = Boolean(e && e.online); render(); });
  Covisit('on', 'ready', function () { heard = true; online = true; render(); });
  Covisit('on', 'error', function (e) {
    heard = true;
    setStatus('covisit error: ' + ((e && e.code) || 'unknown') + (e && e.message ? ' (' + e.message + ')' : ''), 'error');
  });
  Covisit('getState', onState);
  Covisit('getVersion', function (v) {
    heard = true;
    version = v;
    if (lastState || online !== null) render();
    else setStatus('covisit SDK ' + v + ' loaded', 'ready');
  });

  function ready(fn) {
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', fn);
    else fn();
  }

  ready(function () {
    if (!heard) setStatus('Loading the covisit SDK…', 'loading');

    var btn = $('show-lookup-code');
    var out = $('lookup-code');
    if (btn && out) {
      btn.addEventListener('click', function () {
        if (!sdkLoaded()) {
          out.textContent = 'Unavailable: the covisit SDK is not loaded.';
          out.setAttribute('data-state', 'missing');
          return;
        }
        out.textContent = 'Getting your code…';
        out.setAttribute('data-state', 'loading');
        var answered = false;
        Covisit('getLookupCode', function (code) {
          answered = true;
          heard = true;
          out.textContent = code || 'No code right now';
          out.setAttribute('data-state', code ? 'ok' : 'none');
        });
        setTimeout(function () {
          if (answered) return;
          out.textContent = 'No code yet: not connected to support.';
          out.setAttribute('data-state', 'timeout');
        }, 8000);
      });
    }

    var help = $('ask-for-help');
    if (help) {
      help.addEventListener('click', function () {
        if (!sdkLoaded()) {
          setStatus('covisit SDK not loaded: cannot ask for help.', 'missing');
          return;
        }
        setWaiting(!waiting);
        Covisit(waiting ? 'requestAgent' : 'cancelRequestAgent');
        render();
      });
    }
  });

  // Async scripts in the page delay `load`: by then the SDK's loader has run, or failed.
  window.addEventListener('load', function () {
    if (!sdkLoaded()) {
      setStatus('covisit SDK not loaded (the script /sdk/covisit.js did not run).', 'missing');
      return;
    }
    setTimeout(function () {
      if (!heard) setStatus('covisit SDK loaded, but it has not reported its state (see the browser console).', 'error');
    }, 10000);
  });
})();
