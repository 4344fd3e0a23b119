"""Real lab guests in the console: their readiness on the fleet page, and a drill run from
the page to its verdict.

Two guests boot at once (512 MiB, TCG): ``default`` (ready) and ``no-crashkernel``.  Their
readiness is recorded as ``kdiag fleet doctor`` records it (the checks on the facts each
guest collected at boot, :func:`kdiag.store.fleet.record_fleet_run`); the fleet page must
show exactly the checks that ``kdiag doctor --for nmi --facts`` (the CLI, a separate process)
fails for each.  Only the default guest is drilled; the drill's user is set up as ``kdiag
drill --setup`` does.  The browser signs in, opens the instance's drill page, confirms, and
the progress section (refreshed by the page's one script) must end with the verdict
``passed``; the fleet page then shows the drill, and the Crashes page its dump as an ``nmi``
crash group of one.  A user allowed only to read drills is offered no
action, and the action refused when posted anyway.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

from kdiag.backends.base import BackendPool
from kdiag.drill import setup
from kdiag.lab import Lab
from kdiag.readiness import facts as facts_mod
from kdiag.readiness.checks import run_checks
from kdiag.service import ServiceContext, create_app
from kdiag.service.server import ServerThread
from kdiag.store import Store
from kdiag.store.fleet import FleetHost, FleetRun, record_fleet_run
from tests.conftest import REPO
from tests.console.conftest import Console, allow, browser, screenshot, sign_in

pytestmark = pytest.mark.e2e

BOOT = 400.0
PROFILES = ("default", "no-crashkernel")
VERDICT = 420.0


@pytest.fixture(scope="module")
def lab_console(module_lab_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    lab = Lab(module_lab_root)
    guests = {
        profile: lab.up(name=f"c-{profile}", profile=profile, memory="512M", cpus=1)
        for profile in PROFILES
    }
    errors: list[BaseException] = []

    def boot(profile: str) -> None:
        try:
            guests[profile].wait_ready(BOOT)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, once both boots are over
            errors.append(exc)

    threads = [threading.Thread(target=boot, args=(p,)) for p in PROFILES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    state = module_lab_root / "state"
    state.mkdir(mode=0o700)
    store = Store.open(f"sqlite:///{state}/kdiag.db", key_file=state / "kdiag.key")
    ids = {}
    hosts = []
    now = dt.datetime.now(dt.UTC)
    for profile, guest in guests.items():
        ids[profile] = store.add_instance(
            backend="qmp",
            target={"address": str(guest.qmp_socket)},
            tags={"Name": f"lab-{profile}"},
        ).id
        report = run_checks(facts_mod.load(guest.facts_path), "nmi")
        hosts.append(
            FleetHost(
                host=f"lab-{profile}",
                status="fail" if report.failed else "pass",
                answered_at=now,
                failing=tuple(c.id for c in report.checks if c.status == "fail"),
                checks=tuple(c.to_json() for c in report.checks),
            )
        )
    account = store.default_account().id
    run = FleetRun(account, "doctor", "lab", "nmi", now, now, len(hosts), 0)
    record_fleet_run(store, run, hosts)
    setup(store, store.get_instance(ids["default"]))
    ctx = ServiceContext(store, regions=("us-east-1",), backends=BackendPool())
    shots = tmp_path_factory.mktemp("console-drill") / "console-shots"
    shots.mkdir()
    try:
        with ServerThread(create_app(ctx)) as server:
            yield Console(store, server.url, {}, ids, shots), guests
    finally:
        ctx.close()
        store.close()


def _doctor_fails(facts: Path) -> list[str]:
    """The oracle: ``kdiag doctor --for nmi --facts FILE --json``, a separate process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KDIAG_")}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "kdiag"),
            "doctor",
            "--for",
            "nmi",
            "--facts",
            str(facts),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
        check=False,
    )
    checks = json.loads(done.stdout)["checks"]
    return [c["id"] for c in checks if c["status"] in ("fail", "warn")]


def test_the_fleet_page_shows_exactly_each_guests_failing_checks(lab_console: Any) -> None:
    console, guests = lab_console
    admin = console.user("fleet-admin", allow("kdiag:ListFleet"))
    driver = browser()
    try:
        sign_in(driver, console, admin)
        for profile, guest in guests.items():
            row = driver.find_element(
                By.CSS_SELECTOR, f"tr[data-instance='{console.instances[profile]}']"
            )
            shown = [
                c.get_attribute("data-check")
                for c in row.find_elements(By.CSS_SELECTOR, "li.check")
            ]
            expected = _doctor_fails(guest.facts_path)
            assert sorted(shown) == sorted(expected), profile
            verdict = row.find_element(By.CSS_SELECTOR, "td.verdict").text
            if profile == "default":
                assert "crashkernel-reserved" not in shown
            else:
                assert "crashkernel-reserved" in shown
                assert "not ready" in verdict
        screenshot(driver, console, "fleet-lab")
    finally:
        driver.quit()


def test_run_a_drill_from_the_page_and_watch_its_verdict(lab_console: Any) -> None:
    console, _guests = lab_console
    iid = console.instances["default"]
    oncall = console.user(
        "oncall",
        allow("kdiag:ListFleet", "kdiag:GetDrill", "kdiag:RunDrill"),
    )
    reader = console.user("reader", allow("kdiag:ListFleet", "kdiag:GetDrill"))
    driver = browser()
    try:
        # a reader is offered no action, and refused when posting it anyway
        sign_in(driver, console, reader)
        driver.get(f"{console.url}/console/drills/{iid}")
        assert not driver.find_elements(By.ID, "run-drill")
        cookie = driver.get_cookie("kdiag_console")["value"]
        page = httpx.get(f"{console.url}/console/fleet", cookies={"kdiag_console": cookie})
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        refused = httpx.post(
            f"{console.url}/console/drills/{iid}/run",
            data={"csrf": csrf, "confirm": "yes"},
            cookies={"kdiag_console": cookie},
        )
        assert refused.status_code == 403
        assert "kdiag:RunDrill" in refused.text

        sign_in(driver, console, oncall)
        driver.get(f"{console.url}/console/drills/{iid}")
        driver.find_element(By.ID, "run-drill").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "confirm"))
        driver.find_element(By.ID, "confirm").click()
        old = driver.find_element(By.TAG_NAME, "html")
        t0 = time.monotonic()
        driver.find_element(By.ID, "confirm-run").click()
        WebDriverWait(driver, 60).until(staleness_of(old))
        assert "/runs/" in driver.current_url
        # live progress: the steps appear without a reload, then the verdict
        WebDriverWait(driver, 120, poll_frequency=1).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#run-events li")) >= 2
        )
        screenshot(driver, console, "drill-running")
        WebDriverWait(driver, VERDICT, poll_frequency=2).until(
            lambda d: d.find_elements(By.ID, "run-verdict")
        )
        took = time.monotonic() - t0
        verdict = driver.find_element(By.ID, "run-verdict").text
        events = driver.find_element(By.ID, "run-events").text
        assert verdict == "passed", events
        for step in ("send: pass", "panic: pass", "reboot: pass", "dump: pass", "triage: pass"):
            assert step in events
        assert driver.find_elements(By.CSS_SELECTOR, "svg[aria-labelledby='run-timeline-t'] rect")
        screenshot(driver, console, "drill-verdict")
        print(f"\nconsole drill: verdict {verdict} in {took:.0f} s")

        # the drill is in the history: the fleet page shows it
        driver.get(f"{console.url}/console/fleet")
        row = driver.find_element(By.CSS_SELECTOR, f"tr[data-instance='{iid}']")
        assert "passed" in row.text
        _crash_group_of_one(driver, console)
        rows = console.store.audit_rows(instance_id=iid)
        assert any(r.action == "kdiag:RunDrill" and r.outcome == "ok" for r in rows)
        assert any(r.action == "SendDiagnosticInterrupt" and r.outcome == "sent" for r in rows), [
            (r.action, r.outcome) for r in rows
        ]
        assert any(
            r.action == "kdiag:RunDrill"
            and r.outcome == "denied"
            and r.principal.endswith("user/reader")
            for r in rows
        )
    finally:
        driver.quit()


def _crash_group_of_one(driver: Any, console: Console) -> None:
    # the drill's dump is in the catalog: its crash group appears, with its count
    oncall_dumps = console.user("dumps-reader", allow("kdiag:ListDumps", "kdiag:GetDump"))
    sign_in(driver, console, oncall_dumps)
    driver.get(f"{console.url}/console/crashes")
    groups = {
        g.find_element(By.TAG_NAME, "h2").text: g.find_element(By.CSS_SELECTOR, "dd.count").text
        for g in driver.find_elements(By.CSS_SELECTOR, "section.group")
    }
    nmi = [sig for sig in groups if sig.startswith("nmi:")]
    assert len(nmi) == 1, groups
    assert groups[nmi[0]] == "1"
    screenshot(driver, console, "crashes-lab")
