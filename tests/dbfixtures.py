"""Database fixtures: every store test runs on SQLite and on a real PostgreSQL.

``make test`` starts a throwaway PostgreSQL (scripts/pg-throwaway.sh) and exports
``KDIAG_TEST_PG_URL``; each test gets a database of its own on it, dropped afterwards.
Without that variable the PostgreSQL cases fail, saying so: they are never skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdiag.store import Store

PG_ENV = "KDIAG_TEST_PG_URL"
DIALECTS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def _pg_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.fail(
            f"{PG_ENV} is not set: run the tests with `make test` (it starts a throwaway "
            "PostgreSQL via scripts/pg-throwaway.sh), or `bash scripts/pg-throwaway.sh "
            ".venv/bin/pytest ...`"
        )
    return url


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private state directory (the key file and the default SQLite database live here)."""
    state = tmp_path / "state"
    monkeypatch.setenv("KDIAG_STATE_DIR", str(state))
    monkeypatch.delenv("KDIAG_DB", raising=False)
    monkeypatch.delenv("KDIAG_KEY_FILE", raising=False)
    return state


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite file that each test copies (migrating costs more)."""
    root = tmp_path_factory.mktemp("sqlite-template")
    path = root / "template.db"
    Store.open(f"sqlite:///{path}", key_file=root / "template.key").close()
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[tuple[object, str]]:
    """A migrated, empty PostgreSQL database that each test clones with CREATE DATABASE
    ... TEMPLATE; created on first use, dropped at the end of the session."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = make_url(_pg_admin_url()).set(drivername="postgresql+psycopg")
    name = f"kdiag_template_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.set(database=name).render_as_string(hide_password=False)
    with tempfile.TemporaryDirectory() as tmp:
        Store.open(url, key_file=Path(tmp) / "template.key").close()
    try:
        yield engine, name
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=DIALECTS)
def db_url(request: pytest.FixtureRequest, state_dir: Path) -> Iterator[str]:
    """A fresh database at the newest schema: a SQLite file, or a new database on the test
    PostgreSQL (both cloned from a migrated template)."""
    if request.param == "sqlite":
        path = state_dir.parent / "test.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    from sqlalchemy import text
    from sqlalchemy.engine import Engine

    engine, template = request.getfixturevalue("pg_template")
    assert isinstance(engine, Engine)
    name = f"kdiag_test_{uuid.uuid4().hex[:12]}"
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield engine.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()
