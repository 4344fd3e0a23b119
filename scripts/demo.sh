#!/usr/bin/env bash
# `make demo`: the main job. Until the vmcore reader lands this only says what it will do.
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures="${KDIAG_FIXTURES:-../shared/fixtures/vmcores}"
echo "kdiag demo: will triage each sample dump under $fixtures with 'kdiag analyze':"
for dir in "$fixtures"/*/; do
    echo "  $(basename "$dir")"
done
.venv/bin/kdiag --version
