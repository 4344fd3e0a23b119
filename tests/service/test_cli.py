"""``kdiag send`` against the in-process service (credentials from the AWS env chain)."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kdiag.cli import main as cli_main

from .conftest import REGION, allow


@pytest.fixture(scope="module")
def world(service):
    account = service.store.default_account().id
    up = service.store.add_instance(backend="fake", target={})
    down = service.store.add_instance(backend="fake", target={}, state="stopped")
    forbidden = service.store.add_instance(backend="fake", target={})
    arn = f"arn:aws:ec2:{REGION}:{account}:instance/"
    kim = service.user("kim", allow(resource=[arn + up.id, arn + down.id]))
    return {"up": up, "down": down, "forbidden": forbidden, "kim": kim}


@pytest.fixture
def as_kim(monkeypatch, world):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", world["kim"].key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", world["kim"].secret)


def kdiag(service, *args):
    return cli_main.run(["send", *args, "--endpoint", service.url])


def test_send_is_silent_on_success(service, world, as_kim, capsys):
    before = len(service.backend.sent)
    assert kdiag(service, world["up"].id) == 0
    assert kdiag(service, world["up"].id) == 0  # same second, still a fresh signature
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", "")
    assert service.backend.sent[before:] == [world["up"].id] * 2


def test_verbose(service, world, as_kim, capsys):
    assert kdiag(service, world["up"].id, "--verbose") == 0
    assert "sent" in capsys.readouterr().err
    assert kdiag(service, world["up"].id, "--dry-run", "--verbose") == 0
    assert "would have succeeded" in capsys.readouterr().err


@pytest.mark.parametrize(
    "case",
    [
        ("forbidden", "UnauthorizedOperation", 3),
        ("down", "IncorrectInstanceState", 4),
        ("i-xyz", "InvalidInstanceID.Malformed", 2),
    ],
)
@pytest.mark.usefixtures("as_kim")
def test_errors_map_to_exit_codes(service, world, capsys, case):
    which, code, exit_code = case
    instance_id = world[which].id if which in world else which
    assert kdiag(service, instance_id) == exit_code
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert err.rstrip().endswith(f"({code})")


def test_dry_run_denied(service, world, as_kim, capsys):
    assert kdiag(service, world["forbidden"].id, "--dry-run") == 3


def test_bad_secret(service, world, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", world["kim"].key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    assert kdiag(service, world["up"].id) == 3
    assert "(AuthFailure)" in capsys.readouterr().err


def test_no_credentials(service, world, monkeypatch, capsys):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    assert kdiag(service, world["up"].id) == 3
    assert "no AWS credentials" in capsys.readouterr().err


def test_unreachable_service(world, as_kim, capsys):
    # a port held bound but not listening for the whole call: connecting is refused, and
    # nothing else can take the port meanwhile (a released port could be handed out again)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        endpoint = f"http://127.0.0.1:{port}"
        assert cli_main.run(["send", world["up"].id, "--endpoint", endpoint]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_console_script(service, world, as_kim):
    kdiag_bin = Path(sys.executable).with_name("kdiag")
    done = subprocess.run(
        [str(kdiag_bin), "send", world["forbidden"].id, "--endpoint", service.url],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 3
    assert done.stdout == ""
    assert "(UnauthorizedOperation)" in done.stderr


def test_every_code_the_service_answers_comes_back_as_its_class():
    """The CLI's code → class map is the service's, read backwards: same class, same exit
    code, the service's message."""
    from kdiag.cli.send import remote_error
    from kdiag.errors import KdiagError
    from kdiag.service.errors import STATUS, to_api_error

    for code in STATUS:
        error = remote_error(code, "from the service")
        assert error.code == code
        assert str(error) == "from the service"
        assert to_api_error(error).code == code  # and forwards again
    unknown = remote_error("SomethingNew", "a code from a newer service")
    assert type(unknown) is KdiagError
    assert (unknown.code, unknown.exit_code) == ("SomethingNew", 1)
