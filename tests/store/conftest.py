from tests.dbfixtures import db_url, state_dir, store

__all__ = ("db_url", "state_dir", "store")
