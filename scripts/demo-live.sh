#!/usr/bin/env bash
# The main job, live: a lab guest stands in for a frozen server. kdiag checks it is ready,
# an IAM user with a resource-level policy asks kdiag's EC2-compatible endpoint for a
# diagnostic interrupt, the NMI goes out over QMP, the guest panics, kdump saves a vmcore,
# the guest comes back, and kdiag triages the dump. Everything runs in a private state
# directory that is removed at the end; the guest image build is cached (~/.cache/kdiag).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/.venv/bin"
kdiag="$bin/kdiag"
report="$bin/python scripts/demo_report.py"
work="$(mktemp -d /tmp/kdiag-demo.XXXXXX)"
export KDIAG_STATE_DIR="$work/state"
serve_pid=""
cleanup() {
    [[ -n "$serve_pid" ]] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
    "$kdiag" lab down demo >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "build the lab guest (Debian kernel, kexec-tools, makedumpfile; cached)"
"$kdiag" lab build
step "boot it with kdump armed"
"$kdiag" lab up --name demo
guest="$KDIAG_STATE_DIR/lab/demo"

step "is it ready for an NMI? (kdiag doctor --for nmi on the facts the guest collected at boot)"
{ "$kdiag" doctor --for nmi --facts "$guest/facts.json" --json || true; } | $report checks
echo "  (the lab guest has no distribution kdump service, so kdump-service and core-collector fail)"

step "an on-call user allowed to interrupt the instances tagged with their own name"
cat >"$work/nmi.json" <<'JSON'
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Action": "ec2:SendDiagnosticInterrupt",
                "Resource": "arn:aws:ec2:*:*:instance/*",
                "Condition": {"StringEquals": {"aws:ResourceTag/Owner": "${aws:username}"}}}]}
JSON
"$kdiag" iam create-user oncall
(umask 077; "$kdiag" iam create-access-key oncall --json >"$work/key.json")
"$kdiag" iam put-user-policy oncall --policy-name nmi --policy-document "file://$work/nmi.json"
id="$("$kdiag" instances add --backend qmp --target "$guest/qmp.sock" --tag Owner=oncall)"
other="$("$kdiag" instances add --backend fake --target demo-other --tag Owner=someone-else)"
"$kdiag" instances list

step "start the EC2-compatible endpoint on loopback"
port="$("$bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$kdiag" serve --port "$port" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do
    "$bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.1
done
export KDIAG_ENDPOINT="http://127.0.0.1:$port" AWS_DEFAULT_REGION=us-east-1
AWS_ACCESS_KEY_ID="$($report key AccessKeyId "$work/key.json")"
AWS_SECRET_ACCESS_KEY="$($report key SecretAccessKey "$work/key.json")"
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_EC2_METADATA_DISABLED=true

step "someone else's instance: denied"
set +e
"$kdiag" send "$other"
echo "  exit $? (3 = access denied)"
set -e
step "dry run, then the real NMI"
"$kdiag" send --verbose --dry-run "$id"
nmi_at=$(date +%s)
"$kdiag" send --verbose "$id"

step "waiting for the panic, kdump and the vmcore"
dump=""
for _ in $(seq 600); do
    dump="$("$kdiag" lab status demo --json | $report last-dump)"
    [[ -n "$dump" ]] && break
    sleep 0.5
done
if [[ -z "$dump" ]]; then
    echo "no vmcore after 300 s; console: $guest/console.log" >&2
    exit 1
fi
echo "  vmcore saved $(( $(date +%s) - nmi_at )) s after the NMI: $dump"
ls -l "$(dirname "$dump")"

step "triage (no debuginfo)"
"$kdiag" analyze --lines 8 "$dump"

step "the audit trail: every request, allowed or not"
"$kdiag" audit --json | $report audit
