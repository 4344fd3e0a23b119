#!/usr/bin/env bash
# `make demo`: the main job live on a lab guest (scripts/demo-live.sh: doctor, IAM policy,
# EC2-compatible endpoint, the aws CLI's NMI over QMP followed by `kdiag drill --watch`: panic,
# kdump, reboot, vmcore, triage; audit), then triage every sample crash dump with `kdiag
# analyze`, one line per dump (the summary table), and end with the drill's report and the
# dump catalog's groups (`kdiag dumps group` over the drill's dump and the sample dumps).
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
# one state directory (database, lab guest) for the whole demo: its ending shows the drill's
# report and the dump catalog, which holds the drill's dump and the sample dumps
export KDIAG_STATE_DIR="$work/state" KDIAG_DEMO_STATE="$work/state"
mkdir -m 700 "$KDIAG_STATE_DIR"
if [[ "${KDIAG_DEMO_LIVE:-1}" != 0 ]]; then
    bash scripts/demo-live.sh
    echo
    echo "================ the sample dumps in $fixtures ================"
fi

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

if [[ -f "$KDIAG_STATE_DIR/drill-report.txt" ]]; then
    echo
    echo "================ the fire drill (kdiag drill --watch, the live part) ================"
    cat "$KDIAG_STATE_DIR/drill-report.txt"
fi
echo
echo "================ the dump catalog: kdiag dumps group ================"
# the drill catalogued its dump; the sample dumps join it here, grouped by crash signature
"$kdiag" dumps scan "${dumps[@]}" >/dev/null
COLUMNS=200 "$kdiag" dumps group --output table
