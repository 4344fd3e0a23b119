"""Every JSON the CLI reads from its arguments (a policy document, --context-entries,
--target) refuses hostile nesting with the one-line error and exit 2, never a
RecursionError traceback."""

from __future__ import annotations

import pytest

from kdiag.cli import main as cli_main
from tests.dbfixtures import sqlite_template, state_dir

__all__ = ("sqlite_template", "state_dir")

DEEP_OBJECTS = '{"a":' * 100_000 + "1" + "}" * 100_000
DEEP_ARRAYS = "[" * 100_000 + "]" * 100_000
POLICY = ["iam", "put-user-policy", "alice", "--policy-name", "p", "--policy-document"]
SIMULATE = ["iam", "simulate-principal-policy", "alice", "--action-names", "a:b"]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ([*POLICY, DEEP_OBJECTS], "MalformedPolicyDocument"),
        ([*SIMULATE, "--context-entries", DEEP_OBJECTS], "ConfigError"),
        ([*SIMULATE, "--context-entries", DEEP_ARRAYS], "ConfigError"),
        (["instances", "add", "--backend", "fake", "--target", DEEP_OBJECTS], "ConfigError"),
    ],
    ids=["policy-document", "context-entry-object", "context-entry-list", "target"],
)
def test_deep_json_arguments(tmp_path, state_dir, capsys, args, code):
    db = f"sqlite:///{tmp_path}/k.db"
    assert cli_main.run(["iam", "create-user", "alice", "--db", db]) == 0
    capsys.readouterr()
    assert cli_main.run([*args, "--db", db]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert err.rstrip().endswith(f"({code})")
    assert err.count("\n") == 1
