// Prints raw, gzip and brotli sizes of the SDK as each way of loading it downloads it
// (the wasm plus that way's one JS file) and fails when any of them is over the budget:
// wasm + JS together, gzipped, must stay under BUDGET_GZIP bytes.
//
//   node scripts/size.mjs [--report-only] [--write-compressed] --wasm W.wasm --path "name=file.js" ...
//        [--on-demand "name=file.js" ...]
//
// --on-demand files load only when a session needs them (not part of the first load):
// their sizes are printed on their own, outside the budget.
// --write-compressed also writes FILE.gz and FILE.br, which the server sends to browsers
// that accept them.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { measureFile } from './measure.mjs';

const BUDGET_GZIP = 60 * 1024;
const { values } = parseArgs({
  options: {
    'report-only': { type: 'boolean', default: false },
    'write-compressed': { type: 'boolean', default: false },
    wasm: { type: 'string' },
    path: { type: 'string', multiple: true, default: [] },
    'on-demand': { type: 'string', multiple: true, default: [] },
  },
});
if (!values.wasm || values.path.length === 0) {
  console.error('usage: node scripts/size.mjs [--report-only] --wasm FILE --path "name=FILE" ...');
  process.exit(2);
}

function measure(file) {
  const m = measureFile(file);
  if (values['write-compressed']) {
    writeFileSync(`${file}.gz`, m.gzipped);
    writeFileSync(`${file}.br`, m.brotlied);
  }
  return m;
}
const kb = (n) => (n / 1024).toFixed(1).padStart(7) + ' KB';
const row = (label, m) => console.log(`[size] ${label.padEnd(34)} ${kb(m.raw)} ${kb(m.gzip)} ${kb(m.brotli)}`);

console.log(`[size] ${''.padEnd(34)}     raw        gzip      brotli`);
const wasm = measure(values.wasm);
row(values.wasm, wasm);
let worst = null;
for (const spec of values.path) {
  const [name, file] = spec.split('=');
  const js = measure(file);
  row(file, js);
  const total = { raw: wasm.raw + js.raw, gzip: wasm.gzip + js.gzip, brotli: wasm.brotli + js.brotli };
  row(`total, ${name} (wasm + js)`, total);
  if (!worst || total.gzip > worst.total.gzip) worst = { name, total };
}
for (const spec of values['on-demand']) {
  const [name, file] = spec.split('=');
  row(`on demand: ${name}`, measure(file));
}
const over = worst.total.gzip > BUDGET_GZIP;
if (over && !values['report-only']) {
  console.error(`[size] FAIL: ${worst.name}: ${worst.total.gzip} bytes gzipped is over the budget of ${BUDGET_GZIP}`);
  process.exit(1);
}
console.log(`[size] ${over ? 'PREVIEW, OVER' : 'within'} budget: first load, largest is ${worst.name}, ${kb(worst.total.gzip).trim()} of ${kb(BUDGET_GZIP).trim()} gzipped`);
