"""Identifiers in the shapes AWS uses: instance ids, access key ids, user ids, accounts.

Instance ids are ``i-`` followed by 17 lowercase hex digits (8 for the old short form);
access key ids are ``AKIA`` + 16 base-32 characters, user ids ``AIDA`` + 17, and secret
access keys 40 characters of the base-64 alphabet, all drawn from :mod:`secrets`.
"""

from __future__ import annotations

import re
import secrets
import string

from kdiag.errors import InvalidInstanceIDMalformed

__all__ = (
    "INSTANCE_ID",
    "check_instance_id",
    "new_access_key_id",
    "new_account_id",
    "new_instance_id",
    "new_secret_access_key",
    "new_user_id",
)

#: A well-formed EC2 instance id (the long form, or the pre-2016 short form).
INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")

_BASE32 = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def _draw(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_instance_id() -> str:
    """A fresh ``i-`` + 17 hex id."""
    return "i-" + secrets.token_hex(9)[:17]


def check_instance_id(value: str) -> str:
    """Return ``value`` when it is a well-formed instance id.

    :raises InvalidInstanceIDMalformed: otherwise (EC2 code ``InvalidInstanceID.Malformed``).
    """
    if not INSTANCE_ID.fullmatch(value):
        shown = value if len(value) <= 64 else value[:61] + "..."
        raise InvalidInstanceIDMalformed(f"Invalid id: {shown!r} (expecting 'i-...')")
    return value


def new_access_key_id() -> str:
    """``AKIA`` + 16 base-32 characters."""
    return "AKIA" + _draw(_BASE32, 16)


def new_secret_access_key() -> str:
    """40 characters, like an AWS secret access key."""
    return _draw(_SECRET_ALPHABET, 40)


def new_user_id() -> str:
    """``AIDA`` + 17 base-32 characters (the ``aws:userid`` of an IAM user)."""
    return "AIDA" + _draw(_BASE32, 17)


def new_account_id() -> str:
    """A 12-digit account id that does not start with 0."""
    return str(secrets.choice("123456789")) + _draw(string.digits, 11)
