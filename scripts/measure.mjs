// How the SDK's files are measured everywhere (scripts/size.mjs, size-share.mjs,
// bench-sdk.mjs): raw bytes, gzip -9 and brotli quality 11, as servers precompress them.
import { readFileSync } from 'node:fs';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';

/** `{raw, gzip, brotli}` sizes of `file` in bytes, and the compressed bytes themselves. */
export function measureFile(file) {
  const data = readFileSync(file);
  const gzip = gzipSync(data, { level: 9 });
  const brotli = brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } });
  return { raw: data.length, gzip: gzip.length, brotli: brotli.length, gzipped: gzip, brotlied: brotli };
}
