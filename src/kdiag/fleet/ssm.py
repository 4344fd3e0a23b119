"""``kdiag fleet doctor --via ssm``: the readiness collector through AWS Systems Manager Run
Command, for EC2 hosts without SSH.

Each inventory host carrying an EC2 ``instance_id`` (the ``aws_ec2`` inventory plugin sets it;
``kdiag_instance_id`` works too) is sent ``AWS-RunShellScript`` (``ssm.send_command``) and
polled with ``get_command_invocation`` until the invocation ends; the facts document is
judged here by the same checks as over Ansible (:func:`kdiag.fleet.doctor.evaluate`).

Output size: ``GetCommandInvocation`` returns at most the first 24,000 characters of
stdout.  The collector's JSON is therefore gzip-compressed and base64-encoded on the host
into a private file (``/tmp/kdiag-ssm-<random token>.b64``, mode 0600), the first command
prints its length and its first :data:`CHUNK` characters, and, when longer, follow-up
commands print the next chunks (``dd bs=CHUNK skip=K``); the last one removes the file.
A facts document fits in the first answer with room to spare (this build machine's: 8.6 KB
of JSON, 3.4 KB encoded; the readiness test trees': 2-3 KB encoded).

Verified against the documented API contract (a loopback server speaking SSM's JSON
protocol to the real boto3), not against live AWS.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import gzip
import re
import secrets
import time
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kdiag.errors import BackendUnavailable, ConfigError
from kdiag.fleet.ansible import TaskResult
from kdiag.fleet.doctor import FleetReport, HostVerdict, evaluate
from kdiag.readiness import facts as facts_mod
from kdiag.readiness.checks import PURPOSES

__all__ = ("CHUNK", "SSMOptions", "collect_script", "fleet_doctor_ssm", "instance_of")

#: characters of encoded output per answer (SSM returns at most 24,000 of stdout)
CHUNK = 20_000
#: the documented cap of StandardOutputContent in GetCommandInvocation
SSM_STDOUT_LIMIT = 24_000
_DOCUMENT = "AWS-RunShellScript"
_DONE = frozenset({"Success", "Failed", "Cancelled", "TimedOut", "Cancelling"})
_UNDELIVERED = frozenset({"Undeliverable", "Terminated", "DeliveryTimedOut"})
_INSTANCE = re.compile(r"i-[0-9a-f]{8,17}")
_ROOT = re.compile(r"/[A-Za-z0-9_./-]{0,500}")
_EOF = "KDIAG_COLLECTOR_EOF"


@dataclass(frozen=True)
class SSMOptions:
    """How to reach SSM: the region, and how long one host may take."""

    region: str | None = None
    timeout: float = 300.0
    poll: float = 2.0
    chunk: int = CHUNK


def instance_of(hostvars: Mapping[str, Any]) -> str | None:
    """The EC2 instance id of an inventory host (``instance_id``, ``kdiag_instance_id``)."""
    for key in ("instance_id", "kdiag_instance_id"):
        value = hostvars.get(key)
        if isinstance(value, str) and _INSTANCE.fullmatch(value):
            return value
    return None


def _file(token: str) -> str:
    return f"/tmp/kdiag-ssm-{token}"  # noqa: S108 - on the host: random name, umask 077


def collect_script(token: str, root: str, chunk: int) -> list[str]:
    """The first command: run the collector, keep its encoded output, print the start."""
    collector = facts_mod.collector_source()
    if _EOF in collector:  # pragma: no cover - the collector is kdiag's own
        raise ConfigError("the collector contains the here-document delimiter")
    f = _file(token)
    return [
        "umask 077",
        f"F={f}",
        f"cat > \"$F.sh\" <<'{_EOF}'\n{collector.rstrip()}\n{_EOF}",
        f"KDIAG_ROOT='{root}' sh \"$F.sh\" | gzip -c | base64 | tr -d '\\n' > \"$F.b64\"",
        'rc=$?; rm -f "$F.sh"',
        'n=$(wc -c < "$F.b64" | tr -d " ")',
        'echo "kdiag-ssm $n"',
        f'head -c {chunk} "$F.b64"; echo',
        f'if [ "$n" -le {chunk} ]; then rm -f "$F.b64"; fi',
        "exit $rc",
    ]


def _chunk_script(token: str, index: int, chunk: int, last: bool) -> list[str]:
    f = _file(token)
    lines = [f'dd if="{f}.b64" bs={chunk} skip={index} count=1 2>/dev/null; echo']
    if last:
        lines.append(f'rm -f "{f}.b64"')
    return lines


class _HostFailed(Exception):
    def __init__(self, outcome: str, message: str, rc: int | None = None) -> None:
        super().__init__(message)
        self.outcome, self.message, self.rc = outcome, message, rc


def make_client(region: str | None) -> Any:
    """A boto3 SSM client (``AWS_ENDPOINT_URL_SSM`` and the usual credential chain apply)."""
    try:
        import boto3  # noqa: PLC0415 - optional extra (kdiag[aws])
    except ImportError:
        raise BackendUnavailable("boto3 is not installed (pip install 'kdiag[aws]')") from None
    return boto3.client("ssm", region_name=region)


def _boto_errors() -> tuple[type[Exception], ...]:
    try:
        from botocore.exceptions import (  # noqa: PLC0415 - optional extra (kdiag[aws])
            BotoCoreError,
            ClientError,
        )
    except ImportError:
        raise BackendUnavailable("boto3 is not installed (pip install 'kdiag[aws]')") from None
    return (BotoCoreError, ClientError)


def _error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def _run(client: Any, instance: str, commands: list[str], opts: SSMOptions) -> str:
    """Send one command to one instance, wait for it; its stdout (a _HostFailed otherwise)."""
    errors = _boto_errors()
    deadline = time.monotonic() + opts.timeout
    try:
        sent = client.send_command(
            InstanceIds=[instance],
            DocumentName=_DOCUMENT,
            Parameters={"commands": commands},
            TimeoutSeconds=max(30, int(opts.timeout)),
            Comment="kdiag fleet doctor",
        )
    except errors as exc:
        code = _error_code(exc)
        if code == "InvalidInstanceId":
            raise _HostFailed(
                "unreachable", f"{instance}: not a running, SSM-managed instance"
            ) from None
        raise _HostFailed("failed", f"{instance}: SendCommand: {code or exc}") from None
    command_id = str(sent["Command"]["CommandId"])
    while True:
        time.sleep(opts.poll)
        try:
            got = client.get_command_invocation(CommandId=command_id, InstanceId=instance)
        except errors as exc:
            code = _error_code(exc)
            if code != "InvocationDoesNotExist":  # documented: briefly, right after sending
                why = f"{instance}: GetCommandInvocation: {code or exc}"
                raise _HostFailed("failed", why) from None
            got = {"Status": "Pending"}
        status = str(got.get("Status", ""))
        detail = str(got.get("StatusDetails", status))
        if status == "Success":
            return str(got.get("StandardOutputContent", ""))
        if status in _DONE or detail in _UNDELIVERED:
            outcome = "unreachable" if detail in _UNDELIVERED else "failed"
            lines = str(got.get("StandardErrorContent", "")).strip().splitlines()
            rc = got.get("ResponseCode")
            raise _HostFailed(
                outcome,
                f"{instance}: {detail}" + (f": {lines[-1][:300]}" if lines else ""),
                int(rc) if isinstance(rc, int) and rc >= 0 else None,
            )
        if time.monotonic() > deadline:
            raise _HostFailed("unreachable", f"{instance}: no answer within {opts.timeout:.0f} s")


def _collect(client: Any, instance: str, root: str, opts: SSMOptions) -> str:
    """The collector's stdout from one instance, reassembled from its chunks."""
    token = secrets.token_hex(8)
    first = _run(client, instance, collect_script(token, root, opts.chunk), opts)
    head, _, rest = first.partition("\n")
    parts = head.split()
    if len(parts) != 2 or parts[0] != "kdiag-ssm" or not parts[1].isdigit():
        raise _HostFailed("failed", f"{instance}: no collector output ({head[:200]!r})")
    total = int(parts[1])
    if total > 64 * 1024 * 1024:
        raise _HostFailed("failed", f"{instance}: collector output of {total} bytes refused")
    data = rest.strip()[: opts.chunk]
    count = -(-total // opts.chunk)
    for index in range(1, count):
        more = _run(
            client, instance, _chunk_script(token, index, opts.chunk, index == count - 1), opts
        )
        data += more.strip()[: opts.chunk]
    if len(data) != total:
        raise _HostFailed("failed", f"{instance}: got {len(data)} of {total} characters")
    try:
        raw = gzip.decompress(base64.b64decode(data, validate=True))
    except (binascii.Error, OSError, EOFError, zlib.error) as exc:
        raise _HostFailed("failed", f"{instance}: undecodable collector output: {exc}") from None
    return raw.decode("utf-8", "replace")


def _host_result(
    client: Any, host: str, hostvars: Mapping[str, Any], opts: SSMOptions
) -> TaskResult:
    instance = instance_of(hostvars)
    if instance is None:
        return TaskResult(
            host, "kdiag collect", "failed", False, None, "", "", "no EC2 instance_id host variable"
        )
    root = str(hostvars.get("kdiag_collect_root") or "")
    if root and not _ROOT.fullmatch(root):
        return TaskResult(
            host, "kdiag collect", "failed", False, None, "", "", "bad kdiag_collect_root"
        )
    try:
        stdout = _collect(client, instance, root, opts)
    except _HostFailed as exc:
        return TaskResult(host, "kdiag collect", exc.outcome, False, exc.rc, "", "", exc.message)
    return TaskResult(host, "kdiag collect", "ok", False, 0, stdout, "", "")


Progress = Callable[[HostVerdict, int, int], None]


def fleet_doctor_ssm(
    inventory: str,
    hosts: Mapping[str, Mapping[str, Any]],
    *,
    limit: str | None = None,
    forks: int = 5,
    purpose: str = "nmi",
    options: SSMOptions | None = None,
    client: Any = None,
    progress: Progress | None = None,
) -> FleetReport:
    """``kdiag fleet doctor`` over SSM Run Command: ``hosts`` are the inventory's hosts with
    their variables (:func:`kdiag.fleet.ansible.list_hosts`).  A host without an instance
    id, or one SSM cannot reach, is a finding, never a crash.

    :raises ConfigError: no hosts, a bad purpose.
    :raises BackendUnavailable: boto3 is not installed.
    """
    if purpose not in PURPOSES:
        raise ConfigError(f"--for must be one of {', '.join(PURPOSES)}")
    if not hosts:
        raise ConfigError(f"-i {inventory}: the inventory has no hosts")
    opts = options or SSMOptions()
    ssm = client if client is not None else make_client(opts.region)
    started = dt.datetime.now(dt.UTC)
    names = list(hosts)
    verdicts: dict[str, HostVerdict] = {}

    def one(name: str) -> HostVerdict:
        return evaluate(name, _host_result(ssm, name, hosts[name], opts), purpose)

    with ThreadPoolExecutor(max_workers=max(1, forks)) as pool:
        for name, verdict in zip(names, pool.map(one, names), strict=True):
            verdicts[name] = verdict
            if progress is not None:
                progress(verdict, len(verdicts), len(names))
    return FleetReport(
        inventory,
        limit,
        purpose,
        tuple(verdicts[n] for n in names),
        started,
        dt.datetime.now(dt.UTC),
    )
