"""The console's routes: sign-in, the four pages, and their guard.

Every page and action goes through :meth:`Console.guarded`: resume the session (or send the
browser to the sign-in page), build the :class:`~kdiag.authz.Caller` from it, authorize the
page's IAM action through :func:`kdiag.authz.authorize`, and run the page in the thread pool
inside :func:`kdiag.service.audit.run_audited`, so that each view is one audit row like an
API request.  A denial renders a 403 page; data is always read for the caller's account.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from kdiag import authz, policy
from kdiag.console import charts
from kdiag.console.runs import DrillRuns
from kdiag.console.security import (
    PRE_COOKIE,
    SESSION_COOKIE,
    SignInThrottle,
    check_csrf,
    check_origin,
    clear_cookie,
    new_token,
    read_form,
    secure_headers,
    set_cookie,
)
from kdiag.console.sources import Readiness, Sources
from kdiag.console.stored import StoreSources
from kdiag.errors import (
    AccessDenied,
    AuthFailure,
    InvalidInstanceIDNotFound,
    InvalidParameterValue,
    KdiagError,
    UnknownEndpoint,
)
from kdiag.service.audit import RequestAudit, run_audited
from kdiag.service.context import ServiceContext
from kdiag.service.errors import ApiError
from kdiag.service.wire import new_audit
from kdiag.store import Instance, check_instance_id
from kdiag.store.sessions import ConsoleSession, ConsoleSessions

__all__ = ("ACTIONS", "ROOT", "Console", "console_mount")

ROOT = "/console"

T = TypeVar("T")

#: The IAM actions the console authorizes, and what each one lets a user see or do.
ACTIONS = {
    "kdiag:ListFleet": "the Fleet and Drills pages: instances, readiness, last drill",
    "kdiag:GetDrill": "one instance's drills (resource: the instance's ARN)",
    "kdiag:RunDrill": "run a drill from the console (resource: the instance's ARN)",
    "kdiag:ListDumps": "the Crashes page and a crash group's dumps",
    "kdiag:GetDump": "one dump's summary and log tail",
    "cloudtrail:LookupEvents": "the Audit page (the account's audit log)",
}

_NAV = (
    ("Fleet", "/fleet", "kdiag:ListFleet"),
    ("Drills", "/drills", "kdiag:ListFleet"),
    ("Crashes", "/crashes", "kdiag:ListDumps"),
    ("Audit", "/audit", "cloudtrail:LookupEvents"),
)
_STATES = ("running", "stopped", "pending", "stopping", "shutting-down", "terminated")
_VERDICTS = ("ready", "not-ready", "unknown")
_SORTS = ("instance", "readiness", "state", "backend", "last drill")
_OUTCOMES = ("ok", "sent", "dry-run", "denied", "rejected", "failed", "unknown", "pending")
_MAX_QUERY = 200
MAX_AUDIT_SCAN = 5000
MAX_AUDIT_SHOWN = 500


def _age(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    seconds = max(0, int((dt.datetime.now(dt.UTC) - value).total_seconds()))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _when(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _user_of(principal: str | None) -> str:
    if not principal:
        return "(unauthenticated)"
    return principal.rsplit("/", 1)[-1] if ":user/" in principal else principal


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("kdiag.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["age"] = _age
    env.filters["when"] = _when
    env.filters["user_of"] = _user_of
    return env


def _static(name: str) -> bytes:
    return (resources.files("kdiag.console") / "static" / name).read_bytes()


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in user as the templates see them."""

    user_name: str
    account_id: str
    csrf: str
    nav: tuple[tuple[str, str, bool], ...]


@dataclass(frozen=True, slots=True)
class Page:
    """What a page handler answers: a template and its values (or a redirect)."""

    template: str = ""
    values: dict[str, Any] | None = None
    status: int = 200
    redirect: str | None = None


@dataclass(frozen=True, slots=True)
class FleetRow:
    instance: Instance
    readiness: Readiness | None
    drill: Any
    verdict: str


def _query(request: Request, name: str) -> str:
    value = request.query_params.get(name, "")
    if len(value) > _MAX_QUERY:
        raise InvalidParameterValue(f"{name} is longer than {_MAX_QUERY} characters")
    return value.strip()


def _utc(value: str, name: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameterValue(f"{name} must be a date and time (ISO 8601)") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


class Console:
    """The console bound to one service context."""

    def __init__(
        self,
        ctx: ServiceContext,
        sources: Sources | None = None,
        *,
        sessions: ConsoleSessions | None = None,
        throttle: SignInThrottle | None = None,
        runs: DrillRuns | None = None,
    ) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.sources: Sources = sources if sources is not None else StoreSources(ctx.store)
        self.sessions = sessions if sessions is not None else ConsoleSessions(ctx.store)
        self.throttle = throttle if throttle is not None else SignInThrottle()
        self.runs = runs if runs is not None else DrillRuns(ctx.store)
        self.region = ctx.regions[0]
        self.env = _environment()
        self._css = _static("console.css")
        self._js = _static("live.js")
        self._icon = _static("icon.svg")

    # --- rendering -----------------------------------------------------------------------

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        values.setdefault("root", ROOT)
        values.setdefault("viewer", None)
        values.setdefault("title", template.split(".", maxsplit=1)[0].capitalize())
        html = self.env.get_template(template).render(**values)
        return secure_headers(HTMLResponse(html, status))  # type: ignore[return-value]

    def error_page(self, error: ApiError, viewer: Viewer | None) -> HTMLResponse:
        titles = {403: "Not authorized", 404: "Not found", 401: "Sign-in failed"}
        return self.render(
            "error.html",
            error.status,
            title="Not found" if "NotFound" in error.code else titles.get(error.status, "Error"),
            message=error.message,
            code=error.code,
            viewer=viewer,
        )

    # --- the guard -------------------------------------------------------------------------

    def audited(self, handler: Callable[[], T], audit: RequestAudit) -> T | ApiError:
        """:func:`run_audited` for the console (which has no signatures to replay)."""
        answer = run_audited(self.store, handler, audit)
        if isinstance(answer, BaseException):  # a Replayed answer: impossible here
            return ApiError("InternalError", "unexpected replayed answer", 500)
        return answer

    def caller(self, request: Request, session: ConsoleSession) -> authz.Caller:
        audit_source = new_audit(request).source_ip
        return authz.Caller(
            session.account_id,
            session.user_name,
            session.user_id,
            session.access_key_id,
            audit_source,
            request.url.scheme == "https",
        )

    def allowed(self, caller: authz.Caller, action: str, instance: Instance | None = None) -> bool:
        """Whether ``action`` would be allowed (on ``instance``'s ARN when given): what
        the pages offer; the action itself is authorized again when asked for."""
        resource = "*" if instance is None else instance.arn
        return authz.decide(
            self.store,
            caller,
            action,
            resource,
            region=self.region,
            instance_id=None if instance is None else instance.id,
            instance=instance,
        ).allowed

    def viewer(self, caller: authz.Caller, session: ConsoleSession) -> Viewer:
        nav = tuple((name, href, self.allowed(caller, act)) for name, href, act in _NAV)
        return Viewer(caller.user_name, caller.account_id, session.csrf_token, nav)

    def authorize(
        self,
        caller: authz.Caller,
        action: str,
        audit: RequestAudit,
        instance_id: str | None = None,
    ) -> Instance | None:
        """Authorize ``action`` (on the instance's ARN when ``instance_id`` is given); the
        instance when it is in the caller's account and region."""
        instance = None
        resource = "*"
        if instance_id is not None:
            check_instance_id(instance_id)
            audit.instance_id = instance_id
            instance = authz.instance_in_scope(self.store, caller, self.region, instance_id)
            resource = policy.instance_arn(self.region, caller.account_id, instance_id)
        try:
            decision = authz.authorize(
                self.store,
                caller,
                action,
                resource,
                region=self.region,
                instance_id=instance_id,
                instance=instance,
            )
        except AccessDenied as exc:
            audit.decision, audit.reason = "deny", exc.reason
            raise
        audit.decision, audit.reason = "allow", decision.reason
        if instance_id is not None and instance is None:
            raise InvalidInstanceIDNotFound(f"The instance ID '{instance_id}' does not exist")
        return instance

    def guarded(
        self,
        action: str,
        work: Callable[[Request, authz.Caller, RequestAudit, dict[str, str]], Page],
        *,
        post: bool = False,
    ) -> Callable[[Request], Any]:
        """An endpoint that runs ``work`` for a signed-in user, audited as ``action``."""

        async def endpoint(request: Request) -> Response:
            session = self.sessions.resume(request.cookies.get(SESSION_COOKIE))
            form: dict[str, str] = {}
            early: KdiagError | None = None
            if post:
                try:
                    check_origin(request)
                    form = await read_form(request)
                except KdiagError as exc:
                    early = exc
            if session is None:
                if not post:
                    return secure_headers(RedirectResponse(f"{ROOT}/signin", 303))
                audit = new_audit(request)
                audit.action = action
                error = await run_in_threadpool(
                    self.audited,
                    _raiser(AuthFailure("not signed in (or the session is over)")),
                    audit,
                )
                assert isinstance(error, ApiError)
                return self.error_page(error, None)
            caller = self.caller(request, session)
            audit = new_audit(request)
            audit.action, audit.principal = action, caller.arn
            audit.access_key_id, audit.region = caller.access_key_id, self.region

            def run() -> tuple[Page, Viewer]:
                if early is not None:
                    raise early
                if post:
                    check_csrf(session.csrf_token, form)
                viewer = self.viewer(caller, session)
                return work(request, caller, audit, form), viewer

            answer = await run_in_threadpool(self.audited, run, audit)
            if isinstance(answer, ApiError):
                viewer = await run_in_threadpool(self.viewer, caller, session)
                return self.error_page(answer, viewer)
            page, viewer = answer
            if page.redirect is not None:
                return secure_headers(RedirectResponse(page.redirect, 303))
            return self.render(page.template, page.status, viewer=viewer, **(page.values or {}))

        return endpoint

    # --- sign-in and sign-out --------------------------------------------------------------

    async def signin_form(self, request: Request) -> Response:
        if self.sessions.resume(request.cookies.get(SESSION_COOKIE)) is not None:
            return secure_headers(RedirectResponse(f"{ROOT}/fleet", 303))
        token = new_token()
        response = self.render("signin.html", title="Sign in", csrf=token, key_id="")
        set_cookie(request, response, PRE_COOKIE, token, 3600)
        return response

    async def signin(self, request: Request) -> Response:
        audit = new_audit(request)
        audit.action = "kdiag:ConsoleSignIn"
        audit.region = self.region
        form: dict[str, str] = {}
        early: KdiagError | None = None
        try:
            check_origin(request)
            form = await read_form(request)
        except KdiagError as exc:
            early = exc
        key_id = form.get("access_key_id", "").strip()[:32]
        source = audit.source_ip or "-"

        def run() -> tuple[str, ConsoleSession]:
            if early is not None:
                raise early
            check_csrf(request.cookies.get(PRE_COOKIE), form)
            audit.access_key_id = key_id or None
            found = self.store.lookup_access_key(key_id) if key_id else None
            if found is not None:  # the key's owner sees the attempts in their audit log
                audit.principal = found[1].arn
            self.throttle.check(f"ip:{source}", f"key:{key_id}")
            secret = form.get("secret", "")
            if found is None or not hmac.compare_digest(
                secret.encode("utf-8", "surrogatepass"), found[2].encode()
            ):
                self.throttle.failed(f"ip:{source}", f"key:{key_id}")
                raise AuthFailure("the access key id or the secret is wrong")
            self.sessions.purge()  # rows of sessions over for a day go (an indexed delete)
            self.sessions.revoke(request.cookies.get(SESSION_COOKIE))  # a new session only
            return self.sessions.create(found[1], key_id, audit.source_ip)

        answer = await run_in_threadpool(self.audited, run, audit)
        if isinstance(answer, ApiError):
            token = new_token()
            response: Response = self.render(
                "signin.html",
                answer.status,
                title="Sign in",
                csrf=token,
                key_id=key_id,
                error=answer.message,
            )
            set_cookie(request, response, PRE_COOKIE, token, 3600)
            return response
        token, _session = answer
        response = secure_headers(RedirectResponse(f"{ROOT}/fleet", 303))
        set_cookie(
            request, response, SESSION_COOKIE, token, int(self.sessions.lifetime.total_seconds())
        )
        clear_cookie(request, response, PRE_COOKIE)
        return response

    def signout(
        self, request: Request, caller: authz.Caller, audit: RequestAudit, form: dict[str, str]
    ) -> Page:
        self.sessions.revoke(request.cookies.get(SESSION_COOKIE))
        return Page(redirect=f"{ROOT}/signin")

    # --- pages -----------------------------------------------------------------------------

    def fleet_rows(self, caller: authz.Caller) -> list[FleetRow]:
        instances = self.store.list_instances(account_id=caller.account_id, region=self.region)
        ids = [i.id for i in instances]
        ready = self.sources.readiness(caller.account_id, ids)
        drills = self.sources.last_drills(caller.account_id, ids)
        return [
            FleetRow(
                i,
                ready.get(i.id),
                drills.get(i.id),
                ready[i.id].verdict if i.id in ready else "unknown",
            )
            for i in instances
        ]

    def fleet(
        self, request: Request, caller: authz.Caller, audit: RequestAudit, form: dict[str, str]
    ) -> Page:
        self.authorize(caller, "kdiag:ListFleet", audit)
        f = {k: _query(request, k) for k in ("q", "state", "verdict", "sort")}
        f["sort"] = f["sort"] if f["sort"] in _SORTS else "instance"
        rows = self.fleet_rows(caller)
        counts = {
            "total": len(rows),
            "ready": sum(r.verdict == "ready" for r in rows),
            "not_ready": sum(r.verdict == "not-ready" for r in rows),
            "unknown": sum(r.verdict == "unknown" for r in rows),
            "running": sum(r.instance.state == "running" for r in rows),
            "drill_failed": sum(r.drill is not None and r.drill.verdict == "failed" for r in rows),
        }
        needle = f["q"].lower()
        shown = [
            r
            for r in rows
            if (not f["state"] or r.instance.state == f["state"])
            and (not f["verdict"] or r.verdict == f["verdict"])
            and (not needle or needle in _haystack(r))
        ]
        order = {"ready": 2, "not-ready": 0, "unknown": 1}
        keys: dict[str, Callable[[FleetRow], Any]] = {
            "instance": lambda r: r.instance.id,
            "readiness": lambda r: (order.get(r.verdict, 1), r.instance.id),
            "state": lambda r: (r.instance.state, r.instance.id),
            "backend": lambda r: (r.instance.backend, r.instance.id),
            "last drill": lambda r: (
                r.drill is None,
                r.drill.verdict != "failed" if r.drill else True,
                r.instance.id,
            ),
        }
        shown.sort(key=keys[f["sort"]])
        return Page(
            "fleet.html",
            {
                "title": "Fleet",
                "current": "Fleet",
                "rows": shown,
                "counts": counts,
                "f": f,
                "states": _STATES,
                "verdicts": _VERDICTS,
                "sorts": _SORTS,
            },
        )

    def drills(
        self, request: Request, caller: authz.Caller, audit: RequestAudit, form: dict[str, str]
    ) -> Page:
        self.authorize(caller, "kdiag:ListFleet", audit)
        rows = self.fleet_rows(caller)
        return Page("drills.html", {"title": "Drills", "current": "Drills", "rows": rows})

    def drill(
        self, request: Request, caller: authz.Caller, audit: RequestAudit, form: dict[str, str]
    ) -> Page:
        iid = request.path_params["instance_id"]
        instance = self.authorize(caller, "kdiag:GetDrill", audit, iid)
        assert instance is not None
        drills = self.sources.drills(caller.account_id, iid, 40)
        last = drills[0] if drills else None
        values: dict[str, Any] = {
            "title": f"Drills of {iid}",
            "current": "Drills",
            "instance": instance,
            "drills": drills,
            "last": last,
            "can_run": self.allowed(caller, "kdiag:RunDrill", instance),
            "timeline": charts.step_timeline(last.steps) if last else Markup(""),
            "history": charts.drill_history(drills),
        }
        return Page("drill.html", values)

    def confirm_run(
        self, request: Request, caller: authz.Caller, audit: RequestAudit, form: dict[str, str]
    ) -> Page:
        iid = request.path_params["instance_id"]
        instance = self.authorize(caller, "kdiag:RunDrill", audit, iid)
        return Page(
            "confirm.html",
            {"title": f"Run a drill on {iid}", "current": "Drills", "instance": instance},
        )

    def start_run(
        self, request: Request, caller: authz.Caller, audit: RequestAudit, form: dict[str, str]
    ) -> Page:
        iid = request.path_params["instance_id"]
        self.authorize(caller, "kdiag:RunDrill", audit, iid)
        if form.get("confirm") != "yes":
            raise InvalidParameterValue("confirm that the instance will crash (tick the box)")
        run = self.runs.start(caller.account_id, iid, caller.user_name, _own_endpoint(request))
        return Page(redirect=f"{ROOT}/drills/{iid}/runs/{run.id}")

    def _run_values(
        self, request: Request, caller: authz.Caller, audit: RequestAudit
    ) -> dict[str, Any]:
        iid = request.path_params["instance_id"]
        self.authorize(caller, "kdiag:GetDrill", audit, iid)
        run = self.runs.get(caller.account_id, request.path_params["run_id"])
        if run is None or run.instance_id != iid:
            raise UnknownEndpoint("no such drill run (runs are kept while the server runs)")
        timeline = charts.step_timeline(run.steps, ident="run-timeline") if run.steps else None
        return {"title": f"Drill of {iid}", "current": "Drills", "run": run, "timeline": timeline}

    def run_page(
        self, request: Request, caller: authz.Caller, audit: RequestAudit, form: dict[str, str]
    ) -> Page:
        return Page("run.html", self._run_values(request, caller, audit))

    def run_progress(
        self, request: Request, caller: authz.Caller, audit: RequestAudit, form: dict[str, str]
    ) -> Page:
        return Page("progress.html", self._run_values(request, caller, audit))

    def crashes(
        self, request: Request, caller: authz.Caller, audit: RequestAudit, form: dict[str, str]
    ) -> Page:
        self.authorize(caller, "kdiag:ListDumps", audit)
        groups = self.sources.dump_groups(caller.account_id)
        today = dt.datetime.now(dt.UTC).date()  # one window for every group: comparable
        shown = [
            charts.occurrences(
                charts.daily_counts(g.times, end=today), ident=f"occ{n}", title="Dumps per day"
            )
            for n, g in enumerate(groups)
        ]
        return Page(
            "crashes.html",
            {
                "title": "Crashes",
                "current": "Crashes",
                "groups": groups,
                "charts": shown,
                "total": sum(g.count for g in groups),
            },
        )

    def group(
        self, request: Request, caller: authz.Caller, audit: RequestAudit, form: dict[str, str]
    ) -> Page:
        self.authorize(caller, "kdiag:ListDumps", audit)
        key = _query(request, "group")
        if not key:
            raise InvalidParameterValue("group is required")
        dumps = self.sources.group_dumps(caller.account_id, key)
        if not dumps:
            raise UnknownEndpoint("no dumps of that signature in this account")
        signature = dumps[0].signature
        times = [d.crashed_at for d in dumps if d.crashed_at is not None]
        return Page(
            "group.html",
            {
                "title": "Crash group",
                "current": "Crashes",
                "signature": signature,
                "dumps": dumps,
                "chart": charts.occurrences(
                    charts.daily_counts(times, end=dt.datetime.now(dt.UTC).date()),
                    title="Dumps per day",
                ),
            },
        )

    def dump(
        self, request: Request, caller: authz.Caller, audit: RequestAudit, form: dict[str, str]
    ) -> Page:
        self.authorize(caller, "kdiag:GetDump", audit)
        dump_id = request.path_params["dump_id"]
        if len(dump_id) > _MAX_QUERY:
            raise InvalidParameterValue("dump id too long")
        detail = self.sources.dump(caller.account_id, dump_id)
        if detail is None:
            raise UnknownEndpoint(f"no dump {dump_id} in this account")
        return Page("dump.html", {"title": f"Dump {dump_id}", "current": "Crashes", "d": detail})

    def audit(
        self, request: Request, caller: authz.Caller, audit: RequestAudit, form: dict[str, str]
    ) -> Page:
        self.authorize(caller, "cloudtrail:LookupEvents", audit)
        f = {k: _query(request, k) for k in ("user", "instance", "outcome", "since", "until")}
        since, until = _utc(f["since"], "since"), _utc(f["until"], "until")
        prefix = policy.user_arn(caller.account_id, "").removesuffix("user/")
        if f["user"]:
            prefix = policy.user_arn(caller.account_id, f["user"])
        rows = self.store.audit_rows(
            since=since,
            limit=MAX_AUDIT_SCAN,
            instance_id=f["instance"] or None,
            principal_prefix=prefix,
        )
        picked = [
            r
            for r in reversed(rows)
            if (not f["user"] or r.principal == prefix)
            and (not f["outcome"] or r.outcome == f["outcome"])
            and (until is None or r.time <= until)
        ]
        return Page(
            "audit.html",
            {
                "title": "Audit",
                "current": "Audit",
                "rows": picked[:MAX_AUDIT_SHOWN],
                "truncated": len(picked) > MAX_AUDIT_SHOWN,
                "f": f,
                "outcomes": _OUTCOMES,
            },
        )

    async def home(self, request: Request) -> Response:
        return secure_headers(RedirectResponse(f"{ROOT}/fleet", 303))

    async def css(self, request: Request) -> Response:
        response = Response(self._css, 200, media_type="text/css")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    async def js(self, request: Request) -> Response:
        response = Response(self._js, 200, media_type="text/javascript")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    async def not_found(self, request: Request) -> Response:
        """Any other path under /console: an HTML 404 (no session needed to say so)."""
        error = ApiError(UnknownEndpoint.code, "no such page", 404)
        return self.error_page(error, None)

    async def icon(self, request: Request) -> Response:
        return Response(self._icon, 200, media_type="image/svg+xml")

    def routes(self) -> list[BaseRoute]:
        g = self.guarded
        return [
            Route("/", self.home, methods=["GET"]),
            Route("/static/console.css", self.css, methods=["GET"]),
            Route("/static/live.js", self.js, methods=["GET"]),
            Route("/static/icon.svg", self.icon, methods=["GET"]),
            Route("/signin", self.signin_form, methods=["GET"]),
            Route("/signin", self.signin, methods=["POST"]),
            Route("/signout", g("kdiag:ConsoleSignOut", self.signout, post=True), methods=["POST"]),
            Route("/fleet", g("kdiag:ListFleet", self.fleet), methods=["GET"]),
            Route("/drills", g("kdiag:ListFleet", self.drills), methods=["GET"]),
            Route("/drills/{instance_id}", g("kdiag:GetDrill", self.drill), methods=["GET"]),
            Route(
                "/drills/{instance_id}/run",
                g("kdiag:RunDrill", self.confirm_run),
                methods=["GET"],
            ),
            Route(
                "/drills/{instance_id}/run",
                g("kdiag:RunDrill", self.start_run, post=True),
                methods=["POST"],
            ),
            Route(
                "/drills/{instance_id}/runs/{run_id}",
                g("kdiag:GetDrill", self.run_page),
                methods=["GET"],
            ),
            Route(
                "/drills/{instance_id}/runs/{run_id}/progress",
                g("kdiag:GetDrill", self.run_progress),
                methods=["GET"],
            ),
            Route("/crashes", g("kdiag:ListDumps", self.crashes), methods=["GET"]),
            Route("/crashes/group", g("kdiag:ListDumps", self.group), methods=["GET"]),
            Route("/dumps/{dump_id}", g("kdiag:GetDump", self.dump), methods=["GET"]),
            Route("/audit", g("cloudtrail:LookupEvents", self.audit), methods=["GET"]),
            Route("/{rest:path}", self.not_found, methods=["GET", "HEAD", "POST"]),
        ]


def _haystack(row: FleetRow) -> str:
    i = row.instance
    return " ".join([i.id, i.backend, i.state, *i.tags.values()]).lower()


def _own_endpoint(request: Request) -> str:
    """This server's own address, from the socket the request came in on (never from the
    Host header, which the client writes): where a drill asks for its NMI."""
    server = request.scope.get("server")
    if not server:
        raise InvalidParameterValue("the server's own address is unknown")
    host, port = server[0], server[1]
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - bound to all: reach it on loopback
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _raiser(exc: Exception) -> Callable[[], Any]:
    def handler() -> Any:
        raise exc

    return handler


def console_mount(ctx: ServiceContext, sources: Sources | None = None) -> Mount:
    """The console under ``/console``, for :func:`kdiag.service.app.create_app`."""
    return Mount(ROOT, routes=Console(ctx, sources).routes())
