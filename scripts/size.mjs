// Prints raw, gzip and brotli sizes of the SDK's files and fails above the budget:
// the wasm and its JS together, gzipped, must stay under BUDGET_GZIP bytes.
import { readFileSync } from 'node:fs';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';

const BUDGET_GZIP = 60 * 1024;
const reportOnly = process.argv.includes('--report-only');
const files = process.argv.slice(2).filter((a) => a !== '--report-only');
let total = { raw: 0, gzip: 0, brotli: 0 };
const kb = (n) => (n / 1024).toFixed(1).padStart(7) + ' KB';
console.log('[size] file                          raw       gzip     brotli');
for (const file of files) {
  const data = readFileSync(file);
  const raw = data.length;
  const gzip = gzipSync(data, { level: 9 }).length;
  const brotli = brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length;
  total = { raw: total.raw + raw, gzip: total.gzip + gzip, brotli: total.brotli + brotli };
  console.log(`[size] ${file.padEnd(26)} ${kb(raw)} ${kb(gzip)} ${kb(brotli)}`);
}
console.log(`[size] ${'total (wasm + js)'.padEnd(26)} ${kb(total.raw)} ${kb(total.gzip)} ${kb(total.brotli)}`);
if (total.gzip > BUDGET_GZIP) {
  if (reportOnly) {
    console.log(`[size] PREVIEW: ${kb(total.gzip).trim()} gzipped is over the ${kb(BUDGET_GZIP).trim()} budget; not shippable`);
    process.exit(0);
  }
  console.error(`[size] FAIL: ${total.gzip} bytes gzipped is over the budget of ${BUDGET_GZIP}`);
  process.exit(1);
}
console.log(`[size] within budget: ${kb(total.gzip).trim()} of ${kb(BUDGET_GZIP).trim()} gzipped`);
