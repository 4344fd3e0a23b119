"""The backend that docs/backends.md ("Writing a backend") shows runs as written: its block
is read from the document, so the shared pieces it names (TargetSettings' timeout bound,
StatusErrors, BoundedCall) are the ones a new backend really gets."""

from __future__ import annotations

import re
import sys
import threading
import types

import pytest

from kdiag.backends import Backend, Target
from kdiag.errors import (
    BackendError,
    ConfigError,
    DeliveryUnconfirmed,
    IncorrectState,
    TargetNotFound,
)
from tests.conftest import REPO

IID = "i-0123456789abcdef0"


@pytest.fixture(scope="module")
def example() -> types.ModuleType:
    text = (REPO / "docs/backends.md").read_text()
    section = text.split("## Writing a backend", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    module = types.ModuleType("kdiag_docs_example_backend")
    sys.modules[module.__name__] = module  # dataclasses resolve annotations through it
    try:
        exec(compile(code, "docs/backends.md", "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[module.__name__]


def test_its_settings_get_the_common_checks(example):
    settings = example.ExampleSettings
    assert settings.parse({"host": "bmc1", "timeout": 300}).timeout == 300.0
    with pytest.raises(ConfigError, match=r'"timeout": must be in \(0, 300\] seconds'):
        settings.parse({"host": "bmc1", "timeout": 301})
    with pytest.raises(ConfigError, match='example target setting "host": a host name'):
        settings.parse({"host": "a/b"})
    with pytest.raises(ConfigError, match='unknown example target setting "hots"'):
        settings.parse({"hots": "bmc1"})


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (404, TargetNotFound, "no such machine"),
        (409, IncorrectState, "the machine is not running"),
        (500, DeliveryUnconfirmed, "HTTP 500 after POST /nmi was sent"),
        (400, BackendError, "the example API refused: HTTP 400"),
    ],
)
def test_its_statuses_go_through_the_table(example, status, error, message):
    with example.ExampleBackend(lambda _host: status) as backend:
        assert isinstance(backend, Backend)
        with pytest.raises(error, match=message) as caught:
            backend.send_nmi(Target(IID, {"host": "bmc1"}))
    assert type(caught.value) is error


def test_it_delivers_and_a_hung_post_is_unconfirmed(example):
    posted: list[str] = []
    with example.ExampleBackend(lambda host: posted.append(host) or 202) as backend:
        result = backend.send_nmi(Target(IID, {"host": "bmc1"}))
    assert (result.backend, result.instance_id, posted) == ("example", IID, ["bmc1"])

    release = threading.Event()
    with example.ExampleBackend(lambda _host: int(release.wait(60))) as backend:
        try:
            with pytest.raises(DeliveryUnconfirmed, match=r"no answer in 0\.3 s after POST /nmi"):
                backend.send_nmi(Target(IID, {"host": "bmc1", "timeout": 0.3}))
        finally:
            release.set()
