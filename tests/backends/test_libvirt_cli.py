"""``kdiag instances add --check`` and ``kdiag instances check`` through the CLI, against the
private libvirtd, libvirt's ``test:///default`` driver and the fake backend (the check works
for any backend).  Nothing is ever sent: the fake's record file and a libvirt backend whose
``send_nmi`` fails the test prove it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdiag.backends.libvirt import LibvirtBackend
from kdiag.cli import main as cli_main
from kdiag.store import Store
from tests.peers.libvirtd import Libvirtd, minimal_domain_xml, running_libvirtd

TEST_DRIVER = {"uri": "test:///default", "domain": "test"}


@pytest.fixture(scope="module")
def libvirtd() -> Iterator[Libvirtd]:
    with running_libvirtd() as daemon:
        daemon.define_xml(minimal_domain_xml("cli-off"))
        yield daemon


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/kdiag.db"


@pytest.fixture(autouse=True)
def never_send(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: object, target: object) -> object:
        raise AssertionError("a check must never send an NMI")

    monkeypatch.setattr(LibvirtBackend, "send_nmi", refuse)


@pytest.fixture
def kdiag(db: str, capsys: pytest.CaptureFixture[str]):
    def run(*args: str, code: int = 0) -> tuple[str, str]:
        rc = cli_main.run([*args, "--db", db])
        out, err = capsys.readouterr()
        assert rc == code, (rc, out, err)
        return out, err

    return run


def _ids(db: str) -> list[str]:
    with Store.open(db) as store:
        return [i.id for i in store.list_instances()]


def test_add_check_stores_a_reachable_target(kdiag, db, libvirtd: Libvirtd):
    target = json.dumps({"uri": libvirtd.uri, "domain": "cli-off"})
    out, err = kdiag("instances", "add", "--backend", "libvirt", "--target", target, "--check")
    assert _ids(db) == [out.strip()]
    assert "checked: state stopped; NMI supported" in err
    doc, _ = kdiag(
        "instances", "add", "--backend", "libvirt", "--target", json.dumps(TEST_DRIVER),
        "--check", "--json",
    )  # fmt: skip
    check = json.loads(doc)["Check"]
    assert (check["State"], check["Reachable"], check["SupportsNmi"]) == ("running", True, True)
    assert len(_ids(db)) == 2


def test_add_check_stores_nothing_when_the_backend_does_not_answer(
    kdiag, db, libvirtd: Libvirtd, tmp_path: Path
):
    cases = [
        ({"uri": libvirtd.uri, "domain": "ghost"}, "TargetNotFound", 4),
        (
            {"uri": f"qemu:///session?socket={tmp_path}/none", "domain": "a"},
            "BackendUnavailable",
            4,
        ),
        ({"uri": "qemu:///system"}, 'libvirt target setting "domain" is required', 2),
        ({"uri": "not a uri", "domain": "a"}, '"uri": must be a libvirt URI', 2),
    ]
    for settings, expected, code in cases:
        _, err = kdiag(
            "instances", "add", "--backend", "libvirt", "--target", json.dumps(settings),
            "--check", code=code,
        )  # fmt: skip
        assert expected in err
        assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    assert _ids(db) == []
    # without --check the settings are parsed, not tried: an unreachable one is stored
    kdiag("instances", "add", "--backend", "libvirt", "--target", json.dumps(cases[1][0]))
    assert len(_ids(db)) == 1


def test_check_reports_reachability_state_and_capability(kdiag, db, libvirtd: Libvirtd, tmp_path):
    def add(backend: str, settings: dict[str, object], *extra: str) -> str:
        out, _ = kdiag("instances", "add", "--backend", backend, "--target", json.dumps(settings),
                       *extra)  # fmt: skip
        return out.strip()

    record = tmp_path / "sent.log"
    running = add("libvirt", TEST_DRIVER)
    stopped = add("libvirt", {"uri": libvirtd.uri, "domain": "cli-off"})
    gone = add("libvirt", {"uri": f"qemu:///session?socket={tmp_path}/none", "domain": "a"})
    arm = add("libvirt", TEST_DRIVER, "--arch", "arm64")
    fake = add("fake", {"state": "running", "record": str(record)})

    out, _ = kdiag("instances", "check", running)
    assert out == f"{running} (libvirt): state running; NMI supported\n"
    doc, _ = kdiag("instances", "check", stopped, "--json", code=1)
    assert json.loads(doc)["Check"] == {
        "InstanceId": stopped,
        "Backend": "libvirt",
        "Reachable": True,
        "State": "stopped",
        "SupportsNmi": True,
        "Ready": False,
        "ErrorCode": None,
        "Error": None,
    }
    doc, _ = kdiag("instances", "check", gone, "--json", code=1)
    found = json.loads(doc)["Check"]
    assert (found["Reachable"], found["State"], found["ErrorCode"]) == (
        False,
        None,
        "BackendUnavailable",
    )
    out, _ = kdiag("instances", "check", arm, code=1)
    assert "state running; NMI not supported" in out
    out, _ = kdiag("instances", "check", fake)
    assert out == f"{fake} (fake): state running; NMI supported\n"
    assert not record.exists()  # the fake writes its record only when an NMI is sent

    _, err = kdiag("instances", "check", "i-0123456789abcdef0", code=4)
    assert "InvalidInstanceID.NotFound" in err
    _, err = kdiag("instances", "check", "web-1", code=2)
    assert "InvalidInstanceID.Malformed" in err


def test_lab_define_refuses_before_building(
    libvirtd: Libvirtd,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    """``kdiag lab define`` checks the URI and the daemon before the lab build (which may
    download): a bad URI, an unreachable daemon and a running domain of that name."""
    import libvirt

    from kdiag.lab import build as build_module

    def kdiag(*args: str, code: int) -> tuple[str, str]:
        rc = cli_main.run(list(args))
        out, err = capsys.readouterr()
        assert rc == code, (rc, out, err)
        return out, err

    def no_build(*_args: object, **_kw: object) -> object:
        raise AssertionError("lab define built before checking the daemon")

    monkeypatch.setattr(build_module, "build", no_build)
    root = ("--root", str(tmp_path / "lab"))
    _, err = kdiag("lab", "define", "--libvirt-uri", "not a uri", *root, code=2)
    assert '"uri": must be a libvirt URI' in err
    gone = f"qemu:///session?socket={tmp_path}/none"
    _, err = kdiag("lab", "define", "--libvirt-uri", gone, *root, code=4)
    assert "BackendUnavailable" in err
    libvirtd.define_xml(minimal_domain_xml("cli-run"))
    conn = libvirt.open(libvirtd.uri)
    try:
        dom = conn.lookupByName("cli-run")
        dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
        try:
            _, err = kdiag(
                "lab", "define", "--name", "cli-run", "--libvirt-uri", libvirtd.uri, *root,
                code=4,
            )  # fmt: skip
            assert "domain cli-run is running; stop it first" in err
        finally:
            dom.destroy()
    finally:
        conn.close()
    assert not (tmp_path / "lab").exists()  # nothing written
