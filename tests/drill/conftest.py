from tests.dbfixtures import db_url, pg_template, sqlite_template, state_dir, store

__all__ = ("db_url", "pg_template", "sqlite_template", "state_dir", "store")
