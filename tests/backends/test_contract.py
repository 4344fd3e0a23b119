"""The backend contract: the one instance-state enum, typed target settings, and their
validation inside ``Store.add_instance`` (library callers included)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from kdiag.backends import InstanceState, Target, TargetSettings, check_target
from kdiag.backends.fake import FakeBackend, FakeSettings
from kdiag.backends.qmp import QMPSettings
from kdiag.errors import BackendUnavailable, ConfigError
from kdiag.store import INSTANCE_STATES, Store
from tests.dbfixtures import state_dir

__all__ = ("state_dir",)


def test_one_state_enum_with_ec2_names_and_codes():
    assert [(s.value, s.code) for s in InstanceState if s.code is not None] == [
        ("pending", 0),
        ("running", 16),
        ("shutting-down", 32),
        ("terminated", 48),
        ("stopping", 64),
        ("stopped", 80),
    ]
    assert InstanceState.PAUSED.code is None
    assert InstanceState.RUNNING == "running"
    assert f"{InstanceState.STOPPED}" == "stopped"
    assert tuple(s.value for s in InstanceState if s.code is not None) == INSTANCE_STATES
    assert InstanceState.parse("paused") is InstanceState.PAUSED
    with pytest.raises(ConfigError, match="'paused': one of pending, running"):
        InstanceState.parse("paused", ec2_only=True)
    with pytest.raises(ConfigError, match="'sleeping'"):
        InstanceState.parse("sleeping")


@dataclass(frozen=True, slots=True)
class _Example(TargetSettings):
    BACKEND: ClassVar[str] = "example"

    host: str
    port: int = 623
    ratio: float | None = None
    secure: bool = True
    state: InstanceState | None = None


def test_settings_parser_types_and_names_every_field():
    parsed = _Example.parse({"host": "bmc", "port": 6230, "ratio": 1, "state": "stopped"})
    assert parsed == _Example("bmc", 6230, 1.0, True, InstanceState.STOPPED)
    assert isinstance(parsed.ratio, float)
    cases = [
        ({}, 'example target setting "host" is required'),
        ({"host": 1}, '"host": must be a string, not 1'),
        ({"host": "b", "port": "623"}, '"port": must be an integer'),
        ({"host": "b", "port": 1.5}, '"port": must be an integer'),
        ({"host": "b", "secure": "yes"}, '"secure": must be true or false'),
        ({"host": "b", "state": "asleep"}, '"state": one of pending, running'),
        ({"host": "b", "prot": 1}, 'unknown example target setting "prot"'),
    ]
    for raw, message in cases:
        with pytest.raises(ConfigError, match=message):
            _Example.parse(raw)
    assert _Example.parse({"host": "b", "ratio": None}).ratio is None


@dataclass(frozen=True, slots=True)
class _Timed(TargetSettings):
    BACKEND: ClassVar[str] = "timed"
    MAX_TIMEOUT: ClassVar[float] = 42.0

    host: str
    timeout: float | None = None

    def validate(self) -> None:
        if self.host == "bad":
            raise self.invalid("host", "not this one")


def test_the_base_bounds_every_timeout_by_the_class_bound_after_the_backends_checks():
    assert _Timed.parse({"host": "h", "timeout": 42}).timeout == 42.0
    assert _Timed.parse({"host": "h"}).timeout is None
    for bad in (0, -1, 42.5):
        with pytest.raises(
            ConfigError,
            match=r'timed target setting "timeout": must be in '
            r"\(0, 42\] seconds, not ",
        ):
            _Timed.parse({"host": "h", "timeout": bad})
    with pytest.raises(ConfigError, match='"host": not this one'):
        _Timed.parse({"host": "bad", "timeout": 0})
    with pytest.raises(ConfigError, match='"timeout": must be in'):  # constructed directly too
        _Timed("h", timeout=43.0)
    # the default bound, and a settings class without a timeout is left alone
    assert TargetSettings.MAX_TIMEOUT == 300.0
    assert _Example("bmc").port == 623


def test_a_target_reads_its_credentials_at_delivery_and_names_itself(monkeypatch):
    from kdiag.backends.credentials import CredentialsRef

    target = Target("i-0123456789abcdef0")
    ref = CredentialsRef.parse("env:KDIAG_TEST_CONTRACT")
    with pytest.raises(BackendUnavailable, match=r"^instance i-0123456789abcdef0: ") as caught:
        target.credentials(ref)
    assert caught.value.target == "i-0123456789abcdef0"
    monkeypatch.setenv("KDIAG_TEST_CONTRACT_ACCESS_TOKEN", "t0k3n")
    assert target.credentials(ref).values["access_token"] == "t0k3n"
    with pytest.raises(BackendUnavailable, match="hold no username and password"):
        target.credentials(ref, login=True)
    monkeypatch.setenv("KDIAG_TEST_CONTRACT_USERNAME", "admin")
    monkeypatch.setenv("KDIAG_TEST_CONTRACT_PASSWORD", "pw")
    assert target.credentials(ref, login=True).username == "admin"


def test_fake_settings_keep_unknown_keys_but_check_their_own():
    assert FakeSettings.parse({"state": "paused", "rack": "x"}).state is InstanceState.PAUSED
    with pytest.raises(ConfigError, match='"fail": one of unavailable'):
        FakeSettings.parse({"fail": "sometimes"})
    with pytest.raises(ConfigError, match='"supports_nmi": must be true or false'):
        FakeSettings.parse({"supports_nmi": "false"})  # a string would have been truthy
    with pytest.raises(BackendUnavailable, match='"state"'):
        FakeBackend().state(Target("i-0123456789abcdef0", {"state": "asleep"}))


def test_check_target_uses_the_registered_backend(monkeypatch):
    assert check_target("qmp", {"address": "/run/vm.qmp"}) == QMPSettings("/run/vm.qmp")
    with pytest.raises(ConfigError, match="unknown or disabled backend 'nope'"):
        check_target("nope", {})
    monkeypatch.setenv("KDIAG_DISABLE_BACKENDS", "qmp")
    with pytest.raises(ConfigError, match="unknown or disabled backend 'qmp'"):
        check_target("qmp", {"address": "x"})


def test_store_add_instance_validates_for_library_callers(state_dir):
    with Store.open(f"sqlite:///{state_dir / 'k.db'}") as store:
        with pytest.raises(ConfigError, match='qmp target setting "address" is required'):
            store.add_instance(backend="qmp", target={})
        with pytest.raises(ConfigError, match='"timeout": must be in '):
            store.add_instance(backend="qmp", target={"address": "/x", "timeout": -1})
        with pytest.raises(ConfigError, match="unknown or disabled backend 'vmware'"):
            store.add_instance(backend="vmware", target={"uri": "qemu:///system"})
        with pytest.raises(ConfigError, match='libvirt target setting "domain" is required'):
            store.add_instance(backend="libvirt", target={"uri": "qemu:///system"})
        with pytest.raises(ConfigError, match="'paused'"):
            store.add_instance(backend="fake", target={}, state="paused")
        assert store.list_instances() == []
        inst = store.add_instance(backend="qmp", target={"address": "/x", "timeout": 2})
        assert inst.target == {"address": "/x", "timeout": 2}
        assert inst.state == "running"


class _OldPlugin:
    """A plugin written before parse_target was part of the contract."""

    name = "old"

    def send_nmi(self, target): ...

    def state(self, target): ...

    def supports_nmi(self, target):
        return True

    def close(self): ...

    def __enter__(self):
        return self

    def __exit__(self, *exc): ...


def test_a_plugin_without_parse_target_is_refused_by_name(monkeypatch):
    from importlib.metadata import EntryPoint

    from kdiag.backends import base

    real = base._entry_points

    def with_old():
        found = real()
        found["old"] = EntryPoint("old", f"{__name__}:_OldPlugin", base.ENTRY_POINT_GROUP)
        return found

    monkeypatch.setattr(base, "_entry_points", with_old)
    with pytest.raises(BackendUnavailable, match=r"'old' does not .* \(missing: parse_target\)"):
        check_target("old", {})
