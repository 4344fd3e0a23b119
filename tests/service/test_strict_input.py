"""Strict input, attacked over real HTTP: a parameter the action does not define is refused,
never ignored (``dryrun=true`` must not send a real NMI); on ``/v1`` an unknown or duplicate
JSON key, or a query that disagrees with the body, is a 400; and no echoed value, however
hostile, breaks the XML envelope or the JSON answer."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from urllib.parse import quote, urlencode

import httpx
import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.service.conftest import REGION, allow, run_service

NS = "{http://ec2.amazonaws.com/doc/2016-11-15/}"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with run_service(tmp_path_factory.mktemp("strict-input")) as svc:
        yield svc


@pytest.fixture(scope="module")
def world(service):
    box = service.store.add_instance(backend="fake", target={}, tags={"Env": "lab"})
    creds = service.user(
        "strict",
        allow(action=["ec2:SendDiagnosticInterrupt", "ec2:DescribeInstances"]),
    )
    return {"box": box, "creds": creds}


def ec2_post(service, creds, body: bytes | str) -> httpx.Response:
    """A signed EC2 Query POST whose form body is exactly ``body``."""
    data = body.encode() if isinstance(body, str) else body
    request = AWSRequest(
        method="POST",
        url=service.url + "/",
        data=data,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(creds.key_id, creds.secret), "ec2", REGION).add_auth(request)
    return httpx.post(request.url, content=data, headers=dict(request.headers.items()))


def v1(service, creds, method, path, data: bytes = b"") -> httpx.Response:
    """A signed ``/v1`` request with exactly ``data`` as its body."""
    request = AWSRequest(
        method=method,
        url=service.url + path,
        data=data,
        headers={"Content-Type": "application/json"},
    )
    SigV4Auth(Credentials(creds.key_id, creds.secret), "ec2", REGION).add_auth(request)
    return httpx.request(method, request.url, content=data, headers=dict(request.headers.items()))


def xml_error(response: httpx.Response) -> str:
    """The error code, after parsing the whole answer with a strict XML parser."""
    root = ET.fromstring(response.content)  # expat: rejects any character XML 1.0 forbids
    return root.findtext("Errors/Error/Code") or ""


@pytest.mark.parametrize(
    "extra",
    [
        "dryrun=true",
        "DRYRUN=true",
        "dryRun=true",
        "DryRun.1=true",
        "DryRun%20=true",
        "Dry%00Run=true",
        "InstanceId.1=i-0123456789abcdef0",
        "X-Amz-DryRun=true",
        "X-Amz-Signature=00",  # SigV4's names are only skipped in the query string
    ],
)
def test_ec2_parameter_the_action_does_not_define_sends_nothing(service, world, extra):
    before = list(service.backend.sent)
    body = f"Action=SendDiagnosticInterrupt&Version=2016-11-15&InstanceId={world['box'].id}&{extra}"
    response = ec2_post(service, world["creds"], body)
    assert response.status_code == 400, response.text
    assert xml_error(response) == "UnknownParameter"
    assert service.backend.sent == before
    row = service.audit(response.headers["x-amzn-requestid"])
    assert (row.outcome, row.error_code) == ("rejected", "UnknownParameter")


@pytest.mark.parametrize(
    "extra",
    [
        "InstanceId=i-0123456789abcdef0",
        "instanceId.1=i-0123456789abcdef0",
        "InstanceId.01=i-0123456789abcdef0",
        "Filter.0.Name=tag:Env&Filter.0.Value.1=lab",
        "Filter.1.Name=tag:Env&Filter.1.Values.1=lab",
        "Filters.1.Name=tag:Env",
    ],
)
def test_describe_instances_refuses_misspelt_parameters(service, world, extra):
    response = ec2_post(service, world["creds"], f"Action=DescribeInstances&{extra}")
    assert response.status_code == 400, response.text
    assert xml_error(response) == "UnknownParameter"


def test_describe_instances_defined_parameters_still_work(service, world):
    box = world["box"].id
    body = urlencode(
        {
            "Action": "DescribeInstances",
            "Version": "2016-11-15",
            "InstanceId.1": box,
            "Filter.1.Name": "tag:Env",
            "Filter.1.Value.1": "lab",
            "MaxResults": "5",
        }
    )
    response = ec2_post(service, world["creds"], body)
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.content)
    assert [e.text for e in root.iter(f"{NS}instanceId")] == [box]


def test_presigned_dry_run_keeps_its_sigv4_parameters(service, world):
    url = (
        f"{service.url}/?Action=SendDiagnosticInterrupt&Version=2016-11-15"
        f"&InstanceId={world['box'].id}&DryRun=true"
    )
    request = AWSRequest(method="GET", url=url)
    creds = Credentials(world["creds"].key_id, world["creds"].secret)
    SigV4QueryAuth(creds, "ec2", REGION, expires=60).add_auth(request)
    before = list(service.backend.sent)
    response = httpx.get(request.url)
    assert response.status_code == 412, response.text
    assert xml_error(response) == "DryRunOperation"
    assert service.backend.sent == before


def interrupt_path(world) -> str:
    return f"/v1/instances/{world['box'].id}/diagnostic-interrupt"


@pytest.mark.parametrize(
    ("query", "body", "code"),
    [
        ("", b'{"dryRun": true}', "UnknownParameter"),
        ("", b'{"dryrun": true}', "UnknownParameter"),
        ("", b'{"DryRun": true, "DryRun": false}', "InvalidParameterCombination"),
        ("", b'{"DryRun": false, "DryRun": true}', "InvalidParameterCombination"),
        ("", b'{"DryRun": true, "x": {"a": 1, "a": 2}}', "InvalidParameterCombination"),
        ("?dry_run=true", b'{"DryRun": false}', "InvalidParameterCombination"),
        ("?dry_run=false", b'{"DryRun": true}', "InvalidParameterCombination"),
        ("?dry_run=true&dry_run=false", b"", "InvalidParameterCombination"),
        ("?dryrun=true", b"", "UnknownParameter"),
        ("?DryRun=true", b"", "UnknownParameter"),
        ("", b'{"DryRun": "yes"}', "InvalidParameterValue"),
    ],
)
def test_v1_unknown_duplicate_or_disagreeing_input_sends_nothing(service, world, query, body, code):
    before = list(service.backend.sent)
    response = v1(service, world["creds"], "POST", interrupt_path(world) + query, body)
    assert response.status_code == 400, response.text
    assert response.json()["Error"]["Code"] == code
    assert service.backend.sent == before


def test_v1_agreeing_query_and_body_is_one_dry_run(service, world):
    before = list(service.backend.sent)
    path = interrupt_path(world) + "?dry_run=true"
    response = v1(service, world["creds"], "POST", path, b'{"DryRun": true}')
    assert response.status_code == 412, response.text
    assert service.backend.sent == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/instances?ids=i-0123456789abcdef0", b""),
        ("/v1/instances?filter=tag:Env=lab&Filter=x", b""),
        ("/v1/instances", b'{"InstanceId": "i-0123456789abcdef0"}'),
        ("/v1/audit?limit=5&limit=6", b""),
        ("/v1/audit?Limit=5", b""),
    ],
)
def test_v1_reads_refuse_unknown_input(service, world, path, body):
    response = v1(service, world["creds"], "GET", path, body)
    assert response.status_code == 400, response.text
    assert response.json()["Error"]["Code"] in {
        "UnknownParameter",
        "InvalidParameterCombination",
        "InvalidParameterValue",
    }


HOSTILE = [
    "\x00",
    "\x01\x02\x1f",
    "\x0b\x0c",
    "\ufffe\uffff",
    "]]>",
    "<![CDATA[x]]>",
    "</Message></Error>",
    "&amp;&#0;&#x1;",
    "\"'<>&",
    "\x7f\x85",
    "\u2028\u2029",
]


@pytest.mark.parametrize("junk", HOSTILE, ids=[repr(j) for j in HOSTILE])
def test_echoed_junk_never_breaks_the_xml_envelope(service, world, junk):
    enc = quote(junk, safe="")
    bodies = [
        f"Action={enc}",  # InvalidAction echoes the action
        f"Action=SendDiagnosticInterrupt&InstanceId=i-1&{enc}x=1",  # the parameter's name
        f"Action=SendDiagnosticInterrupt&InstanceId={enc}",  # a malformed id
        f"Action=SendDiagnosticInterrupt&InstanceId={world['box'].id}&DryRun={enc}",
        f"Action=DescribeInstances&Filter.1.Name={enc}&Filter.1.Value.1=x",  # filter name
        f"Action=DescribeInstances&InstanceId.1={enc}",
        f"Action=DescribeInstances&MaxResults={enc}",
    ]
    for body in bodies:
        response = ec2_post(service, world["creds"], body)
        assert response.status_code == 400, (body, response.text)
        assert xml_error(response), body  # parsed strictly, and it has a code


@pytest.mark.parametrize("junk", ["\ud800", "\udfff\ud800", "\x00", "]]>"])
def test_echoed_junk_never_breaks_the_json_answer(service, world, junk):
    before = list(service.backend.sent)
    body = json.dumps({junk: True}).encode()  # ASCII escapes: a lone surrogate parses back
    response = v1(service, world["creds"], "POST", interrupt_path(world), body)
    assert response.status_code == 400, response.text
    error = response.json()["Error"]
    assert error["Code"] == "UnknownParameter"
    error["Message"].encode("utf-8")  # no lone surrogate made it out
    assert service.backend.sent == before
    path = f"/v1/instances/{quote(junk, safe='', errors='surrogatepass')}/diagnostic-interrupt"
    response = v1(service, world["creds"], "POST", path, b"{}")
    assert response.status_code == 400, response.text
    assert response.json()["Error"]["Code"] == "InvalidInstanceID.Malformed"


def test_unencodable_bytes_are_a_clean_400(service, world):
    for body in (b"Action=\xff\xfe", b"Action=%ED%A0%80", b"Action=%FF"):
        response = ec2_post(service, world["creds"], body)
        assert response.status_code == 400, response.text
        assert xml_error(response) == "InvalidParameterValue"
