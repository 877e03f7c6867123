// covisit script-tag loader: served as /sdk/covisit.js. Loads the wasm SDK next to it
// and replays the calls the page queued on window.Covisit before the SDK arrived.
(function () {
  'use strict';
  var script = document.currentScript;
  var base = script && script.src ? script.src.replace(/[^/]*$/, '') : '/sdk/';
  var queued = (window.Covisit && window.Covisit.q) || [];
  var sdk = null;
  var pending = [];

  function run(args) {
    var command = args[0];
    var rest = Array.prototype.slice.call(args, 1);
    try {
      switch (command) {
        case 'init':
          sdk.config = sdk.validateConfig(rest[0]);
          return;
        case 'getVersion':
          if (typeof rest[0] === 'function') rest[0](sdk.version());
          return;
        default:
          throw Object.assign(new Error('unknown covisit command `' + command + '`'), { code: 'unknown_command' });
      }
    } catch (e) {
      if (window.console) console.error('[covisit]', e.code || '', e.message);
    }
  }

  function Covisit() {
    if (sdk) run(arguments);
    else pending.push(arguments);
  }
  window.Covisit = Covisit;
  for (var i = 0; i < queued.length; i++) pending.push(queued[i]);

  import(base + 'covisit_wasm.js').then(function (mod) {
    return mod.default({ module_or_path: base + 'covisit_wasm_bg.wasm' }).then(function () {
      sdk = { validateConfig: mod.validateConfig, version: mod.version, config: null };
      var calls = pending;
      pending = [];
      for (var j = 0; j < calls.length; j++) run(calls[j]);
      window.dispatchEvent(new CustomEvent('covisit:loaded', { detail: { version: mod.version() } }));
    });
  }).catch(function (e) {
    if (window.console) console.error('[covisit] failed to load the SDK:', e);
  });
})();
