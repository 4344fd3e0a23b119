"""The console under test: a real ``kdiag serve`` app on 127.0.0.1 and Debian's Chromium
driven by Selenium (chromedriver from the ``chromium-driver`` package, no browser download).

Screenshots of every page are kept under the session's temporary directory
(``<tmp>/console-shots/``) as artefacts of the run.
"""

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import axe_core_python
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

from kdiag import catalog
from kdiag.console.sources import (
    DrillRecord,
    DrillStep,
    FailingCheck,
    Readiness,
)
from kdiag.console.stored import StoreSources
from kdiag.service import ServiceContext, create_app
from kdiag.service.server import ServerThread
from kdiag.store import Store
from tests.conftest import fixtures_root, require_tool
from tests.dbfixtures import db_url, pg_template, sqlite_template, state_dir, store  # noqa: F401
from tests.e2e.conftest import lab_build, module_lab_root  # noqa: F401 - the lab fixtures

REGION = "us-east-1"
#: axe-core 4.4 as the axe-core-python wheel bundles it (there is no npm registry here)
AXE_JS = Path(axe_core_python.__file__).parent / "axe.min.js"
#: Real dumps indexed into the catalog (kdiag.catalog.index_dump) for the Crashes pages, and
#: the host each is indexed as.
DUMPS = {
    "nmi-zlib": "web-1",
    "nmi-lzo": "web-2",
    "nmi-elf": "web-3",
    "sysrq-zlib": "db-1",
    "oops-null-zlib": "db-1",
}
LAPTOP = (1280, 900)
PHONE = (390, 844)


def allow(*actions, resource="*"):
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": resource}],
    }


@dataclass(frozen=True)
class Creds:
    name: str
    key_id: str
    secret: str


@dataclass
class Console:
    store: Store
    url: str
    users: dict
    instances: dict
    shots: Path

    def user(self, name, *policies, account_id=None):
        user = self.store.create_user(name, account_id=account_id)
        for n, doc in enumerate(policies):
            self.store.put_user_policy(user, f"p{n}", json.dumps(doc))
        key, secret = self.store.create_access_key(user)
        creds = Creds(name, key.id, secret)
        self.users[name] = creds
        return creds


def browser():
    """Headless Debian Chromium through its own chromedriver."""
    binary = require_tool("chromium")
    driver_path = require_tool("chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = (
        "/usr/lib/chromium/chromium" if Path("/usr/lib/chromium/chromium").exists() else binary
    )
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--no-first-run",
        f"--window-size={LAPTOP[0]},{LAPTOP[1]}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=ChromeService(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(120)  # chromium on a loaded 2-core machine
    driver.set_script_timeout(60)
    return driver


class FixtureSources:
    """Readiness and drills as the areas beside the console hand them over, for the account
    given (the other account has none); dumps from the real catalog of the store."""

    def __init__(self, account_id, ids, db):
        self.account_id = account_id
        self.catalog = StoreSources(db)
        now = dt.datetime.now(dt.UTC)
        ready, unready, _unchecked = ids
        self._ready = {
            ready: Readiness("ready", now - dt.timedelta(minutes=5)),
            unready: Readiness(
                "not-ready",
                now - dt.timedelta(minutes=7),
                (
                    FailingCheck(
                        "crashkernel-reserved",
                        "fail",
                        "no memory reserved for the capture kernel",
                        "add crashkernel=256M to the kernel command line and reboot",
                    ),
                    FailingCheck(
                        "panic-on-unrecovered-nmi",
                        "fail",
                        "kernel.unknown_nmi_panic = 0",
                        "sysctl -w kernel.unknown_nmi_panic=1",
                    ),
                ),
            ),
        }
        steps = (
            DrillStep("send", 0.0, 0.2),
            DrillStep("panic", 0.2, 1.4),
            DrillStep("reboot", 1.4, 9.8),
            DrillStep("dump saved", 9.8, 24.5),
            DrillStep("triaged", 24.5, 25.1),
        )
        failed = (
            DrillStep("send", 0.0, 0.2),
            DrillStep("panic", 0.2, 60.0, ok=False),
        )
        self._drills = {
            ready: [
                DrillRecord(f"d{n}", ready, now - dt.timedelta(hours=n + 1), v, s, diag)
                for n, (v, s, diag) in enumerate(
                    [("passed", steps, None)] * 3
                    + [("failed", failed, "no panic within 60 s: unknown_nmi_panic is 0")]
                    + [("passed", steps, None)] * 2
                )
            ]
        }

    def readiness(self, account_id, instance_ids):
        if account_id != self.account_id:
            return {}
        return {k: v for k, v in self._ready.items() if k in instance_ids}

    def drills(self, account_id, instance_id, limit):
        if account_id != self.account_id:
            return []
        return self._drills.get(instance_id, [])[:limit]

    def last_drills(self, account_id, instance_ids):
        if account_id != self.account_id:
            return {}
        return {k: v[0] for k, v in self._drills.items() if k in instance_ids and v}

    def dump_groups(self, account_id):
        return self.catalog.dump_groups(account_id)

    def group_dumps(self, account_id, key):
        return self.catalog.group_dumps(account_id, key)

    def dump(self, account_id, dump_id):
        return self.catalog.dump(account_id, dump_id)


def fixture_dump(name):
    """A real fixture dump: ``vmcore``, or its zstd copy where only that is kept."""
    folder = fixtures_root() / name
    return folder / "vmcore" if (folder / "vmcore").exists() else folder / "vmcore.zst"


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console")
    db = Store.open(f"sqlite:///{tmp}/kdiag.db", key_file=tmp / "kdiag.key")
    account = db.default_account().id
    other = db.create_account("other", account_id="222233334444").id
    ids = {
        name: db.add_instance(
            backend=backend,
            target={"address": f"/run/{name}.qmp"} if backend == "qmp" else {"name": name},
            state=state,
            tags={"Name": name},
        ).id
        for name, backend, state in (
            ("web-ready", "fake", "running"),
            ("db-unready", "qmp", "running"),
            ("batch-unchecked", "fake", "stopped"),
        )
    }
    ids["other-secret"] = db.add_instance(
        backend="fake", target={"name": "o"}, tags={"Name": "other-secret"}, account_id=other
    ).id
    for name, host in DUMPS.items():
        catalog.index_dump(db, fixture_dump(name), host=host, source="scan")
    sources = FixtureSources(
        account, (ids["web-ready"], ids["db-unready"], ids["batch-unchecked"]), db
    )
    ctx = ServiceContext(db, regions=(REGION,))
    shots = Path(tmp) / "console-shots"
    shots.mkdir()
    try:
        with ServerThread(create_app(ctx, console_sources=sources)) as server:
            yield Console(db, server.url, {}, ids, shots)
    finally:
        db.close()


@pytest.fixture(scope="module")
def driver():
    drv = browser()
    try:
        yield drv
    finally:
        drv.quit()


def sign_in(driver, console, creds):
    driver.delete_all_cookies()
    driver.get(console.url + "/console/signin")
    driver.find_element(By.ID, "key").send_keys(creds.key_id)
    driver.find_element(By.ID, "secret").send_keys(creds.secret)
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 60).until(staleness_of(old))


def axe_violations(driver):
    """axe-core (bundled in the axe-core-python wheel) on the current page, every rule of
    WCAG 2.0/2.1 A and AA and best practice: the serious and critical violations."""
    driver.execute_script(AXE_JS.read_text())
    result = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(function (r) { done(r); },"
        " function (e) { done({error: String(e)}); });"
    )
    assert "error" not in result, result
    return [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def screenshot(driver, console, name, size=LAPTOP):
    driver.set_window_size(*size)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(size[0], max(size[1], min(int(height) + 120, 3000)))
    driver.execute_script("window.scrollTo(0, 0)")
    path = console.shots / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(*LAPTOP)
    return path
