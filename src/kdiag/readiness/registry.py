"""Where readiness checks are registered: one decorator per check, and everything else derived.

A check is a function of a context (the facts, the purpose, ...) that returns a
:class:`Verdict`; ``@registry.check("panic-reboot", needs="config", ...)`` gives it its id,
what it needs, the purposes it serves and the two sentences of its documentation, once.  The
id lists, ``--for``'s choices, the n/a for purposes and offline images, and the table in
docs/readiness.md all come from the registry (the way drgn registers its commands).

``needs`` says what a check reads:

- ``config``: configuration files alone; ``kdiag configure`` makes it pass without a reboot;
- ``boot``: configuration that takes effect at the next boot (judged from the files on an
  offline image, from the running kernel on a live one);
- ``runtime``: the running kernel only; ``n/a`` on an offline image (a root tree or a facts
  document without ``/proc`` and ``/sys``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from kdiag.readiness.report import Check

__all__ = ("NEEDS", "TRIGGERS", "CheckSpec", "Registry", "Verdict")

#: What can be asked to produce a dump (``--for``); ``all`` means every one of them.
TRIGGERS = ("nmi", "oops", "hang")
NEEDS = ("config", "boot", "runtime")

Needs = Literal["config", "boot", "runtime"]
C = TypeVar("C")


@dataclass(frozen=True)
class Verdict:
    """What a check found, without its id (the registry adds it)."""

    status: str  # pass | warn | fail | n/a
    evidence: str
    fix: str = ""


@dataclass(frozen=True)
class CheckSpec(Generic[C]):
    """One registered check."""

    id: str
    run: Callable[[C], Verdict]
    needs: Needs
    for_: tuple[str, ...]  # the triggers it serves; n/a for the others
    passes: str  # documentation: when it passes
    otherwise: str  # documentation: fail or warn, and when

    def serves(self, purpose: str) -> bool:
        return purpose == "all" or purpose in self.for_


class Registry(Generic[C]):
    """An ordered set of checks over one kind of context."""

    def __init__(self) -> None:
        self._specs: dict[str, CheckSpec[C]] = {}

    def check(
        self,
        check_id: str,
        *,
        needs: Needs,
        passes: str,
        otherwise: str,
        for_: tuple[str, ...] = TRIGGERS,
    ) -> Callable[[Callable[[C], Verdict]], Callable[[C], Verdict]]:
        """Register the decorated function as check ``check_id`` (in definition order)."""
        if check_id in self._specs:
            raise ValueError(f"readiness check {check_id!r} registered twice")
        if needs not in NEEDS or not set(for_) <= set(TRIGGERS) or not for_:
            raise ValueError(f"readiness check {check_id!r}: bad needs or for_")

        def register(fn: Callable[[C], Verdict]) -> Callable[[C], Verdict]:
            self._specs[check_id] = CheckSpec(check_id, fn, needs, for_, passes, otherwise)
            return fn

        return register

    @property
    def specs(self) -> tuple[CheckSpec[C], ...]:
        return tuple(self._specs.values())

    def ids(self, *needs: Needs) -> tuple[str, ...]:
        """Every id in order, or those whose ``needs`` is one of ``needs``."""
        return tuple(s.id for s in self.specs if not needs or s.needs in needs)

    def run(
        self, context: C, *, purpose: str = "all", offline: str | None = None
    ) -> tuple[Check, ...]:
        """Every check on ``context``.  A check the purpose does not need is n/a; so is a
        runtime check when ``offline`` (the reason there is no running kernel) is given."""
        out = []
        for spec in self.specs:
            if not spec.serves(purpose):
                verdict = Verdict("n/a", f"not needed for --for {purpose}")
            elif offline is not None and spec.needs == "runtime":
                verdict = Verdict("n/a", f"{offline}: the running kernel decides")
            else:
                verdict = spec.run(context)
            out.append(Check(spec.id, verdict.status, verdict.evidence, verdict.fix))
        return tuple(out)

    def markdown(self) -> str:
        """The documentation table (docs/readiness.md holds a copy; a test compares)."""
        rows = [
            "| id | needs | for | pass when | otherwise |",
            "|---|---|---|---|---|",
        ]
        for s in self.specs:
            serves = "all" if s.for_ == TRIGGERS else ", ".join(s.for_)
            rows.append(f"| `{s.id}` | {s.needs} | {serves} | {s.passes} | {s.otherwise} |")
        return "\n".join(rows) + "\n"
