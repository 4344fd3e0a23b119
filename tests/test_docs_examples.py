"""Every example in README.md and docs/*.md runs as shown.

The fenced ```sh, ```console and ```json blocks are read from the documents themselves:

- every JSON block parses, and every policy document among them passes kdiag's validation;
- every ``kdiag ...`` command line parses against the real CLI (its command path, options and
  arguments exist), without running it;
- the cheap ones (no lab guest, nothing changed on this machine: iam, instances, audit,
  analyze on a fixture dump, doctor on facts or on this machine read-only, configure
  --dry-run/--user-data, completion, --help, --version) really run, block by block in order,
  in a private state directory and working directory, and succeed (doctor may say 1: a
  check failed, the documented meaning);
- a block that starts ``kdiag serve ... &`` runs with it: the aws CLI lines against it too.

What a block needs from outside is prepared in its working directory under the names the
documents use: ``vmcore`` (a fixture dump; ``vmcore-a``, ``vmcore-b`` and ``vmcore.zst`` more
of them; ``dump.1``..``dump.3`` a ``makedumpfile --split`` set), ``dmesg.txt`` (makedumpfile's
log of ``vmcore``), ``nmi.json`` (the README's own policy of that name), ``host.json`` (facts
collected on this machine by ``kdiag doctor --print-collector``), ``crashcontrol.reg`` (a
CrashControl export).
Three narrow substitutions stand for what a reader does by hand: port 8787 becomes a free
port, ``AKIA...``/``...`` in ``export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...`` become
the key that ``kdiag iam create-access-key`` printed before, and a backgrounded ``kdiag serve``
is waited for until it answers (and is checked to stop with status 0 at the end).
Blocks with ``kdiag lab`` need a guest: they are parsed here and run by tests/e2e (make demo).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from kdiag.cli import analyze as analyze_cli
from kdiag.cli.main import build_app
from kdiag.policy import validate
from tests.conftest import REPO, fixtures_root
from tests.peers.ports import free_port
from tests.readiness.test_windows import GOOD, reg_file
from tests.vmcore import makedumpfile_sets

try:  # Typer >= 0.25 vendors its own copy of click (as kdiag.cli.main does)
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older Typer on the real click
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
OPERATORS = {"|", "||", "&&", ";", "&", ">", ">>", "<", "(", ")", "<(", "$("}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    text: str
    before: str  # the prose since the previous block

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


@dataclass(frozen=True)
class Command:
    block: Block
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.block.path.relative_to(REPO)}:{self.line}"


def _blocks() -> list[Block]:
    out = []
    for path in DOCS:
        text = path.read_text()
        end = 0
        for m in FENCE.finditer(text):
            if m.group(1) in {"sh", "console", "json"}:
                line = text.count("\n", 0, m.start()) + 2  # the first line inside the fence
                out.append(Block(path, line, m.group(1), m.group(2), text[end : m.start()]))
            end = m.end()
    return out


BLOCKS = _blocks()


def _commands(block: Block) -> list[Command]:
    """The shell command lines of a block: every line of ```sh, the ``$ `` lines of
    ```console; a trailing backslash continues a line."""
    out: list[Command] = []
    pending: tuple[int, str] | None = None
    for offset, raw in enumerate(block.text.splitlines()):
        line = block.line + offset
        if pending is not None:
            start, text = pending
            text += " " + raw.strip()
        elif block.lang == "console" and raw.startswith("$ "):
            start, text = line, raw[2:].strip()
        elif block.lang == "sh" and raw.strip() and not raw.lstrip().startswith("#"):
            start, text = line, raw.strip()
        else:
            continue
        if text.endswith("\\"):
            pending = (start, text[:-1].rstrip())
            continue
        pending = None
        out.append(Command(block, start, text))
    return out


def _tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars="|&;<>()")
    lexer.whitespace_split = True
    return list(lexer)


def _invocations(text: str) -> list[list[str]]:
    """The argument lists of every ``kdiag`` run in a command line."""
    tokens = _tokens(text)
    out = []
    for i, token in enumerate(tokens):
        if token == "kdiag" or token.endswith("/kdiag"):
            args = []
            for arg in tokens[i + 1 :]:
                if arg in OPERATORS or set(arg) <= set("|&;<>()"):
                    if args and args[-1].isdigit() and arg.startswith(">"):
                        args.pop()  # 2>/dev/null
                    break
                args.append(arg)
            out.append(args)
    return out


def _programs(text: str) -> list[str]:
    """The first word of every simple command in a line (variable assignments skipped)."""
    programs, start = [], True
    for token in _tokens(text):
        if set(token) <= set("|&;()") or token.endswith("$"):  # ``ID=$(`` splits as ``ID=$``
            start = True
            continue
        if set(token) <= set("<>"):
            start = False
            continue
        if start and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", token):
            programs.append(token)
            start = False
    return programs


# ---- parsing against the real CLI, without running anything -----------------------------


def _synopsis(args: list[str]) -> list[str]:
    """A usage synopsis (``[--port 8787] [--region R ...]``) with every optional part in."""
    return [a.strip("[]") for a in args if a.strip("[]") not in {"", "..."}]


def _parse_analyze(args: list[str]) -> None:
    """``analyze`` parses its own arguments (argparse, a fast path that skips Typer)."""
    if "-h" in args or "--help" in args:
        return
    try:
        analyze_cli.build_parser().parse_args(args)
    except Exception as exc:
        raise AssertionError(f"kdiag analyze {shlex.join(args)}: {exc}") from exc


@functools.cache
def _cli() -> object:
    return typer.main.get_command(build_app())


def parse(args: list[str]) -> list[str]:
    """Parse ``kdiag ARGS`` with the real command tree; the command path, or a usage error."""
    command: Any = _cli()
    ctx = None
    path: list[str] = []
    rest = list(args)
    try:
        while True:
            # (click consumes the list it parses)
            ctx = command.make_context(path[-1] if path else "kdiag", list(rest), parent=ctx)
            if not hasattr(command, "resolve_command"):
                if path == ["analyze"]:
                    _parse_analyze(rest)
                return path
            # a group's parser stops at the first word that is not its own: the subcommand
            _, words, _ = command.make_parser(ctx).parse_args(list(rest))
            if not words:
                return path
            name, sub, rest = command.resolve_command(ctx, words)
            assert sub is not None
            assert name is not None
            path.append(name)
            command = sub
    except typer.Exit:
        return path  # --help, --version
    except click_exceptions.ClickException as exc:
        raise AssertionError(f"kdiag {shlex.join(args)}: {exc.format_message()}") from exc


LINES = [c for b in BLOCKS if b.lang != "json" for c in _commands(b)]
KDIAG_LINES = [(c, args) for c in LINES for args in _invocations(c.text)]


@pytest.mark.parametrize(
    ("command", "args"), KDIAG_LINES, ids=[f"{c.where}:{a[:2]}" for c, a in KDIAG_LINES]
)
def test_kdiag_line_parses(command: Command, args: list[str]) -> None:
    parse(_synopsis(args))


def test_the_documents_have_examples() -> None:
    # the extraction itself can fail: the README alone has a tour, JSON and many commands
    readme = [b for b in BLOCKS if b.path.name == "README.md"]
    assert {b.lang for b in readme} == {"sh", "console", "json"}
    assert len([c for c in KDIAG_LINES if c[0].block.path.name == "README.md"]) > 30


def test_a_bad_line_does_not_parse() -> None:
    with pytest.raises(AssertionError, match="No such option"):
        parse(["audit", "--no-such-option"])
    with pytest.raises(AssertionError, match="unrecognized arguments: --no-such-option"):
        parse(["analyze", "--no-such-option", "vmcore"])
    with pytest.raises(AssertionError, match="No such command"):
        parse(["iam", "no-such-command"])
    assert parse(["iam", "create-user", "--help"]) == ["iam", "create-user"]


# ---- JSON blocks --------------------------------------------------------------------------

JSON_BLOCKS = [b for b in BLOCKS if b.lang == "json"]


@pytest.mark.parametrize("block", JSON_BLOCKS, ids=[b.where for b in JSON_BLOCKS])
def test_json_block_parses_and_policies_validate(block: Block) -> None:
    doc = json.loads(block.text)
    if isinstance(doc, dict) and "Statement" in doc:
        validate(block.text)


# ---- running the cheap lines ---------------------------------------------------------------

CHEAP_GROUPS = {"iam", "instances", "audit", "completion"}
OTHER_PROGRAMS = {"diff", "export", "kill", "wait", "cat", "sh"}


def _cheap(args: list[str]) -> bool:
    """Whether ``kdiag ARGS`` runs in a sandbox: no lab guest, nothing changed on this host."""
    if any(a.startswith(("~", "/mnt")) for a in args):  # a lab guest's files, a mounted image
        return False
    path = parse(_synopsis(args))
    if not path:
        return True  # --help, --version
    if path[0] in CHEAP_GROUPS:
        return "--install-completion" not in args
    if path[0] == "analyze":  # on the sandbox's vmcore, not on another machine's /var/crash
        absent = [a for a in args if a.startswith("/") and not Path(a).exists()]
        return "--debuginfo" not in args and not absent
    if path[0] == "doctor":
        return "--root" not in args
    if path[0] == "configure":
        return ("--dry-run" in args or "--user-data" in args) and "--root" not in args
    return False  # lab (a guest), serve in the foreground, send (a server and a key)


def _serve_in_background(command: Command) -> bool:
    return bool(re.search(r"\bkdiag serve\b[^|;&]*&\s*(#.*)?$", command.text))


def _runnable(command: Command, serving: bool) -> bool:
    if any(a != _synopsis(a) for a in _invocations(command.text)):
        return False  # a usage synopsis
    if _serve_in_background(command):
        return True
    invocations = _invocations(command.text)
    programs = [p for p in _programs(command.text) if p != "kdiag" and not p.endswith("/kdiag")]
    if "aws" in programs:
        return serving
    if any(p not in OTHER_PROGRAMS for p in programs):
        return False
    if command.text.startswith("export AWS_"):
        return serving
    return bool(invocations) and all(_cheap(a) for a in invocations)


PRELUDE = r"""
set -o pipefail
__status() { echo "$1 $2" >>"$KDIAG_DOC_STATUS"; }
__key() {  # a field of the access key kdiag printed last (JSON or tab-separated text)
    python3 -c 'import json, sys
text = open(".kdiag-last-key").read()
try:
    print(json.loads(text)["AccessKey"][sys.argv[1]])
except ValueError:
    print(dict(l.split("\t", 1) for l in text.splitlines())[sys.argv[1]])' "$1"
}
__wait_port() {
    for _ in $(seq 1200); do  # up to ~120 s: kdiag serve starts slowly on a loaded machine
        (exec 9<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
kdiag() {
    case "$1 $2" in
    "iam create-access-key")
        command kdiag "$@" | tee .kdiag-last-key
        return "${PIPESTATUS[0]}";;
    serve\ *) exec kdiag serve --port "$PORT" "${@:2}";;  # exec: a file, not this function
    esac
    command kdiag "$@"
}
__serve_pids=()
"""


def _script(block: Block, port: int) -> tuple[str, dict[int, Command]]:
    """A bash script running the block's cheap lines in order, each reporting its status."""
    lines = [PRELUDE]
    ran: dict[int, Command] = {}
    serving = False
    commands = _commands(block)
    if any(args[:1] == ["lab"] for c in commands for args in _invocations(c.text)):
        commands = []  # a lab guest's session: parsed above, run by tests/e2e (make demo)
    for command in commands:
        if not _runnable(command, serving):
            continue
        text = command.text.replace("8787", str(port))
        text = re.sub(
            r"AWS_ACCESS_KEY_ID=AKIA\.\.\.", 'AWS_ACCESS_KEY_ID="$(__key AccessKeyId)"', text
        )
        text = re.sub(
            r"AWS_SECRET_ACCESS_KEY=\.\.\.",
            'AWS_SECRET_ACCESS_KEY="$(__key SecretAccessKey)"',
            text,
        )
        ran[command.line] = command
        lines.append(text)
        if _serve_in_background(command):
            serving = True
            lines.append('__serve_pids+=("$!"); __wait_port "$PORT"')
        lines.append(f"__status {command.line} $?")
    lines.append('for pid in "${__serve_pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid"')
    lines.append("    __status serve $?; done")
    return "\n".join(lines) + "\n", ran


@pytest.fixture(scope="module")
def facts_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Facts collected on this machine by kdiag's own collector, as the docs ship it."""
    root = tmp_path_factory.mktemp("facts")
    collector = subprocess.run(
        [BIN / "kdiag", "doctor", "--print-collector"], capture_output=True, text=True, check=True
    ).stdout
    facts = subprocess.run(
        ["sh", "-s"], input=collector, capture_output=True, text=True, check=True
    )
    path = root / "host.json"
    path.write_text(facts.stdout)
    return path


def _readme_policy() -> str:
    """The README's ``nmi.json``: the JSON block that the prose just before it names so."""
    named = [
        b
        for b in BLOCKS
        if b.path.name == "README.md" and b.lang == "json" and "`nmi.json`" in b.before
    ]
    assert len(named) == 1, "the README shows exactly one nmi.json"
    return named[0].text


@pytest.fixture(scope="module")
def split_set(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A real ``makedumpfile --split`` set of three files (cached, as tests/vmcore make it)."""

    def elf(name: str) -> Path:
        out = tmp_path_factory.mktemp("elf") / "vmcore"
        packed = fixtures_root() / name / "vmcore.zst"
        subprocess.run(["zstd", "-q", "-d", "--long=31", packed, "-o", out], check=True)
        return out

    split = ["--split", "--splitblock-size", "64", "-c", "-d", "31"]
    return makedumpfile_sets.made(elf, "split3-c-d31", split, ["s1", "s2", "s3"])


@pytest.fixture
def sandbox(tmp_path: Path, facts_json: Path, split_set: list[Path]) -> tuple[Path, dict[str, str]]:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    dump = fixtures_root() / "nmi-zlib"
    (cwd / "vmcore").symlink_to(dump / "vmcore")
    (cwd / "vmcore-a").symlink_to(dump / "vmcore")
    (cwd / "vmcore-b").symlink_to(fixtures_root() / "oops-null-zlib" / "vmcore")
    (cwd / "vmcore.zst").symlink_to(fixtures_root() / "nmi-elf" / "vmcore.zst")
    for number, member in enumerate(split_set, 1):
        (cwd / f"dump.{number}").symlink_to(member)
    shutil.copy(dump / "makedumpfile-dmesg.txt", cwd / "dmesg.txt")
    (cwd / "nmi.json").write_text(_readme_policy())
    shutil.copy(facts_json, cwd / "host.json")
    reg_file(cwd, GOOD)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KDIAG_"))} | {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "HOME": str(tmp_path / "home"),
        "KDIAG_STATE_DIR": str(tmp_path / "state"),
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "COLUMNS": "80",
    }
    return cwd, env


def run_block(block: Block, cwd: Path, env: dict[str, str]) -> tuple[dict[int, Command], str]:
    """Run the block's cheap lines; fail on the first status that is not what the docs say."""
    port = free_port()
    script, ran = _script(block, port)
    status_path = cwd.parent / "status"
    status_path.write_text("")
    done = subprocess.run(
        ["bash", "-c", script],
        check=False,
        cwd=cwd,
        env=env | {"PORT": str(port), "KDIAG_DOC_STATUS": str(status_path)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = f"{done.stdout[-2000:]}\n--- stderr\n{done.stderr[-3000:]}"
    statuses = dict(line.split() for line in status_path.read_text().splitlines())
    for line, command in ran.items():
        assert str(line) in statuses, f"{command.where}: did not run: {command.text}\n{output}"
        # doctor's 1 is a finding ("a check failed"), its documented meaning
        paths = [parse(_synopsis(args))[:1] for args in _invocations(command.text)]
        allowed = {"0", "1"} if ["doctor"] in paths else {"0"}
        assert statuses[str(line)] in allowed, (
            f"{command.where}: exit {statuses[str(line)]}: {command.text}\n{output}"
        )
    if "serve" in statuses:
        assert statuses["serve"] == "0", f"kdiag serve did not stop cleanly\n{output}"
    return ran, output


RUN_BLOCKS = [b for b in BLOCKS if b.lang in {"sh", "console"}]


@pytest.mark.parametrize("block", RUN_BLOCKS, ids=[b.where for b in RUN_BLOCKS])
def test_cheap_lines_run(block: Block, sandbox: tuple[Path, dict[str, str]]) -> None:
    cwd, env = sandbox
    run_block(block, cwd, env)


def test_readme_tour_runs_against_the_fake_backend(sandbox: tuple[Path, dict[str, str]]) -> None:
    """The README's lab-free tour: the unmodified aws CLI lists and interrupts through a real
    ``kdiag serve``; the audit trail then holds both requests, allowed."""
    cwd, env = sandbox
    tours = [
        b
        for b in RUN_BLOCKS
        if b.path.name == "README.md" and "--backend fake" in b.text and "aws ec2" in b.text
    ]
    assert len(tours) == 1
    ran, output = run_block(tours[0], cwd, env)
    texts = [c.text for c in ran.values()]
    assert any(t.startswith("aws ec2 describe-instances") for t in texts)
    assert any(t.startswith("aws ec2 send-diagnostic-interrupt") for t in texts)
    assert any(_serve_in_background(c) for c in ran.values())
    audit = subprocess.run(
        [BIN / "kdiag", "audit", "--json"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(audit.stdout)["AuditLog"]
    decided = {(r["action"], r["decision"]) for r in rows}
    assert ("SendDiagnosticInterrupt", "allow") in decided, output
    assert ("DescribeInstances", "allow") in decided, output


def test_what_runs_and_what_is_only_parsed() -> None:
    """The classifier itself: cheap lines run, lab/host-changing/server lines are parsed only."""
    block = Block(REPO / "README.md", 1, "console", "", "")

    def runs(text: str, serving: bool = False) -> bool:
        return _runnable(Command(block, 1, text), serving)

    assert runs("kdiag analyze --json vmcore")
    assert runs("kdiag analyze --log vmcore | diff - dmesg.txt")
    assert runs("ID=$(kdiag instances add --backend fake --target vm1 --tag Owner=oncall)")
    assert runs("kdiag doctor --facts host.json")
    assert runs("kdiag configure --dry-run")
    assert runs("kdiag serve &")
    assert runs("aws ec2 describe-instances --endpoint-url http://127.0.0.1:8787", serving=True)
    assert not runs("aws ec2 describe-instances --endpoint-url http://127.0.0.1:8787")
    assert not runs("kdiag lab up --name vm1")
    assert not runs("kdiag configure --panic-timeout 10")
    assert not runs("kdiag analyze --debuginfo vmlinux vmcore")
    assert not runs("kdiag serve")
    assert not runs("ssh host sh -s < collect.sh > host.json && kdiag doctor --facts host.json")
    assert not runs("make demo")
    # every document has lines that really run
    for path in DOCS:
        ran = [c for b in BLOCKS if b.path == path for c in _script(b, 1)[1].values()]
        has_cheap = any(_runnable(c, True) for c in LINES if c.block.path == path)
        assert bool(ran) == has_cheap, path
    readme = [c for b in BLOCKS if b.path.name == "README.md" for c in _script(b, 1)[1].values()]
    assert len(readme) > 20
