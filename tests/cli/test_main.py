"""The CLI frame: version, help, the one error line, exit codes, --traceback, broken pipes."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import kdiag
from kdiag.cli import main as cli_main


@pytest.fixture
def sample_group(monkeypatch):
    monkeypatch.setitem(cli_main.COMMANDS, "sample", "tests.cli._sample")


def test_version(capsys):
    assert cli_main.run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"kdiag {kdiag.__version__}"


def test_help_lists_every_registered_group(capsys, sample_group):
    assert cli_main.run(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli_main.COMMANDS:
        assert name in out


def test_every_registered_module_registers_its_name():
    for name in cli_main.COMMANDS:
        app = cli_main.build_app(name)
        import typer

        group = typer.main.get_command(app)
        assert name in group.commands, f"{cli_main.COMMANDS[name]} does not register {name!r}"


@pytest.mark.parametrize(
    ("kind", "code", "exit_code"),
    [
        ("NotACrashDump", "NotACrashDump", 5),
        ("TruncatedDump", "TruncatedDump", 5),
        ("AccessDenied", "UnauthorizedOperation", 3),
        ("AuthFailure", "AuthFailure", 3),
        ("BackendUnavailable", "BackendUnavailable", 4),
        ("BackendTimeout", "BackendTimeout", 4),
        ("ReadinessError", "ReadinessError", 1),
        ("ConfigError", "ConfigError", 2),
    ],
)
def test_errors_become_one_line_and_an_exit_code(capsys, sample_group, kind, code, exit_code):
    assert cli_main.run(["sample", "fail", kind]) == exit_code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: it went wrong ({code})\n"


def test_traceback_flag_shows_the_stack(sample_group):
    with pytest.raises(kdiag.ConfigError):
        cli_main.run(["--traceback", "sample", "fail", "ConfigError"])


@pytest.mark.parametrize(
    ("args", "expected", "hint"),
    [
        (["sample", "nope"], ("no such command 'nope'", "UsageError"), "kdiag sample"),
        (["no-such-group"], ("no such command 'no-such-group'", "UsageError"), "kdiag"),
        (["sample", "fail"], ("missing argument 'kind'", "MissingParameter"), "kdiag sample fail"),
        (["sample", "ok", "--bogus"], ("no such option: --bogus", "UsageError"), "kdiag sample ok"),
        (
            ["completion", "tcsh"],
            ("invalid value for 'SHELL'", "InvalidParameterValue"),
            "kdiag completion",
        ),
    ],
)
def test_usage_errors_are_one_error_line_and_a_hint(capsys, sample_group, args, expected, hint):
    message, code = expected
    assert cli_main.run(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    error, try_line = captured.err.splitlines()
    assert error.startswith(f"error: {message}")
    assert error.endswith(f" ({code})")
    assert try_line == f"try '{hint} --help'"


def test_bare_group_prints_its_help_and_exits_2(capsys):
    assert cli_main.run(["iam"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("Usage: kdiag iam [OPTIONS] COMMAND")
    assert "create-user" in captured.err


def test_ok_command(capsys, sample_group):
    assert cli_main.run(["sample", "ok"]) == 0
    assert capsys.readouterr().out == "fine\n"


def test_broken_pipe_exits_quietly():
    """``kdiag ... | head -1``: no traceback, no 'Exception ignored' noise."""
    code = (
        "import sys; from kdiag.cli import main as m; "
        "m.COMMANDS['sample'] = 'tests.cli._sample'; m.main(['sample', 'flood'])"
    )
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=root,
        env=env,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert first == b"line 0\n"
    assert proc.returncode == cli_main.EXIT_BROKEN_PIPE
    assert err == b""


def test_console_script_runs():
    exe = Path(sys.executable).with_name("kdiag")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"kdiag {kdiag.__version__}"


KDIAG = str(Path(sys.executable).with_name("kdiag"))


@pytest.mark.parametrize(
    ("args", "first"),
    [
        (["audit", "--bogus"], "error: no such option: --bogus (UsageError)"),
        (["iam", "create-access-key"], "error: missing argument 'NAME' (MissingParameter)"),
        (
            ["audit", "--limit", "x"],
            "error: invalid value for '--limit': Input should be a valid integer, "
            "unable to parse string as an integer (InvalidParameterValue)",
        ),
        (
            ["audit", "--output", "yaml"],
            "error: invalid value for '--output' / '-o': 'yaml' is not one of 'json', 'text', "
            "'table' (InvalidParameterValue)",
        ),
        (["audit", "--query", "AuditLog["], "error: invalid value for '--query'"),
        (["audit", "--json", "--output", "text"], "error: invalid value for '--json'"),
    ],
)
def test_usage_errors_through_the_console_script(tmp_path, args, first):
    env = {**os.environ, "KDIAG_DB": f"sqlite:///{tmp_path / 'k.db'}", "COLUMNS": "80"}
    proc = subprocess.run(
        [KDIAG, *args], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(first), proc.stderr
    assert lines[0].endswith(")")
    assert lines[1:] == [f"try 'kdiag {args[0]}{' ' + args[1] if args[0] == 'iam' else ''} --help'"]


def test_kdiag_output_environment_default_is_checked(tmp_path):
    env = {**os.environ, "KDIAG_DB": f"sqlite:///{tmp_path / 'k.db'}", "KDIAG_OUTPUT": "yaml"}
    proc = subprocess.run([KDIAG, "audit"], capture_output=True, text=True, env=env, check=False)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert (
        proc.stderr == "error: KDIAG_OUTPUT must be json, text or table, not 'yaml' (ConfigError)\n"
    )


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script(shell):
    proc = subprocess.run(
        [KDIAG, "completion", shell], capture_output=True, text=True, check=True, timeout=60
    )
    assert "_KDIAG_COMPLETE=complete_" + shell in proc.stdout
    assert proc.stderr == ""


def test_bash_completion_script_completes_commands_options_and_choices():
    """Source the printed script in a real bash and ask it what it would offer."""
    bash = shutil.which("bash")
    assert bash is not None
    script = """
source <(kdiag completion bash)
ask() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _kdiag_completion kdiag;
        echo "${COMPREPLY[*]}"; }
ask kdiag au
ask kdiag audit --out
ask kdiag audit --output ''
ask kdiag iam list-a
"""
    env = {**os.environ, "PATH": f"{Path(KDIAG).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [bash, "-c", script], capture_output=True, text=True, env=env, check=True, timeout=120
    )
    assert proc.stdout.splitlines() == ["audit", "--output", "json text table", "list-access-keys"]


@pytest.mark.parametrize("args", [["--help"], ["audit"], ["iam", "list-users", "--json"]])
def test_a_full_disk_under_stdout_is_one_error_line(tmp_path, args):
    """``kdiag ... > /dev/full``: one line and exit 1, no traceback, no second error at exit."""
    env = {**os.environ, "KDIAG_DB": f"sqlite:///{tmp_path / 'k.db'}", "KDIAG_OUTPUT": "json"}
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [KDIAG, *args], stdout=full, stderr=subprocess.PIPE, text=True, env=env, check=False
        )
    assert proc.returncode == 1
    assert proc.stderr == "error: cannot write the output: No space left on device (KdiagError)\n"
