// Prints what a feature adds to the SDK: the sizes of two builds (with and without it)
// side by side, per file and per way of loading (wasm + that way's JS file), as
// scripts/size.mjs measures them (gzip -9, brotli 11). Called by scripts/size-share.
//
//   node scripts/size-share.mjs FEATURE WITH_DIR WITHOUT_DIR [--max-gzip KB]
//
// --max-gzip: exit 1 when the feature adds more than KB (gzipped) to a way of loading.
import { parseArgs } from 'node:util';
import { measureFile as measure } from './measure.mjs';

const { positionals, values } = parseArgs({ allowPositionals: true, options: { 'max-gzip': { type: 'string' } } });
const [feature, withDir, withoutDir] = positionals;
const maxGzip = values['max-gzip'] === undefined ? null : Number(values['max-gzip']);
if (!withoutDir || positionals.length > 3 || (maxGzip !== null && !(maxGzip > 0))) {
  console.error('usage: node scripts/size-share.mjs FEATURE WITH_DIR WITHOUT_DIR [--max-gzip KB (a number > 0)]');
  process.exit(2);
}
const sum = (a, b) => ({ raw: a.raw + b.raw, gzip: a.gzip + b.gzip, brotli: a.brotli + b.brotli });
const kb = (n) => `${n < 0 ? '-' : n > 0 ? '+' : ' '}${(Math.abs(n) / 1024).toFixed(2)} KB`.padStart(11);
const cell = (m) => `${(m.gzip / 1024).toFixed(2)} KB`.padStart(10);

console.log(`[size-share] what ${feature} adds          with gzip  without gzip   raw         gzip        brotli`);
const files = { wasm: 'covisit_wasm_bg.wasm', 'script tag JS': 'covisit.js', 'npm JS': 'index.js' };
const m = {};
for (const [name, file] of Object.entries(files)) {
  m[name] = { with: measure(`${withDir}/${file}`), without: measure(`${withoutDir}/${file}`) };
}
m['script tag (wasm + JS)'] = {
  with: sum(m.wasm.with, m['script tag JS'].with),
  without: sum(m.wasm.without, m['script tag JS'].without),
};
m['npm (wasm + JS)'] = { with: sum(m.wasm.with, m['npm JS'].with), without: sum(m.wasm.without, m['npm JS'].without) };
for (const [name, { with: w, without: wo }] of Object.entries(m)) {
  console.log(
    `[size-share] ${name.padEnd(28)} ${cell(w)} ${cell(wo)}  ${kb(w.raw - wo.raw)} ${kb(w.gzip - wo.gzip)} ${kb(w.brotli - wo.brotli)}`,
  );
}
if (maxGzip !== null) {
  const ways = ['script tag (wasm + JS)', 'npm (wasm + JS)'];
  const worst = Math.max(...ways.map((w) => m[w].with.gzip - m[w].without.gzip));
  if (worst > maxGzip * 1024) {
    console.error(`[size-share] FAIL: ${feature} adds ${(worst / 1024).toFixed(2)} KB gzipped, over its ${maxGzip} KB`);
    process.exit(1);
  }
  console.log(`[size-share] within ${maxGzip} KB: ${feature} adds at most ${(worst / 1024).toFixed(2)} KB gzipped`);
}
