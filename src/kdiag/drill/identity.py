"""The drill's own IAM user: created on request (``kdiag drill --setup``), never implied.

The user ``kdiag-drill`` of the instance's account has one inline policy, ``kdiag-drill``,
that allows ``ec2:SendDiagnosticInterrupt`` on exactly the instances set up for drills (their
ARNs, added one by one), and nothing else: deny by default still holds for every other
instance.  Its access key's secret stays sealed in the store; the drill unseals it only to
sign its own request, and never prints or logs it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from kdiag import policy
from kdiag.errors import ConfigError, NoSuchEntity
from kdiag.store import Instance, Store

__all__ = ("DRILL_POLICY", "DRILL_USER", "DrillCredentials", "credentials", "setup")

DRILL_USER = "kdiag-drill"
DRILL_POLICY = "kdiag-drill"


@dataclass(frozen=True, slots=True)
class DrillCredentials:
    """An access key of the drill's user.  ``repr`` hides the secret."""

    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return f"DrillCredentials({self.access_key_id!r}, secret=***)"


def _arns(document: str) -> list[str]:
    try:
        statements = json.loads(document).get("Statement", [])
    except (ValueError, AttributeError):
        return []
    found: list[str] = []
    for st in statements if isinstance(statements, list) else [statements]:
        resource = st.get("Resource", []) if isinstance(st, dict) else []
        found += [resource] if isinstance(resource, str) else list(resource)
    return [r for r in found if isinstance(r, str)]


def setup(store: Store, instance: Instance) -> list[str]:
    """Create (or extend) the drill's user, policy and key for ``instance``; what was done."""
    done: list[str] = []
    user = store.get_user(DRILL_USER, account_id=instance.account_id)
    if user is None:
        user = store.create_user(DRILL_USER, account_id=instance.account_id)
        done.append(f"created user {DRILL_USER}")
    arn = instance.arn
    try:
        current = _arns(store.get_user_policy(user, DRILL_POLICY))
    except NoSuchEntity:
        current = []
    if arn not in current:
        document = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "KdiagDrill",
                    "Effect": "Allow",
                    "Action": "ec2:SendDiagnosticInterrupt",
                    "Resource": sorted({*current, arn}),
                }
            ],
        }
        policy.validate(json.dumps(document))
        store.put_user_policy(user, DRILL_POLICY, json.dumps(document))
        done.append(f"allowed {DRILL_USER} to interrupt {instance.id} (policy {DRILL_POLICY})")
    if not store.list_access_keys(user):
        key, _secret = store.create_access_key(user)
        done.append(f"created access key {key.id} for {DRILL_USER} (secret sealed in the store)")
    return done


def credentials(store: Store, account_id: str) -> DrillCredentials:
    """The drill user's first active key, unsealed.

    :raises ConfigError: no drill user or no active key in that account.
    """
    user = store.get_user(DRILL_USER, account_id=account_id)
    if user is None:
        raise ConfigError(f"no drill user {DRILL_USER!r} in account {account_id}")
    for key in store.list_access_keys(user):
        if key.status != "Active":
            continue
        found = store.lookup_access_key(key.id)
        if found is not None:
            return DrillCredentials(key.id, found[2])
    raise ConfigError(f"the drill user {DRILL_USER!r} has no active access key")
