"""Credentials references: ``file:`` (0600, owned by us) and ``env:``, resolved at delivery
time by the backend, never stored resolved, never shown."""

from __future__ import annotations

import json
import os

import pytest

from kdiag.backends.base import Target
from kdiag.backends.credentials import Credentials, CredentialsRef
from kdiag.backends.fake import FakeBackend
from kdiag.errors import BackendUnavailable, ConfigError

SECRET = "hunter2-Zq8xV-s3cr3t"
IID = "i-0123456789abcdef0"


def cred_file(tmp_path, content: str, mode: int = 0o600, name: str = "bmc.cred"):
    path = tmp_path / name
    path.write_text(content)
    path.chmod(mode)
    return path


def test_a_json_file_resolves(tmp_path):
    path = cred_file(tmp_path, json.dumps({"Username": "admin", "password": SECRET}))
    creds = CredentialsRef.parse(f"file:{path}").resolve()
    assert (creds.username, creds.password) == ("admin", SECRET)
    assert SECRET not in repr(creds)
    assert SECRET not in str(creds)


def test_a_key_value_file_resolves(tmp_path):
    text = f"# the BMC\nusername = admin\n\npassword={SECRET}\n"
    creds = CredentialsRef.parse(f"file:{cred_file(tmp_path, text, 0o400)}").resolve()
    assert dict(creds.values) == {"username": "admin", "password": SECRET}


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606])
def test_a_file_others_can_read_is_refused(tmp_path, mode):
    path = cred_file(tmp_path, f"password={SECRET}", mode)
    with pytest.raises(ConfigError, match=f"mode {mode:04o} lets others read it") as caught:
        CredentialsRef.parse(f"file:{path}").resolve()
    assert "chmod 600" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_file_owned_by_someone_else_is_refused(tmp_path, monkeypatch):
    path = cred_file(tmp_path, f"password={SECRET}")
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)  # kdiag now runs as "another user"
    with pytest.raises(ConfigError, match=f"owned by uid {me}, not by the user running"):
        CredentialsRef.parse(f"file:{path}").resolve()


def test_not_a_regular_file_missing_or_a_symlink_is_refused(tmp_path):
    directory = tmp_path / "dir"
    directory.mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="not a regular file"):
        CredentialsRef.parse(f"file:{directory}").resolve()
    with pytest.raises(ConfigError, match="no such file"):
        CredentialsRef.parse(f"file:{tmp_path / 'absent'}").resolve()
    link = tmp_path / "link"
    link.symlink_to(cred_file(tmp_path, f"password={SECRET}"))
    with pytest.raises(ConfigError, match="cannot open"):
        CredentialsRef.parse(f"file:{link}").resolve()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"password": ', "not valid JSON"),
        (json.dumps({"password": 1}), "JSON must be an object of strings"),
        (f"username admin\npassword {SECRET}", "line 1 is not key=value"),
        ("# nothing\n", "holds no credentials"),
    ],
)
def test_bad_content_is_named_without_quoting_it(tmp_path, content, problem):
    path = cred_file(tmp_path, content.replace("{S}", SECRET))
    with pytest.raises(ConfigError, match=problem) as caught:
        CredentialsRef.parse(f"file:{path}").resolve()
    assert SECRET not in str(caught.value)


def test_the_environment_resolves(monkeypatch):
    monkeypatch.setenv("KDIAG_BMC1_USERNAME", "admin")
    monkeypatch.setenv("KDIAG_BMC1_PASSWORD", SECRET)
    creds = CredentialsRef.parse("env:KDIAG_BMC1").resolve()
    assert (creds.username, creds.password) == ("admin", SECRET)
    with pytest.raises(ConfigError, match=r"no KDIAG_NOPE_\* variable is set"):
        CredentialsRef.parse("env:KDIAG_NOPE").resolve()


def test_a_pasted_secret_is_not_quoted_by_the_reference_parser():
    with pytest.raises(ConfigError) as caught:
        CredentialsRef.parse(SECRET)
    assert SECRET not in str(caught.value)


def test_the_fake_resolves_the_reference_at_delivery_time(tmp_path):
    path = cred_file(tmp_path, json.dumps({"username": "admin", "password": "first"}))
    target = Target(IID, {"credentials": f"file:{path}"})
    backend = FakeBackend(require_credentials=True)
    backend.send_nmi(target)
    path.write_text(json.dumps({"username": "admin", "password": SECRET}))  # rotated
    backend.send_nmi(target)
    used = [c.credentials for c in backend.calls if c.verb == "send_nmi"]
    assert all(isinstance(c, Credentials) for c in used)
    assert [c.password for c in used if c] == ["first", SECRET]
    assert dict(target.settings) == {"credentials": f"file:{path}"}  # never resolved in place
    assert SECRET not in repr(backend.calls)


def test_the_fake_refuses_delivery_with_a_0644_file_or_none(tmp_path):
    path = cred_file(tmp_path, f"password={SECRET}", 0o644)
    backend = FakeBackend(require_credentials=True)
    with pytest.raises(BackendUnavailable, match="mode 0644") as caught:
        backend.send_nmi(Target(IID, {"credentials": f"file:{path}"}))
    assert SECRET not in str(caught.value)
    with pytest.raises(BackendUnavailable, match='requires "credentials"'):
        backend.send_nmi(Target(IID, {}))
    assert backend.sent == []
