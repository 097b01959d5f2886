#!/usr/bin/env bash
# Install, build, run every test (unit and multi-rank) with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bash scripts/fetch-assets.sh  # the tokenizer and corpus the data tests use
cd build && ctest --output-on-failure
