// The npm package's entry: `import { start } from 'covisit'`. Initializes the wasm once
// (it sits next to this file), then starts the SDK.
import init, { startCovisit, validateConfig, version, Covisit } from './covisit_wasm.js';

let loading = null;

/** Load the wasm (once). Called by `start`; call it early to warm up. */
export function load() {
  loading = loading || init({ module_or_path: new URL('./covisit_wasm_bg.wasm', import.meta.url) });
  return loading;
}

/** Connect to the covisit server and identify the visitor: resolves with the SDK object. */
export async function start(config) {
  await load();
  return startCovisit(config);
}

export { validateConfig, version, Covisit };
