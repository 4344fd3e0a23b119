"""The console in a real browser: Debian's Chromium driven by Selenium.

Sign-in, the fleet with its failing checks, another account's data and forbidden actions
kept out of sight, the crash group with its count, axe-core on every page, screenshots.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

from kdiag import catalog
from kdiag.store.sessions import ConsoleSessions
from tests.console.conftest import (
    DUMPS,
    LAPTOP,
    PHONE,
    allow,
    axe_violations,
    fixture_dump,
    screenshot,
    sign_in,
)

READ_ALL = allow(
    "kdiag:ListFleet",
    "kdiag:GetDrill",
    "kdiag:ListDumps",
    "kdiag:GetDump",
    "cloudtrail:LookupEvents",
)


@pytest.fixture(scope="module")
def admin(console):
    return console.user("admin", READ_ALL)


@pytest.fixture(scope="module")
def viewer(console):
    """May list the fleet and nothing else."""
    return console.user("viewer", allow("kdiag:ListFleet"))


@pytest.fixture(scope="module")
def outsider(console):
    """Every read action, in the other account."""
    return console.user("outsider", READ_ALL, account_id="222233334444")


def nav(driver):
    return [a.text for a in driver.find_elements(By.CSS_SELECTOR, "header nav a")]


def test_sign_in_shows_the_fleet_and_its_failing_checks(console, driver, admin):
    sign_in(driver, console, admin)
    assert driver.current_url.endswith("/console/fleet")
    rows = {
        r.get_attribute("data-instance"): r
        for r in driver.find_elements(By.CSS_SELECTOR, "#fleet tbody tr[data-instance]")
    }
    ids = console.instances
    assert set(rows) == {ids["web-ready"], ids["db-unready"], ids["batch-unchecked"]}
    checks = {
        iid: [c.get_attribute("data-check") for c in row.find_elements(By.CSS_SELECTOR, "li.check")]
        for iid, row in rows.items()
    }
    assert checks == {
        ids["web-ready"]: [],
        ids["db-unready"]: ["crashkernel-reserved", "panic-on-unrecovered-nmi"],
        ids["batch-unchecked"]: [],
    }
    unready = rows[ids["db-unready"]].text
    assert "add crashkernel=256M to the kernel command line and reboot" in unready
    assert "not ready" in unready
    assert "qmp" in unready
    assert "not checked" in rows[ids["batch-unchecked"]].text
    assert "passed" in rows[ids["web-ready"]].text
    counts = driver.find_element(By.CSS_SELECTOR, "ul.counts").text
    assert "3\ninstances" in counts
    assert "1\nnot ready" in counts
    assert nav(driver) == ["Fleet", "Drills", "Crashes", "Audit"]
    # the page view is audited like an API request
    rows = console.store.audit_rows(instance_id=None, limit=20)
    assert any(
        r.action == "kdiag:ListFleet" and r.outcome == "ok" and r.principal.endswith("user/admin")
        for r in rows
    )


def test_the_session_cookie_is_httponly_strict_and_holds_no_secret(console, driver, admin):
    sign_in(driver, console, admin)
    cookies = {c["name"]: c for c in driver.get_cookies()}
    session = cookies["kdiag_console"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/console"
    assert admin.secret not in session["value"]
    assert "kdiag_console_pre" not in cookies
    assert admin.secret not in driver.page_source
    # the script on the page cannot read it
    assert "kdiag_console" not in driver.execute_script("return document.cookie")


def test_filter_and_sort_the_fleet(console, driver, admin):
    sign_in(driver, console, admin)
    driver.get(console.url + "/console/fleet?verdict=not-ready")
    shown = [
        r.get_attribute("data-instance")
        for r in driver.find_elements(By.CSS_SELECTOR, "#fleet tr[data-instance]")
    ]
    assert shown == [console.instances["db-unready"]]
    driver.get(console.url + "/console/fleet?q=batch")
    shown = [
        r.get_attribute("data-instance")
        for r in driver.find_elements(By.CSS_SELECTOR, "#fleet tr[data-instance]")
    ]
    assert shown == [console.instances["batch-unchecked"]]
    driver.get(console.url + "/console/fleet?sort=readiness")
    shown = [
        r.get_attribute("data-instance")
        for r in driver.find_elements(By.CSS_SELECTOR, "#fleet tr[data-instance]")
    ]
    assert shown[0] == console.instances["db-unready"]
    assert shown[-1] == console.instances["web-ready"]


def _analyze(path):
    """The oracle: ``kdiag analyze --json`` (the CLI, a separate process) on one dump."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KDIAG_")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "kdiag"), "analyze", "--json", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def test_crash_groups_appear_with_their_counts(console, driver, admin):
    expected = {}
    for name, host in DUMPS.items():
        panic = _analyze(fixture_dump(name))["panic"]
        group = expected.setdefault(panic["signature"], {"count": 0, "hosts": set()})
        group["count"] += 1
        group["hosts"].add(host)
    sign_in(driver, console, admin)
    driver.get(console.url + "/console/crashes")
    groups = driver.find_elements(By.CSS_SELECTOR, "section.group")
    found = {
        g.find_element(By.TAG_NAME, "h2").text: (
            int(g.find_element(By.CSS_SELECTOR, "dd.count").text),
            g.find_element(By.CSS_SELECTOR, "dd.hosts").text,
        )
        for g in groups
    }
    assert found == {
        sig: (e["count"], ", ".join(sorted(e["hosts"]))) for sig, e in expected.items()
    }
    assert max(e["count"] for e in expected.values()) >= 2  # one group holds several dumps
    # each group has its occurrences chart, drawn on the server
    assert len(driver.find_elements(By.CSS_SELECTOR, "section.group svg.chart")) == len(expected)
    nmi = next(sig for sig, e in expected.items() if e["count"] >= 2)
    driver.find_element(By.LINK_TEXT, nmi).click()
    dumps = driver.find_elements(By.CSS_SELECTOR, "#dumps tbody tr")
    assert len(dumps) == expected[nmi]["count"]
    assert driver.find_element(By.ID, "signature").text == nmi
    dumps[0].find_element(By.TAG_NAME, "a").click()
    summary = driver.find_element(By.ID, "summary").text
    assert "6.1.0-56-amd64" in summary
    assert "Kernel panic - not syncing" in driver.find_element(By.CSS_SELECTOR, "pre.log").text


def test_drill_page_draws_the_timeline_and_history(console, driver, admin):
    sign_in(driver, console, admin)
    driver.get(console.url + f"/console/drills/{console.instances['web-ready']}")
    assert driver.find_element(By.ID, "last-verdict").text == "passed"
    bars = driver.find_elements(By.CSS_SELECTOR, "svg[aria-labelledby='timeline-t'] rect")
    assert len(bars) == 5
    # drawn to scale: the reboot (8.4 s) is 7 times as wide as the panic (1.2 s)
    widths = [float(b.get_attribute("width")) for b in bars]
    assert widths[2] / widths[1] == pytest.approx(8.4 / 1.2, rel=0.01)
    history = driver.find_elements(By.CSS_SELECTOR, "svg[aria-labelledby='history-t'] rect")
    assert len(history) == 6
    assert [h.get_attribute("fill") for h in history].count("#a4161a") == 1
    # no drill library behind this console: no action offered
    assert not driver.find_elements(By.ID, "run-drill")


def test_a_user_without_permission_sees_neither_pages_nor_actions(console, driver, viewer):
    sign_in(driver, console, viewer)
    assert nav(driver) == ["Fleet", "Drills"]
    driver.get(console.url + "/console/crashes")
    assert "Not authorized" in driver.find_element(By.TAG_NAME, "h1").text
    assert "kdiag:ListDumps" in driver.page_source
    assert "NMI: Not continuing" not in driver.page_source
    driver.get(console.url + "/console/audit")
    assert "Not authorized" in driver.find_element(By.TAG_NAME, "h1").text
    driver.get(console.url + f"/console/drills/{console.instances['web-ready']}")
    assert "Not authorized" in driver.find_element(By.TAG_NAME, "h1").text
    denied = [
        r
        for r in console.store.audit_rows(limit=50)
        if r.principal and r.principal.endswith("user/viewer") and r.outcome == "denied"
    ]
    assert {r.action for r in denied} >= {
        "kdiag:ListDumps",
        "cloudtrail:LookupEvents",
        "kdiag:GetDrill",
    }


def test_another_account_sees_none_of_this_accounts_data(console, driver, outsider):
    sign_in(driver, console, outsider)
    page = driver.page_source
    assert driver.current_url.endswith("/console/fleet")
    for name in ("web-ready", "db-unready", "batch-unchecked"):
        assert console.instances[name] not in page
    assert console.instances["other-secret"] in page
    driver.get(console.url + f"/console/drills/{console.instances['web-ready']}")
    assert "Not found" in driver.find_element(By.TAG_NAME, "h1").text
    driver.get(console.url + "/console/crashes")
    assert "NMI: Not continuing" not in driver.page_source
    assert "No dumps" in driver.page_source
    dump_id = catalog.group_dumps(console.store)[0].dump_ids[0]
    driver.get(console.url + f"/console/dumps/{dump_id}")
    assert "Not found" in driver.find_element(By.TAG_NAME, "h1").text
    driver.get(console.url + "/console/audit")
    assert "user/admin" not in driver.page_source
    assert "admin" not in driver.find_element(By.ID, "audit").text


def test_audit_page_filters(console, driver, admin):
    sign_in(driver, console, admin)
    driver.get(console.url + "/console/audit?user=admin&outcome=ok")
    cells = driver.find_elements(By.CSS_SELECTOR, "#audit tbody tr td:nth-child(2)")
    assert cells
    assert {c.text for c in cells} == {"admin"}
    driver.get(console.url + "/console/audit?user=viewer&outcome=denied")
    actions = {
        c.text for c in driver.find_elements(By.CSS_SELECTOR, "#audit tbody tr td:nth-child(3)")
    }
    assert "kdiag:ListDumps" in actions


def test_sign_out_ends_the_session(console, driver, admin):
    sign_in(driver, console, admin)
    token = driver.get_cookie("kdiag_console")["value"]
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, "header form button").click()
    WebDriverWait(driver, 60).until(staleness_of(old))
    assert driver.current_url.endswith("/console/signin")
    assert not _live(console, token)
    driver.add_cookie({"name": "kdiag_console", "value": token, "path": "/console"})
    driver.get(console.url + "/console/fleet")
    assert driver.current_url.endswith("/console/signin")


def _live(console, token):
    return ConsoleSessions(console.store).resume(token) is not None


PAGES = [
    ("signin", "/console/signin", False),
    ("fleet", "/console/fleet", True),
    ("drills", "/console/drills", True),
    ("drill", "/console/drills/{web-ready}", True),
    ("crashes", "/console/crashes", True),
    ("group", "/console/crashes/group?group={group}", True),
    ("dump", "/console/dumps/{dump}", True),
    ("audit", "/console/audit", True),
]


def test_every_page_passes_axe_and_is_kept_as_a_screenshot(console, driver, admin):
    failures = {}
    for name, path, signed_in in PAGES:
        if signed_in:
            if driver.get_cookie("kdiag_console") is None:
                sign_in(driver, console, admin)
        else:
            driver.delete_all_cookies()
        groups = catalog.group_dumps(console.store)
        url = console.url + path.replace("{web-ready}", console.instances["web-ready"])
        url = url.replace("{group}", groups[0].signature_id).replace(
            "{dump}", groups[0].dump_ids[0]
        )
        for label, size in (("laptop", LAPTOP), ("phone", PHONE)):
            driver.set_window_size(*size)
            driver.get(url)
            assert "Not authorized" not in driver.title
            found = axe_violations(driver)
            if found:
                failures[f"{name}/{label}"] = found
            screenshot(driver, console, f"{name}-{label}", size)
            # nothing overflows the viewport sideways outside its scrolling table
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 1, (name, label, overflow)
    driver.set_window_size(*LAPTOP)
    assert failures == {}
    shots = sorted(p.name for p in console.shots.iterdir())
    assert len(shots) == 2 * len(PAGES)
    out = os.environ.get("KDIAG_CONSOLE_SHOTS")
    if out:  # make docs-shots: copy the run's screenshots where asked
        for p in console.shots.iterdir():
            shutil.copy(p, out)


def test_the_accessibility_check_can_fail(console, driver):
    """The same check on a page spoiled on purpose reports it: an unlabelled field and an
    image without text (both critical in axe-core)."""
    driver.delete_all_cookies()
    driver.get(console.url + "/console/signin")
    driver.execute_script(
        "var main = document.querySelector('main');"
        "main.appendChild(document.createElement('input'));"
        "var img = document.createElement('img'); img.src = '/console/static/icon.svg';"
        "main.appendChild(img);"
    )
    found = {rule for rule, _impact, _nodes in axe_violations(driver)}
    assert {"label", "image-alt"} <= found
