#!/usr/bin/env bash
# `make demo`: the main job live on a lab guest (scripts/demo-live.sh: doctor, IAM policy,
# EC2-compatible endpoint, NMI over QMP, kdump, triage, audit), then triage every sample crash
# dump with `kdiag analyze`, with one line per dump at the end.
#
# Dumps come from $KDIAG_FIXTURES (default ../shared/fixtures/vmcores), one folder each with a
# `vmcore` or a zstd-compressed ELF `vmcore.zst`, which is decompressed to a temporary
# directory first. To add dumps (for example lab guests), append paths to DUMPS below.
set -euo pipefail
cd "$(dirname "$0")/.."
fixtures="${KDIAG_FIXTURES:-../shared/fixtures/vmcores}"
kdiag=.venv/bin/kdiag
if [[ "${KDIAG_DEMO_LIVE:-1}" != 0 ]]; then
    bash scripts/demo-live.sh
    echo
    echo "================ the sample dumps in $fixtures ================"
fi
python=.venv/bin/python
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

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
    json="$("$kdiag" analyze --json "$dump")"
    "$python" - "$name" "$start" "$end" "$json" >>"$table" <<'PY'
import json, sys
name, start, end, doc = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4])
panic = doc["panic"]
print("\t".join([name, panic["class"], panic["signature_id"], panic["signature"],
                 f"{end - start:.3f}s"]))
PY
    echo
done

echo "================ summary ================"
"$python" - "$table" <<'PY'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
head = ["DUMP", "CLASS", "ID", "SIGNATURE", "TIME"]
widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
for row in [head] + rows:
    print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
PY
