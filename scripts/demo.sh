#!/usr/bin/env bash
# `make demo`: the main job live on a lab guest (scripts/demo-live.sh: doctor, IAM policy,
# EC2-compatible endpoint, NMI over QMP, kdump, triage, audit), then triage every sample crash
# dump with `kdiag analyze`, with one line per dump at the end (the closing table).
#
# Dumps come from $KDIAG_FIXTURES (default ../shared/fixtures/vmcores), one folder each with a
# `vmcore` or a zstd-compressed ELF `vmcore.zst`, which is decompressed to a temporary
# directory first. KDIAG_DEMO_LIVE=0 skips the live part. Every temporary directory of the
# demo is $KDIAG_DEMO_TMP/kdiag-demo.XXXXXX (default under $TMPDIR or /tmp) and is removed
# at the end, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures="${KDIAG_FIXTURES:-../shared/fixtures/vmcores}"
kdiag=.venv/bin/kdiag
python=.venv/bin/python
if [[ "${KDIAG_DEMO_LIVE:-1}" != 0 ]]; then
    bash scripts/demo-live.sh
    echo
    echo "================ the sample dumps in $fixtures ================"
fi
work="$(mktemp -d "${KDIAG_DEMO_TMP:-${TMPDIR:-/tmp}}/kdiag-demo.XXXXXX")"
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

names=()
dumps=()
for dir in "$fixtures"/*/; do
    name="$(basename "$dir")"
    if [[ -f "$dir/vmcore" ]]; then
        dumps+=("$dir/vmcore")
    elif [[ -f "$dir/vmcore.zst" ]]; then
        (umask 077; zstd -q -d --long=31 "$dir/vmcore.zst" -o "$work/$name.vmcore")
        dumps+=("$work/$name.vmcore")
    else
        continue
    fi
    names+=("$name")
done
if [[ ${#dumps[@]} -eq 0 ]]; then
    echo "no dumps found under $fixtures" >&2
    exit 1
fi

table="$work/table.tsv"
for i in "${!dumps[@]}"; do
    name="${names[$i]}" dump="${dumps[$i]}"
    echo "================ $name ================"
    start=$(date +%s.%N)
    "$kdiag" analyze --lines 12 "$dump"
    end=$(date +%s.%N)
    "$kdiag" analyze --json "$dump" >"$work/analyze.json"
    "$python" scripts/demo_report.py row "$name" "$start" "$end" "$work/analyze.json" >>"$table"
    echo
done

echo "================ summary: one line per dump ================"
"$python" scripts/demo_report.py table "$table"
