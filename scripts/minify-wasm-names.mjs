// Shortens the wasm's import and export names, and the JS glue's references to them, in
// place: `node scripts/minify-wasm-names.mjs <wasm> <glue.js>`.
//
// wasm-bindgen names every import after its JS function plus a 16-hex-digit hash
// (`__wbg_addEventListener_3b4e6a0b3ff6d3c6`) and every closure export after its full
// Rust type; those names are written twice (wasm and JS) and do not compress: about
// 3 KB gzipped of the SDK. binaryen's --minify-imports-and-exports-and-modules renames
// them and prints the mapping, which this applies to the glue. The build fails if the
// rewritten glue and the wasm do not match name for name.
import { readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const [wasmPath, gluePath] = process.argv.slice(2);
if (!wasmPath || !gluePath) {
  console.error('usage: node scripts/minify-wasm-names.mjs <wasm> <glue.js>');
  process.exit(2);
}

// The features rustc enables for the release build (see scripts/build).
const FEATURES = ['--enable-bulk-memory', '--enable-nontrapping-float-to-int', '--enable-sign-ext',
  '--enable-mutable-globals'];
const mapText = execFileSync('wasm-opt', [...FEATURES, '--minify-imports-and-exports-and-modules',
  wasmPath, '-o', wasmPath], { encoding: 'utf8', maxBuffer: 16 << 20 });
const map = JSON.parse(mapText);

let glue = readFileSync(gluePath, 'utf8');
const escape = (s) => s.replace(/[$]/g, '\\$');
const fail = (why) => { console.error(`[minify-wasm-names] ${why}`); process.exit(1); };

// Imports: the keys of the glue's import object (`name: function(...)`), and the one
// module name (`"./x_bg.js": import0`), which binaryen renames to "a".
const modules = new Set(map.imports.map(([module]) => module));
if (modules.size !== 1) fail(`expected one import module, got ${[...modules].join(', ')}`);
for (const [, name, short] of map.imports) {
  const key = new RegExp(`(^|[\\s,{])${escape(name)}(?=\\s*:)`, 'gm');
  if (!key.test(glue)) fail(`import ${name} is not a key of the glue's import object`);
  glue = glue.replace(key, (m, before) => `${before}${short}`);
}
const [module] = modules;
const moduleKey = `"${module}":`;
if (!glue.includes(moduleKey)) fail(`the glue does not name the import module ${module}`);
glue = glue.split(moduleKey).join('"a":');

// Exports: every `wasm.name` in the glue.
for (const [name, short] of map.exports) {
  glue = glue.replace(new RegExp(`\\bwasm\\.${escape(name)}\\b`, 'g'), `wasm.${short}`);
}

// The glue must now use only names the wasm has.
const wasmModule = new WebAssembly.Module(readFileSync(wasmPath));
const exported = new Set(WebAssembly.Module.exports(wasmModule).map((e) => e.name));
for (const [, used] of glue.matchAll(/\bwasm\.([A-Za-z_$][\w$]*)/g)) {
  if (!exported.has(used)) fail(`the glue uses wasm.${used}, which the wasm does not export`);
}
const imported = WebAssembly.Module.imports(wasmModule);
if (imported.some((i) => i.module !== 'a')) fail('an import module was not renamed');
writeFileSync(gluePath, glue);
console.log(`[minify-wasm-names] ${map.imports.length} imports and ${map.exports.length} exports renamed`);
