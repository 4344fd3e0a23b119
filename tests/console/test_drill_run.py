"""Run a drill on a real lab guest from the console and watch it reach its verdict.

One default-profile guest (512 MiB, TCG); the drill's user is set up as ``kdiag drill
--setup`` does.  The browser signs in, opens the instance's drill page, confirms, and the
progress section (refreshed by the page's one script) must end with the verdict ``passed``;
the fleet page then shows the drill.  A user allowed only to read drills is offered no
action, and the action refused when posted anyway.
"""

from __future__ import annotations

import re
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
from kdiag.service import ServiceContext, create_app
from kdiag.service.server import ServerThread
from kdiag.store import Store
from tests.console.conftest import Console, allow, browser, screenshot, sign_in

pytestmark = pytest.mark.e2e

BOOT = 400.0
VERDICT = 420.0


@pytest.fixture(scope="module")
def lab_console(module_lab_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    guest = Lab(module_lab_root).up(name="console", profile="default", memory="512M", cpus=1)
    guest.wait_ready(BOOT)
    state = module_lab_root / "state"
    state.mkdir(mode=0o700)
    store = Store.open(f"sqlite:///{state}/kdiag.db", key_file=state / "kdiag.key")
    instance = store.add_instance(
        backend="qmp", target={"address": str(guest.qmp_socket)}, tags={"Name": "lab-default"}
    )
    setup(store, instance)
    ctx = ServiceContext(store, regions=("us-east-1",), backends=BackendPool())
    shots = tmp_path_factory.mktemp("console-drill") / "console-shots"
    shots.mkdir()
    try:
        with ServerThread(create_app(ctx)) as server:
            yield Console(store, server.url, {}, {"lab": instance.id}, shots)
    finally:
        ctx.close()
        store.close()


def test_run_a_drill_from_the_page_and_watch_its_verdict(lab_console: Console) -> None:
    console = lab_console
    iid = console.instances["lab"]
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
        WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.ID, "confirm"))
        driver.find_element(By.ID, "confirm").click()
        old = driver.find_element(By.TAG_NAME, "html")
        t0 = time.monotonic()
        driver.find_element(By.ID, "confirm-run").click()
        WebDriverWait(driver, 20).until(staleness_of(old))
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
