#!/usr/bin/env bash
# The main job, live: a lab guest stands in for a frozen server. kdiag checks it is ready,
# an IAM user with a resource-level policy asks kdiag's EC2-compatible endpoint (through the
# unmodified aws CLI and `kdiag send`) for a diagnostic interrupt, the NMI goes out over QMP,
# the guest panics, kdump saves a vmcore, the guest comes back, and kdiag triages the dump.
#
# Everything runs in a private directory, $KDIAG_DEMO_TMP/kdiag-demo.XXXXXX (default under
# $TMPDIR or /tmp): the state dir, the guest, its QMP socket and the endpoint's log. Whatever
# happens (an error, Ctrl-C, SIGTERM), the cleanup stops the endpoint, takes the guest down and
# removes that directory, every step regardless of how the others went. The guest image build
# is cached in ~/.cache/kdiag.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/.venv/bin"
kdiag="$bin/kdiag"
report="$bin/python scripts/demo_report.py"
work="$(mktemp -d "${KDIAG_DEMO_TMP:-${TMPDIR:-/tmp}}/kdiag-demo.XXXXXX")"
# demo.sh hands its own state directory (KDIAG_DEMO_STATE) so that its ending can show the
# drill's report and the dump catalog; run alone, the state lives and dies with $work.
export KDIAG_STATE_DIR="${KDIAG_DEMO_STATE:-$work/state}"
guest="$KDIAG_STATE_DIR/lab/demo"
serve_pid=""
drill_pid=""

# The guest's processes by the pids the lab recorded (used only if `kdiag lab down` fails).
kill_guest() {
    [[ -f "$guest/state.json" ]] || return 0
    "$bin/python" - "$guest/state.json" <<'PY'
import contextlib, json, os, signal, sys
state = json.load(open(sys.argv[1]))
for key in ("qemu_pid", "supervisor_pid"):
    if isinstance(state.get(key), int):
        with contextlib.suppress(ProcessLookupError):
            os.kill(state[key], signal.SIGKILL)
PY
}

cleanup() {
    local status=$?
    set +e  # every step runs, whatever the one before it returned
    trap - EXIT INT TERM
    if [[ -n "$drill_pid" ]]; then
        kill "$drill_pid" 2>/dev/null
        wait "$drill_pid" 2>/dev/null
    fi
    if [[ -n "$serve_pid" ]]; then
        kill "$serve_pid" 2>/dev/null
        wait "$serve_pid" 2>/dev/null
    fi
    "$kdiag" lab down demo >/dev/null 2>&1 || kill_guest
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
step() { printf '\n== %s\n' "$*"; }

step "build the lab guest (Debian kernel, kexec-tools, makedumpfile; cached)"
"$kdiag" lab build
step "boot it with kdump armed"
"$kdiag" lab up --name demo

step "is it ready for an NMI? (kdiag doctor --for nmi on the facts the guest collected at boot)"
{ "$kdiag" doctor --for nmi --facts "$guest/facts.json" --json || true; } | $report checks
echo "  (the lab guest has no distribution kdump service, so kdump-service and core-collector fail)"

step "an on-call user allowed to list instances and to interrupt those tagged with their own name"
cat >"$work/nmi.json" <<'JSON'
{"Version": "2012-10-17",
 "Statement": [{"Effect": "Allow", "Action": "ec2:SendDiagnosticInterrupt",
                "Resource": "arn:aws:ec2:*:*:instance/*",
                "Condition": {"StringEquals": {"aws:ResourceTag/Owner": "${aws:username}"}}},
               {"Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"},
               {"Effect": "Allow", "Resource": "*",
                "Action": ["kdiag:ListFleet", "kdiag:GetDrill", "kdiag:ListDumps", "kdiag:GetDump"]}]}
JSON
"$kdiag" iam create-user oncall
(umask 077; "$kdiag" iam create-access-key oncall --json >"$work/key.json")
"$kdiag" iam put-user-policy oncall --policy-name nmi --policy-document "file://$work/nmi.json"
id="$("$kdiag" instances add --backend qmp --target "$guest/qmp.sock" --tag Owner=oncall)"
other="$("$kdiag" instances add --backend fake --target demo-other --tag Owner=someone-else)"

step "start the EC2-compatible endpoint on loopback"
port="$("$bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$kdiag" serve --port "$port" >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 300); do
    "$bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
    sleep 0.1
done
head -n 1 "$work/serve.log"
endpoint="http://127.0.0.1:$port"
"$bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' "$endpoint/console/signin"
echo "  the console, while this demo runs: $endpoint/console/ (sign in as oncall: AccessKeyId and"
echo "  SecretAccessKey from $work/key.json)"
export KDIAG_ENDPOINT="$endpoint" AWS_DEFAULT_REGION=us-east-1
AWS_ACCESS_KEY_ID="$($report key AccessKeyId "$work/key.json")"
AWS_SECRET_ACCESS_KEY="$($report key SecretAccessKey "$work/key.json")"
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null  # not yours, only these

step "the aws CLI, unmodified: aws ec2 describe-instances"
"$bin/aws" ec2 describe-instances --endpoint-url "$endpoint" --output text \
    --query 'Reservations[].Instances[].[InstanceId, State.Name, Tags[?Key==`Owner`]|[0].Value]'

step "someone else's instance: denied (kdiag send exits 3)"
status=0
"$kdiag" send "$other" || status=$?
echo "  exit $status"
[[ $status == 3 ]]
step "a dry run, then the real NMI: aws ec2 send-diagnostic-interrupt, followed by kdiag drill"
"$kdiag" send --verbose --dry-run "$id"
# `kdiag drill --watch` sends nothing itself: it watches the guest from before the NMI, takes
# the aws CLI's request from the audit log as its send step, then times the panic, the
# capture and reboot, finds the new vmcore and triages it.  Its progress is the wait.
"$kdiag" drill "$id" --watch --timeout 300 >"$work/drill.txt" 2>"$work/drill.log" &
drill_pid=$!
for _ in $(seq 600); do
    grep -q "waiting for an NMI" "$work/drill.log" && break
    kill -0 "$drill_pid" 2>/dev/null || break
    sleep 0.1
done
tail -n +1 -f --pid="$drill_pid" "$work/drill.log" &
tail_pid=$!
nmi_at=$(date +%s)
"$bin/aws" ec2 send-diagnostic-interrupt --endpoint-url "$endpoint" --instance-id "$id"
status=0
wait "$drill_pid" || status=$?
drill_pid=""
wait "$tail_pid"
step "the drill's report (kdiag drill: exit $status)"
cat "$work/drill.txt"
if [[ -n "${KDIAG_DEMO_STATE:-}" ]]; then cp "$work/drill.txt" "$KDIAG_DEMO_STATE/drill-report.txt"; fi
if [[ $status != 0 ]]; then
    echo "the drill failed; console:" >&2
    tail -n 40 "$guest/console.log" >&2
    exit 1
fi
dump="$("$kdiag" lab status demo --json | $report last-dump)"
echo "  vmcore saved $(( $(date +%s) - nmi_at )) s after the NMI (the guest is back): ${dump#"$KDIAG_STATE_DIR/"}"
ls -l "$(dirname "$dump")" | tail -n +2

step "triage (no debuginfo)"
"$kdiag" analyze --lines 8 "$dump"

step "the audit trail: every request, allowed or not"
"$kdiag" audit --json | $report audit

step "stop the endpoint (SIGTERM: a graceful stop, exit 0)"
kill "$serve_pid"
status=0
wait "$serve_pid" || status=$?
serve_pid=""
tail -n 1 "$work/serve.log"
if [[ $status != 0 ]]; then
    echo "kdiag serve exited with status $status after SIGTERM" >&2
    exit 1
fi
