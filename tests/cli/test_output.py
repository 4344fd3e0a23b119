"""Output for people and for pipes: --output json|text|table, --query, KDIAG_OUTPUT, and tables
that never cut an id or a path.  Most tests run the real console script through a pipe (or a
pseudo-terminal), as a user's shell would."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kdiag.cli._output import Column, emit, render_table
from kdiag.store import Store
from kdiag.store.records import AuditEntry

KDIAG = str(Path(sys.executable).with_name("kdiag"))
DENIED = 8
LONG_SOCKET = "/srv/kdiag/guests/a-rather-long-directory-name/for-a-guest-with-a-long-name/qmp.sock"
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "ec2:SendDiagnosticInterrupt", "Resource": "*"}
        ],
    }
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A real SQLite store with a user, two keys, an instance with a long socket path, and
    an audit log of one sent NMI and eight denied ones (as in issue 9)."""
    root = tmp_path_factory.mktemp("output")
    url = f"sqlite:///{root / 'kdiag.db'}"
    environ = {
        **os.environ,
        "KDIAG_DB": url,
        "KDIAG_STATE_DIR": str(root / "state"),
        "COLUMNS": "80",
    }
    environ.pop("KDIAG_OUTPUT", None)
    with Store.open(url, key_file=root / "key") as store:
        user = store.create_user("oncall-engineer-with-a-long-name")
        store.put_user_policy(user.name, "nmi", POLICY)
        store.create_access_key(user.name)
        store.create_access_key(user.name)
        inst = store.add_instance(
            backend="fake", target={"address": LONG_SOCKET}, tags={"Owner": user.name}
        )
        environ["TEST_INSTANCE"] = inst.id
        environ["TEST_PRINCIPAL"] = user.arn
        store.record_audit(
            AuditEntry(
                action="SendDiagnosticInterrupt",
                outcome="sent",
                principal=user.arn,
                source_ip="127.0.0.1",
                instance_id=inst.id,
                decision="allow",
                latency_ms=4.2,
            )
        )
        for n in range(DENIED):
            store.record_audit(
                AuditEntry(
                    action="SendDiagnosticInterrupt",
                    outcome="denied",
                    principal="arn:aws:iam::123456789012:user/mallory",
                    source_ip=f"10.0.0.{n}",
                    instance_id=inst.id,
                    decision="deny",
                    error_code="UnauthorizedOperation",
                    message="no statement allows ec2:SendDiagnosticInterrupt",
                    latency_ms=0.5,
                )
            )
    return environ


def kdiag(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [KDIAG, *args], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def test_audit_through_grep_finds_every_denied_row(env):
    """``kdiag audit | grep UnauthorizedOperation``, in a real shell pipeline."""
    shell = shutil.which("sh")
    assert shell is not None
    proc = subprocess.run(
        [shell, "-c", f"'{KDIAG}' audit | grep UnauthorizedOperation"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    lines = proc.stdout.splitlines()
    as_json = json.loads(kdiag(env, "audit", "--json"))["AuditLog"]
    assert len(lines) == DENIED == sum(r["error_code"] == "UnauthorizedOperation" for r in as_json)
    assert all(env["TEST_INSTANCE"] in line.split("\t") for line in lines)


def test_text_is_one_record_per_line_with_tabs_and_no_header(env):
    out = kdiag(env, "audit")
    assert out == kdiag(env, "audit", "--output", "text")
    lines = out.splitlines()
    assert len(lines) == DENIED + 1
    fields = [line.split("\t") for line in lines]
    assert {len(f) for f in fields} == {9}  # id, time, principal, ..., error, ms
    assert all(f[0].isdigit() for f in fields)  # the row id a DeliveryUnconfirmed names
    assert fields[0][2:8] == [
        "user/oncall-engineer-with-a-long-name",
        "127.0.0.1",
        env["TEST_INSTANCE"],
        "allow",
        "sent",
        "-",
    ]
    assert all(f[7] == "UnauthorizedOperation" for f in fields[1:])
    assert "TIME" not in out


def test_listings_default_to_text_in_a_pipe(env):
    instances = kdiag(env, "instances", "list").splitlines()
    assert instances == [
        "\t".join(
            [
                env["TEST_INSTANCE"],
                "running",
                "us-east-1a",
                "x86_64",
                "fake",
                LONG_SOCKET,
                "Owner=oncall-engineer-with-a-long-name",
            ]
        )
    ]
    (user,) = kdiag(env, "iam", "list-users").splitlines()
    name, user_id, keys, policies = user.split("\t")
    assert name == "oncall-engineer-with-a-long-name"
    assert user_id.startswith("AIDA")
    assert [k[:4] for k in keys.split(",")] == ["AKIA", "AKIA"]
    assert policies == "nmi"


def test_json_flag_is_an_alias_of_output_json(env):
    for command in (["audit"], ["instances", "list"], ["iam", "list-users"], ["iam", "list"]):
        as_flag = kdiag(env, *command, "--json")
        assert as_flag == kdiag(env, *command, "--output", "json")
        assert as_flag == kdiag(env, *command, "-o", "JSON")
        json.loads(as_flag)


def test_kdiag_output_sets_the_default(env):
    out = kdiag({**env, "KDIAG_OUTPUT": "json"}, "instances", "list")
    assert json.loads(out)["Instances"][0]["InstanceId"] == env["TEST_INSTANCE"]
    text = kdiag({**env, "KDIAG_OUTPUT": "json"}, "instances", "list", "--output", "text")
    assert text.startswith(env["TEST_INSTANCE"] + "\t")


def test_query_is_applied_to_the_json_document_before_the_format(env):
    query = "AuditLog[?error_code=='UnauthorizedOperation'].source_ip"
    assert json.loads(kdiag(env, "audit", "--query", query, "--output", "json")) == [
        f"10.0.0.{n}" for n in range(DENIED)
    ]
    # a list of plain values is one tab-separated line in text, as in the aws CLI
    assert (
        kdiag(env, "audit", "--query", query)
        == "\t".join(f"10.0.0.{n}" for n in range(DENIED)) + "\n"
    )
    # a list of lists (or of records) is one line each
    rows = kdiag(env, "audit", "--query", "AuditLog[].[outcome, instance_id]").splitlines()
    assert rows == [f"sent\t{env['TEST_INSTANCE']}"] + [f"denied\t{env['TEST_INSTANCE']}"] * DENIED
    records = kdiag(env, "audit", "--query", "AuditLog[:2].{o: outcome, ip: source_ip}")
    assert records == "sent\t127.0.0.1\ndenied\t10.0.0.0\n"
    assert kdiag(env, "iam", "list-users", "--query", "length(Users[0].AccessKeys)") == "2\n"
    # --query and --json together: the query's result, as JSON
    assert json.loads(kdiag(env, "instances", "list", "--json", "--query", "Instances[0].Tags"))


def test_query_table(env):
    query = "AuditLog[:2].{outcome: outcome, error: error_code}"
    out = kdiag(env, "audit", "--output", "table", "--query", query)
    assert out.splitlines() == [
        "outcome  error",
        "sent     None",
        "denied   UnauthorizedOperation",
    ]


def test_tables_at_80_columns_keep_whole_ids_and_paths(env):
    table = kdiag(env, "instances", "list", "--output", "table")
    header, row = table.splitlines()
    assert header.split() == ["INSTANCE", "STATE", "ZONE", "ARCH", "BACKEND", "TARGET", "TAGS"]
    assert row.split() == [
        env["TEST_INSTANCE"],
        "running",
        "us-east-1a",
        "x86_64",
        "fake",
        LONG_SOCKET,
        "Owner=oncall-engineer-with-a-long-name",
    ]
    audit = kdiag(env, "audit", "--output", "table").splitlines()
    assert len(audit) == 1 + 1 + DENIED
    assert all(env["TEST_INSTANCE"] in line.split() for line in audit[1:])
    assert audit[1].split()[2] == "user/oncall-engineer-with-a-long-name"
    users = kdiag(env, "iam", "list-users", "--output", "table").splitlines()
    keys = json.loads(kdiag(env, "iam", "list-users", "--json"))["Users"][0]["AccessKeys"]
    assert [line.split()[-2 if n == 0 else -1] for n, line in enumerate(users[1:])] == [
        k["AccessKeyId"] for k in keys
    ]
    for text in (table, "\n".join(audit), "\n".join(users)):
        assert "…" not in text
        assert "..." not in text


def test_table_is_the_default_on_a_terminal(env):
    """Under a pseudo-terminal the same command prints the aligned table with its header."""
    main, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [KDIAG, "instances", "list"],
            stdout=secondary,
            stderr=subprocess.PIPE,
            env=env,
            check=True,
            timeout=60,
        )
        os.close(secondary)
        secondary = -1
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the terminal has no writer left
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(main)
        if secondary >= 0:
            os.close(secondary)
    assert proc.stderr == b""
    lines = b"".join(chunks).decode().splitlines()
    assert lines[0].split()[:2] == ["INSTANCE", "STATE"]
    assert LONG_SOCKET in lines[1].split()


def test_lab_list_and_status_keep_long_guest_names(tmp_path, env):
    name = "guest-with-a-long-name-012345678"
    guest = tmp_path / name
    (guest / "crash" / f"{name}-2026-01-01-00:00:00").mkdir(parents=True)
    (guest / "crash" / f"{name}-2026-01-01-00:00:00" / "vmcore").write_bytes(b"")
    (guest / "guest.json").write_text(
        json.dumps(
            {"name": name, "profile": "capture-hang", "accel": "tcg", "memory_mib": 512, "cpus": 2}
        )
    )
    (guest / "status.json").write_text(json.dumps({"phase": "ready", "boots": 1, "dumps": 1}))
    root = ["--root", str(tmp_path)]
    assert kdiag(env, "lab", "list", *root).split("\t")[:3] == [name, "capture-hang", "stopped"]
    table = kdiag(env, "lab", "list", *root, "-o", "table").splitlines()
    assert table[1].split()[:2] == [name, "capture-hang"]
    status = kdiag(env, "lab", "status", name, *root, "-o", "table").splitlines()
    fields = {line[:13].strip(): line[13:] for line in status}
    assert fields["name"] == name
    assert fields["dumps saved"] == str(guest / "crash" / f"{name}-2026-01-01-00:00:00" / "vmcore")
    assert kdiag(env, "lab", "status", name, *root, "--query", "phase") == "stopped\n"
    assert json.loads(kdiag(env, "lab", "list", *root, "--json"))[0]["name"] == name


def test_render_table_folds_only_free_text_at_word_boundaries():
    rows = [
        [
            "i-0123456789abcdef0",
            "/a/very/long/path/that/must/stay/whole.sock",
            "one two three four five six",
        ]
    ]
    out = render_table(["id", "path", "note"], rows, [False, False, True], width=80)
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "PATH", "NOTE"]
    assert "i-0123456789abcdef0" in lines[1]
    assert "/a/very/long/path/that/must/stay/whole.sock" in lines[1]
    assert all(len(line) <= 80 for line in lines)
    assert len(lines) > 2  # the note folded
    notes = " ".join(line[lines[0].index("NOTE") :].strip() for line in lines[1:])
    assert notes == "one two three four five six"


def test_render_table_lets_a_line_run_long_rather_than_cut():
    path = "/" + "x" * 100
    out = render_table(["path", "note"], [[path, "short words"]], [False, True], width=40)
    assert path in out.splitlines()[1]


def test_column_values_lists_and_missing_fields():
    record = {"Id": "i-1", "Keys": ["a", "b"], "Gone": None}
    assert Column("id", "Id").cell(record) == "i-1"
    assert Column("keys", "Keys").cell(record) == ["a", "b"]
    assert Column("gone", "Gone").cell(record) is None
    out = render_table(["keys", "gone"], [[["a", "b"], None]])
    assert out.splitlines() == ["KEYS  GONE", "a     -", "b"]


def test_iam_listings_of_keys_and_policies(env):
    users = json.loads(kdiag(env, "iam", "list-users", "--json"))["Users"]
    key_ids = [k["AccessKeyId"] for k in users[0]["AccessKeys"]]
    name = "oncall-engineer-with-a-long-name"
    lines = kdiag(env, "iam", "list-access-keys", name).splitlines()
    assert [line.split("\t")[:3] for line in lines] == [[k, name, "Active"] for k in key_ids]
    assert kdiag(env, "iam", "list-access-keys", "--query", "AccessKeyMetadata[].UserName") == (
        f"{name}\t{name}\n"
    )
    assert json.loads(kdiag(env, "iam", "list-user-policies", name, "--json")) == {
        "PolicyNames": ["nmi"]
    }
    assert kdiag(env, "iam", "list-user-policies", name) == "nmi\n"
    proc = subprocess.run(
        [KDIAG, "iam", "list-access-keys", "nobody"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.endswith("(NoSuchEntity)\n")


DOC = {"Items": [{"Id": "i-1", "On": True, "Gone": None}, {"Id": "i-2", "On": False, "Gone": 1}]}


@pytest.mark.parametrize(
    ("query", "fmt", "expected"),
    [
        ("Items[0]", "text", "i-1\tTrue\tNone\n"),
        ("Items[0]", "table", "Id    i-1\nOn    True\nGone  None\n"),
        ("Items[].Id", "table", "i-1\ni-2\n"),
        ("Items[].Id", "text", "i-1\ti-2\n"),
        ("Items[?Gone].Id | [0]", "text", "i-2\n"),
        ("Items[?Id=='nope']", "text", ""),
        ("Nothing", "text", ""),
        ("Nothing", "json", "null\n"),
        ("Items[].{id: Id, on: On}", "table", "id   on\ni-1  True\ni-2  False\n"),
    ],
)
def test_query_results_in_each_format(capsys, query, fmt, expected):
    emit(DOC, DOC["Items"], (Column("id", "Id"),), output=fmt, query=query)
    assert capsys.readouterr().out == expected


def test_layout_draws_only_the_table(capsys):
    def layout(records):
        return "".join(f"* {r['Id']}\n" for r in records)

    columns = (Column("id", "Id"), Column("on", "On"), Column("gone", "Gone"))
    for fmt, expected in [
        ("table", "* i-1\n* i-2\n"),
        ("text", "i-1\tTrue\t-\ni-2\tFalse\t1\n"),
    ]:
        emit(DOC, DOC["Items"], columns, output=fmt, layout=layout)
        assert capsys.readouterr().out == expected
    emit(DOC, DOC["Items"], columns, output="json", layout=layout)
    assert json.loads(capsys.readouterr().out) == DOC


def test_audit_instance_filter_takes_an_instance_id(env):
    assert len(kdiag(env, "audit", "--instance", env["TEST_INSTANCE"]).splitlines()) == DENIED + 1
    proc = subprocess.run(
        [KDIAG, "audit", "--instance", "vm1"], capture_output=True, text=True, env=env, check=False
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.endswith("(InvalidInstanceID.Malformed)\n")
