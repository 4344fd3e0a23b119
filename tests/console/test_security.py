"""The console's defences over real HTTP (httpx against the real app on loopback): CSRF,
Origin, failed sign-in throttling and auditing, headers, hostile forms and parameters.

The browser tests (test_browser.py) show what a person sees; these send what a browser
would not.
"""

import contextlib
import re

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from kdiag.console.security import SESSION_COOKIE, set_cookie
from kdiag.store.sessions import ConsoleSessions
from tests.console.conftest import allow


@pytest.fixture(scope="module")
def alice(console):
    return console.user("alice", allow("kdiag:ListFleet", "cloudtrail:LookupEvents"))


def _form_token(response):
    return re.search(r'name="csrf" value="([^"]+)"', response.text).group(1)


@contextlib.contextmanager
def signed_in(console, creds):
    with httpx.Client(base_url=console.url, follow_redirects=False) as client:
        form = client.get("/console/signin")
        answer = client.post(
            "/console/signin",
            data={"csrf": _form_token(form), "access_key_id": creds.key_id, "secret": creds.secret},
        )
        assert answer.status_code == 303, answer.text
        yield client


def test_sign_in_needs_the_pre_session_token(console, alice):
    with httpx.Client(base_url=console.url) as client:
        _pre_session(console, alice, client)


def _pre_session(console, alice, client):
    form = client.get("/console/signin")
    token = _form_token(form)
    fields = {"access_key_id": alice.key_id, "secret": alice.secret}
    # no token, a wrong one, or the token without its cookie (another site's form)
    for data in (fields, {**fields, "csrf": "x" * 43}):
        refused = client.post("/console/signin", data=data)
        assert refused.status_code == 403
        assert "kdiag_console=" not in refused.headers.get("set-cookie", "")
    bare = httpx.post(console.url + "/console/signin", data={**fields, "csrf": token})
    assert bare.status_code == 403
    # (each refusal set a fresh pre-session token: the form's token is the latest one)
    token = _form_token(client.get("/console/signin"))
    ok = client.post("/console/signin", data={**fields, "csrf": token}, follow_redirects=False)
    assert ok.status_code == 303


def test_every_post_needs_the_sessions_csrf_token(console, alice):
    with signed_in(console, alice) as client:
        _csrf(console, client)


def _csrf(console, client):
    page = client.get("/console/fleet")
    assert page.status_code == 200
    token = _form_token(page)
    for data in ({}, {"csrf": ""}, {"csrf": token[:-1] + ("A" if token[-1] != "A" else "B")}):
        refused = client.post("/console/signout", data=data)
        assert refused.status_code == 403
        assert "CSRF" in refused.text
        assert client.get("/console/fleet").status_code == 200  # still signed in
    # the right token from another origin
    refused = client.post(
        "/console/signout", data={"csrf": token}, headers={"Origin": "http://evil.example"}
    )
    assert refused.status_code == 403
    assert client.get("/console/fleet").status_code == 200
    rows = [
        r
        for r in console.store.audit_rows(limit=20)
        if r.action == "kdiag:ConsoleSignOut" and r.principal.endswith("user/alice")
    ]
    assert [r.outcome for r in rows[-4:]] == ["denied"] * 4
    done = client.post("/console/signout", data={"csrf": token})
    assert done.status_code == 303
    assert client.get("/console/fleet").headers["location"] == "/console/signin"


def test_security_headers_and_cookies(console, alice):
    with signed_in(console, alice) as client:
        page = client.get("/console/fleet")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
    form = httpx.get(console.url + "/console/signin")
    cookie = form.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/console" in cookie
    # no script, style or image from anywhere but this server
    for attr in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert attr.startswith(("/console/", "#")), attr


def test_unsigned_requests_go_to_sign_in(console):
    for path in ("/console/fleet", "/console/audit", "/console/crashes", "/console/drills"):
        answer = httpx.get(console.url + path)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/signin"
    bad = httpx.get(console.url + "/console/fleet", cookies={"kdiag_console": "x" * 5000})
    assert bad.status_code == 303
    missing = httpx.get(console.url + "/console/no/such/page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "Not found" in missing.text


def test_hostile_forms_and_parameters(console, alice):
    with signed_in(console, alice) as client:
        _hostile(client)


def _hostile(client):
    token = _form_token(client.get("/console/fleet"))
    too_big = client.post(
        "/console/signout",
        content=b"csrf=" + b"a" * 20000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert too_big.status_code == 413
    many = "&".join(f"f{n}=1" for n in range(40))
    assert (
        client.post(
            "/console/signout",
            content=many.encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        ).status_code
        == 413
    )
    twice = client.post(
        "/console/signout",
        content=f"csrf={token}&csrf={token}".encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert twice.status_code == 400
    json_body = client.post("/console/signout", json={"csrf": token})
    assert json_body.status_code == 400
    assert client.get("/console/fleet", params={"q": "x" * 5000}).status_code == 400
    assert client.get("/console/audit", params={"since": "yesterday"}).status_code == 400
    assert client.get("/console/drills/not-an-id").status_code == 400
    escaped = client.get("/console/fleet", params={"q": "<script>alert(1)</script>"})
    assert "<script>alert(1)</script>" not in escaped.text
    assert "&lt;script&gt;" in escaped.text
    assert client.get("/console/fleet").status_code == 200  # still signed in


def _request(scheme):
    scope = {
        "type": "http",
        "scheme": scheme,
        "method": "GET",
        "path": "/console/signin",
        "raw_path": b"/console/signin",
        "query_string": b"",
        "headers": [(b"host", b"console.example")],
        "server": ("127.0.0.1", 443),
    }
    return Request(scope)


def test_the_cookie_is_secure_over_tls_only():
    for scheme, secure in (("https", True), ("http", False)):
        response = Response()
        set_cookie(_request(scheme), response, SESSION_COOKIE, "t" * 43, 60)
        header = response.headers["set-cookie"]
        assert ("; Secure" in header) is secure, header
        assert "HttpOnly" in header
        assert "SameSite=strict" in header


def test_signing_in_again_ends_the_previous_session(console, alice):
    with signed_in(console, alice) as client:
        first = client.cookies["kdiag_console"]
        client.cookies.delete("kdiag_console")  # (a live session is sent to the fleet page)
        form = client.get("/console/signin")
        client.cookies.set("kdiag_console", first, domain="127.0.0.1", path="/console")
        again = client.post(
            "/console/signin",
            data={"csrf": _form_token(form), "access_key_id": alice.key_id, "secret": alice.secret},
        )
        assert again.status_code == 303
        second = again.cookies["kdiag_console"]
        assert second != first
        assert ConsoleSessions(console.store).resume(first) is None
        assert ConsoleSessions(console.store).resume(second) is not None


# last in this module: it leaves 127.0.0.1 throttled for five minutes
def test_failed_sign_ins_are_throttled_and_audited(console):
    mallory = console.user("mallory", allow("kdiag:ListFleet"))
    with httpx.Client(base_url=console.url) as client:
        _throttled(console, mallory, client)


def _throttled(console, mallory, client):
    codes = []
    for _ in range(7):
        token = _form_token(client.get("/console/signin"))
        answer = client.post(
            "/console/signin",
            data={"csrf": token, "access_key_id": mallory.key_id, "secret": "wrong" * 8},
        )
        codes.append(answer.status_code)
        assert mallory.secret not in answer.text
    assert codes == [401] * 5 + [503] * 2
    # now even the right secret is refused for this key
    token = _form_token(client.get("/console/signin"))
    answer = client.post(
        "/console/signin",
        data={"csrf": token, "access_key_id": mallory.key_id, "secret": mallory.secret},
    )
    assert answer.status_code == 503
    assert "too many failed sign-ins" in answer.text
    rows = [r for r in console.store.audit_rows(limit=50) if r.action == "kdiag:ConsoleSignIn"]
    mine = [r for r in rows if r.access_key_id == mallory.key_id]
    assert [r.outcome for r in mine] == ["rejected"] * 8
    assert [r.error_code for r in mine] == ["AuthFailure"] * 5 + ["RequestLimitExceeded"] * 3
    assert all(r.principal.endswith("user/mallory") for r in mine)
    assert all(mallory.secret not in (r.message or "") for r in mine)
