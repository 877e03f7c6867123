// covisit's script-tag entry, bundled by scripts/build with index.js into one file served
// as /sdk/covisit.js. Fetches the wasm next to it and replays the calls the page queued on
// window.Covisit before it arrived:
//   Covisit('init', config); Covisit('on', 'sessionStart', fn); Covisit('getState', cb) ...
// @ts-check
import { load, start, version } from './index.js';

/** @typedef {import('./index.js').Covisit} Covisit */
/** One `Covisit(command, ...args)` call: its `arguments`. */
/** @typedef {ArrayLike<any>} Call */
/** @typedef {{ startCovisit: typeof start, version: typeof version }} Loaded */

(function () {
  'use strict';
  var script = /** @type {HTMLScriptElement | null} */ (document.currentScript);
  var base = script && script.src ? script.src.replace(/[^/?#]*([?#].*)?$/, '') : '/sdk/';
  var queued = (window.Covisit && window.Covisit.q) || [];
  /** @type {Loaded | null} */
  var mod = null;
  /** @type {Covisit | null} */
  var instance = null;
  var starting = false;
  /** @type {Call[]} */
  var waiting = [];

  /** @param {any} e an Error with a `code`, or what a page's callback threw */
  function report(e) {
    if (window.console) console.error('[covisit]', (e && e.code) || '', (e && e.message) || e);
  }

  // Commands that call back instead of returning.
  /** @type {Record<string, (cv: Covisit, cb: (value: any) => void) => void>} */
  var CALLBACKS = {
    getState: function (cv, cb) { cb(cv.state()); },
    getLookupCode: function (cv, cb) { cv.lookupCode().then(cb, report); }
  };
  var METHODS = ['authorize', 'deny', 'end', 'grantControl', 'denyControl', 'revokeControl',
    'expectDisconnect', 'updateVisitor', 'requestAgent', 'cancelRequestAgent', 'rate', 'track', 'trackPageView', 'on', 'off', 'stop',
    'acceptCall', 'declineCall', 'endCall', 'setMicrophone', 'setCamera'];

  /** Runs one call; only once the SDK is loaded (`mod` is set, hence its casts). @param {Call} args */
  function run(args) {
    var command = args[0];
    var rest = Array.prototype.slice.call(args, 1);
    if (command === 'init') {
      if (starting) return report({ code: 'already_initialized', message: 'Covisit("init") was called twice' });
      starting = true;
      /** @type {Loaded} */ (mod).startCovisit(rest[0]).then(function (cv) {
        instance = cv;
        var calls = waiting;
        waiting = [];
        for (var i = 0; i < calls.length; i++) run(calls[i]);
      }, function (e) {
        report(e);
        // No SDK object to subscribe on: the page's queued `error` handlers still hear
        // why (e.g. origin_not_allowed, invalid_api_key), with the event's shape.
        var calls = waiting;
        waiting = [];
        starting = false;
        for (var i = 0; i < calls.length; i++) {
          if (calls[i][0] === 'on' && calls[i][1] === 'error' && typeof calls[i][2] === 'function') {
            try { calls[i][2]({ code: e && e.code, message: e && e.message }); } catch (x) { report(x); }
          }
        }
      });
      return;
    }
    try {
      if (command === 'getVersion') {
        if (typeof rest[0] === 'function') rest[0](/** @type {Loaded} */ (mod).version());
        return;
      }
      if (!instance) { waiting.push(args); return; }
      if (CALLBACKS[command]) {
        if (typeof rest[0] !== 'function') throw Object.assign(new Error(command + ' needs a callback'), { code: 'invalid_argument' });
        return CALLBACKS[command](instance, rest[0]);
      }
      if (METHODS.indexOf(command) < 0) throw Object.assign(new Error('unknown covisit command `' + command + '`'), { code: 'unknown_command' });
      var result = /** @type {Record<string, Function>} */ (/** @type {unknown} */ (instance))[command].apply(instance, rest);
      if (command === 'stop') { instance = null; starting = false; }
      return result;
    } catch (e) {
      report(e);
    }
  }

  /** @type {Call[]} */
  var pending = [];
  function Covisit() {
    if (mod) run(arguments);
    else pending.push(arguments);
  }
  window.Covisit = Covisit;
  for (var i = 0; i < queued.length; i++) pending.push(queued[i]);

  // Without WebAssembly nothing can load; start() then says so (and tells the server:
  // index.js, `unsupported`), so the page's `init` and `error` handlers still hear why.
  var ready = typeof WebAssembly === 'object' ? load(base + 'covisit_wasm_bg.wasm') : Promise.resolve();
  ready.then(function () {
    mod = { startCovisit: start, version: version };
    var calls = pending;
    pending = [];
    for (var j = 0; j < calls.length; j++) run(calls[j]);
  }).catch(report);
})();
