"""The CLI frame: version, help, the one error line, exit codes, --traceback, broken pipes."""

import os
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


def test_usage_error_exits_2(capsys, sample_group):
    assert cli_main.run(["sample", "no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_unknown_group_exits_2(capsys):
    assert cli_main.run(["no-such-group"]) == 2


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
