#!/usr/bin/env node
// Fails when the server's modules import each other in a cycle. A module is a file of
// server/src (or a folder with a mod.rs); an edge A → B is any `crate::B` path written
// in A (use declarations and inline paths alike), outside `#[cfg(test)]` modules
// (tests may reach across layers). `main.rs` is the composition root: it may name
// every module, and no module may name it.
// Usage: node scripts/check-modules.mjs [crate source dir, default server/src]
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, basename } from 'node:path';

const root = process.argv[2] || 'server/src';
const ROOT_FILE = 'main.rs';
/** Modules that name no other: the clock, the metrics, the REST error type, the trust
 *  model's rules, the store (persistence and its writes). */
const LEAVES = ['auth', 'clock', 'errors', 'metrics', 'store'];

/** Every .rs file under `dir`, recursively. */
function rustFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'bin' ? [] : rustFiles(path);
    return name.endsWith('.rs') ? [path] : [];
  });
}

/** The top-level module a file belongs to (`hub/relay.rs` → `hub`). */
function moduleOf(path) {
  const rel = path.slice(root.length + 1);
  const first = rel.split('/')[0];
  return first === ROOT_FILE ? 'main' : basename(first, '.rs');
}

/** Source without comments and string literals (a path in a doc comment is no import). */
function code(text) {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '')
    .replace(/r#*"[\s\S]*?"#*/g, '""')
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/'(?:[^'\\\n]|\\[^\n]{1,9}?)'/g, "' '");
}

/** `text` without its `#[cfg(test)] mod name { … }` blocks (braces matched). */
function withoutTestModules(text) {
  let out = text;
  for (;;) {
    const m = /#\[cfg\(test\)\]\s*mod\s+[a-z_][a-z0-9_]*\s*\{/.exec(out);
    if (!m) return out;
    let depth = 0;
    let end = out.length;
    for (let i = m.index + m[0].length - 1; i < out.length; i += 1) {
      if (out[i] === '{') depth += 1;
      else if (out[i] === '}' && --depth === 0) {
        end = i + 1;
        break;
      }
    }
    out = out.slice(0, m.index) + out.slice(end);
  }
}

const modules = new Set();
const edges = new Map(); // module → Map(target → first file naming it)
for (const file of rustFiles(root)) {
  const from = moduleOf(file);
  modules.add(from);
  if (!edges.has(from)) edges.set(from, new Map());
  const text = withoutTestModules(code(readFileSync(file, 'utf8')));
  // `crate::x` paths, and `use crate::{x, y::z}` groups.
  for (const m of text.matchAll(/crate::(\{[^}]*\}|[a-z_][a-z0-9_]*)/g)) {
    const names = m[1].startsWith('{')
      ? m[1].slice(1, -1).split(',').map((s) => s.trim().split('::')[0]).filter(Boolean)
      : [m[1]];
    for (const to of names) {
      if (to !== from && /^[a-z_][a-z0-9_]*$/.test(to) && !edges.get(from).has(to)) edges.get(from).set(to, file);
    }
  }
}

const problems = [];
for (const leaf of LEAVES) {
  if (!modules.has(leaf)) problems.push(`leaf module ${leaf} does not exist (update LEAVES)`);
  for (const [to, file] of edges.get(leaf) ?? []) problems.push(`leaf module ${leaf} names ${to} (${file})`);
}
for (const [from, tos] of edges) {
  if (from !== 'main' && tos.has('main')) problems.push(`${tos.get('main')} names the composition root (crate:: items of main.rs)`);
}

// Tarjan's strongly connected components: every component of more than one module is a cycle.
let index = 0;
const stack = [];
const info = new Map();
const cycles = [];
function strongConnect(v) {
  info.set(v, { index, low: index, onStack: true });
  index += 1;
  stack.push(v);
  for (const w of edges.get(v)?.keys() ?? []) {
    if (!modules.has(w)) continue;
    if (!info.has(w)) {
      strongConnect(w);
      info.get(v).low = Math.min(info.get(v).low, info.get(w).low);
    } else if (info.get(w).onStack) {
      info.get(v).low = Math.min(info.get(v).low, info.get(w).index);
    }
  }
  if (info.get(v).low === info.get(v).index) {
    const component = [];
    let w;
    do {
      w = stack.pop();
      info.get(w).onStack = false;
      component.push(w);
    } while (w !== v);
    if (component.length > 1) cycles.push(component.sort());
  }
}
for (const v of [...modules].sort()) if (!info.has(v)) strongConnect(v);

for (const c of cycles) {
  const set = new Set(c);
  const detail = c.flatMap((from) => [...edges.get(from)]
    .filter(([to]) => set.has(to))
    .map(([to, file]) => `    ${from} → ${to} (${file})`));
  problems.push(`modules in a cycle: ${c.join(', ')}\n${detail.join('\n')}`);
}

const edgeCount = [...edges.values()].reduce((n, m) => n + m.size, 0);
if (problems.length) {
  console.error(`[modules] ${root}: ${problems.length} problem(s)\n${problems.join('\n')}`);
  process.exit(1);
}
console.log(`[modules] ${root}: ${modules.size} modules, ${edgeCount} imports, no cycle`);
