#!/usr/bin/env bash
# Builds the web-sys walker into bench/websys-walker/pkg (wasm-bindgen --target web, wasm-opt -Oz).
set -euo pipefail
cd "$(dirname "$0")"
root=../..
. "$root/scripts/env"
export CARGO_TARGET_DIR="$root/target/websys-walker"
cargo build --release --target wasm32-unknown-unknown
rm -rf pkg
wasm-bindgen --target web --out-dir pkg "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/websys_walker.wasm"
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  --strip-debug --strip-producers pkg/websys_walker_bg.wasm -o pkg/websys_walker_bg.wasm
