"""``kdiag fleet doctor --via ssm``: the real boto3 talks to a loopback HTTP server that speaks
SSM's documented JSON 1.1 protocol (``X-Amz-Target: AmazonSSM.SendCommand`` /
``AmazonSSM.GetCommandInvocation``) and plays the SSM agent: it runs the commands it is sent
with /bin/sh (against a readiness test tree, through ``kdiag_collect_root``), answers
InvocationDoesNotExist, Pending, InProgress, then Success or Failed, truncates stdout at the
documented 24,000 characters, refuses unknown instances with InvalidInstanceId, and never
finishes for one instance (a timeout).  This verifies the contract, not live AWS.

Oracle: the Python facts reader (``facts.read_root``) judged by the same checks."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kdiag.cli.main import run
from kdiag.fleet.ssm import SSM_STDOUT_LIMIT, SSMOptions, fleet_doctor_ssm
from tests.fleet.test_doctor import expected_failing
from tests.readiness.trees import rhel9_ready, rhel9_unprepared

READY, UNPREPARED, BROKEN, HUNG, GONE = (
    "i-0a0000000000000a1",
    "i-0b0000000000000b2",
    "i-0c0000000000000c3",
    "i-0d0000000000000d4",
    "i-0e0000000000000e5",
)


@dataclass
class FakeSSM:
    """The server's state: which instances exist and how they behave, what was asked."""

    behaviour: dict[str, str]
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def answer(self, target: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append((target, body))
        if target == "AmazonSSM.SendCommand":
            return self.send(body)
        if target == "AmazonSSM.GetCommandInvocation":
            return self.invocation(body)
        return 400, {"__type": "UnknownOperationException", "message": target}

    def send(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        ids = body.get("InstanceIds", [])
        if body.get("DocumentName") != "AWS-RunShellScript" or len(ids) != 1:
            return 400, {"__type": "InvalidParameters", "message": "bad request"}
        instance = ids[0]
        mode = self.behaviour.get(instance)
        if mode is None:
            return 400, {
                "__type": "InvalidInstanceId",
                "Message": f"Instances [[{instance}]] not in a valid state for account",
            }
        commands = body["Parameters"]["commands"]
        assert all(isinstance(c, str) for c in commands)
        script = "\n".join(commands)
        if mode == "fail":
            script = "echo 'sh: collect: Permission denied' >&2; exit 126"
        if mode == "hang":
            proc = None
        else:
            proc = subprocess.run(
                ["/bin/sh", "-c", script], capture_output=True, text=True, timeout=60, check=False
            )
        command_id = str(uuid.uuid4())
        with self.lock:
            self.commands[command_id] = {"instance": instance, "proc": proc, "polls": 0}
        return 200, {
            "Command": {
                "CommandId": command_id,
                "DocumentName": "AWS-RunShellScript",
                "InstanceIds": [instance],
                "Status": "Pending",
                "StatusDetails": "Pending",
            }
        }

    def invocation(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            cmd = self.commands.get(body.get("CommandId", ""))
            if cmd is None or cmd["instance"] != body.get("InstanceId"):
                return 400, {"__type": "InvocationDoesNotExist"}
            cmd["polls"] += 1
            polls = cmd["polls"]
        base = {
            "CommandId": body["CommandId"],
            "InstanceId": body["InstanceId"],
            "DocumentName": "AWS-RunShellScript",
            "PluginName": "aws:runShellScript",
            "ResponseCode": -1,
            "StandardOutputContent": "",
            "StandardErrorContent": "",
        }
        if polls == 1:  # documented: right after SendCommand the invocation may not exist yet
            return 400, {"__type": "InvocationDoesNotExist"}
        proc = cmd["proc"]
        if polls == 2:
            return 200, {**base, "Status": "Pending", "StatusDetails": "Pending"}
        if polls == 3 or proc is None:
            return 200, {**base, "Status": "InProgress", "StatusDetails": "InProgress"}
        status = "Success" if proc.returncode == 0 else "Failed"
        return 200, {
            **base,
            "Status": status,
            "StatusDetails": status,
            "ResponseCode": proc.returncode,
            "StandardOutputContent": proc.stdout[:SSM_STDOUT_LIMIT],
            "StandardErrorContent": proc.stderr[:SSM_STDOUT_LIMIT],
        }


def _serve(state: FakeSSM) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            assert self.headers["Content-Type"] == "application/x-amz-json-1.1"
            assert self.headers["Authorization"].startswith("AWS4-HMAC-SHA256 ")
            code, doc = state.answer(self.headers.get("X-Amz-Target", ""), body)
            data = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    return server


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeSSM]:
    state = FakeSSM({READY: "run", UNPREPARED: "run", BROKEN: "fail", HUNG: "hang"})
    server = _serve(state)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret-example",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL_SSM": state.url,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def _client() -> Any:
    import boto3

    return boto3.client("ssm", region_name="eu-west-1")


def test_collector_over_ssm_judges_each_host_and_reports_each_failure(
    fake: FakeSSM, tmp_path: Path
) -> None:
    ready, unprepared = rhel9_ready(tmp_path / "ready"), rhel9_unprepared(tmp_path / "unprep")
    hosts = {
        "ready": {"instance_id": READY, "kdiag_collect_root": str(ready)},
        "unprepared": {"instance_id": UNPREPARED, "kdiag_collect_root": str(unprepared)},
        "broken": {"instance_id": BROKEN},
        "hung": {"instance_id": HUNG},
        "gone": {"instance_id": GONE},
        "no-ssm": {"ansible_host": "10.0.0.9"},
    }
    # a small chunk so that a facts document takes several answers
    opts = SSMOptions(timeout=3.0, poll=0.05, chunk=500)
    report = fleet_doctor_ssm("inv", hosts, options=opts, client=_client(), forks=6)
    got = {h.host: h for h in report.hosts}
    assert [h.host for h in report.hosts] == list(hosts)
    assert got["ready"].status == "pass"
    assert list(got["ready"].failing) == expected_failing(ready) == []
    assert got["unprepared"].status == "fail"
    assert list(got["unprepared"].failing) == expected_failing(unprepared)
    assert got["unprepared"].failing
    assert got["broken"].status == "error"
    assert "Failed" in (got["broken"].message or "")
    assert "Permission denied" in (got["broken"].message or "")
    assert got["hung"].status == "unreachable"
    assert "no answer within 3 s" in (got["hung"].message or "")
    assert got["gone"].status == "unreachable"
    assert "not a running, SSM-managed instance" in (got["gone"].message or "")
    assert got["no-ssm"].status == "error"
    assert "instance_id" in (got["no-ssm"].message or "")
    # the requests: documented operations and parameters, several chunks, the file removed
    targets = {t for t, _ in fake.requests}
    assert targets == {"AmazonSSM.SendCommand", "AmazonSSM.GetCommandInvocation"}
    sends = [b for t, b in fake.requests if t == "AmazonSSM.SendCommand"]
    to_ready = [b for b in sends if b["InstanceIds"] == [READY]]
    assert len(to_ready) >= 3  # the collector, then follow-up chunks
    assert all(b["DocumentName"] == "AWS-RunShellScript" for b in sends)
    assert "rm -f" in to_ready[-1]["Parameters"]["commands"][-1]
    assert "dd if=" in to_ready[1]["Parameters"]["commands"][0]
    assert not list(Path("/tmp").glob("kdiag-ssm-*"))  # nothing left on the "hosts"
    polls = [b for t, b in fake.requests if t == "AmazonSSM.GetCommandInvocation"]
    assert all(set(b) == {"CommandId", "InstanceId"} for b in polls)


def test_the_default_chunk_fits_the_documented_stdout_limit(fake: FakeSSM, tmp_path: Path) -> None:
    unprepared = rhel9_unprepared(tmp_path / "unprep")
    hosts = {"unprepared": {"instance_id": UNPREPARED, "kdiag_collect_root": str(unprepared)}}
    report = fleet_doctor_ssm(
        "inv", hosts, options=SSMOptions(poll=0.05, timeout=10), client=_client()
    )
    assert list(report.hosts[0].failing) == expected_failing(unprepared)
    answers = [b for t, b in fake.requests if t == "AmazonSSM.SendCommand"]
    assert len(answers) == 1  # a readiness document fits in the first answer


def test_cli_via_ssm_records_the_run(
    fake: FakeSSM,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ready = rhel9_ready(tmp_path / "ready")
    inv = tmp_path / "ec2.ini"
    inv.write_text(
        f"[ec2]\nweb-1 instance_id={READY} kdiag_collect_root={ready}\nweb-2 instance_id={GONE}\n"
    )
    monkeypatch.setenv("KDIAG_DB", f"sqlite:///{tmp_path / 'k.db'}")
    monkeypatch.setenv("KDIAG_STATE_DIR", str(tmp_path / "state"))
    code = run(["fleet", "doctor", "-i", str(inv), "--via", "ssm", "--region", "eu-west-1",
                "--json"])  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert doc["counts"] == {"pass": 1, "fail": 0, "unreachable": 1, "error": 0}
    assert doc["findings"] == {"unreachable": ["web-2"]}
    assert run(["fleet", "doctor", "-i", str(inv), "--via", "smoke-signals"]) == 2
