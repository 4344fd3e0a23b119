"""SVG charts drawn on the server: no script, no external asset, readable without colour.

Each function returns a complete ``<svg>`` element (as :class:`markupsafe.Markup`) with a
``<title>`` and ``role="img"``, sized by ``viewBox`` so it scales to the page's width.
Colours are presentation attributes (the console's Content-Security-Policy forbids inline
``style``); every text is dark on light, and a failed bar is also hatched by its label.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from kdiag.console.sources import DrillRecord, DrillStep

__all__ = ("daily_counts", "drill_history", "occurrences", "step_timeline")

_OK = "#1b6e3a"
_FAIL = "#a4161a"
_RUN = "#1d4f91"
_AXIS = "#333333"
_GRID = "#cccccc"


def _svg(width: int, height: int, title: str, body: Sequence[str], ident: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{ident}-t" class="chart" '
        f'preserveAspectRatio="xMinYMin meet">'
        f'<title id="{ident}-t">{escape(title)}</title>'
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - every part escaped above


def _nice_step(span: float, ticks: int = 5) -> float:
    """A round tick interval (1, 2 or 5 x 10^n) giving about ``ticks`` ticks over ``span``."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * power:
            return float(mult * power)
    return float(10 * power)


def step_timeline(steps: Sequence[DrillStep], *, ident: str = "timeline") -> Markup:
    """The steps of one drill as bars on one time axis, to scale (seconds from the start)."""
    width, left, right, row = 560, 96, 16, 28
    total = max((s.end for s in steps), default=0.0) or 1.0
    height = 40 + row * max(len(steps), 1)
    scale = (width - left - right) / total
    body: list[str] = []
    step = _nice_step(total)
    tick = 0.0
    while tick <= total + 1e-9:
        x = left + tick * scale
        body.append(
            f'<line x1="{x:.1f}" y1="10" x2="{x:.1f}" y2="{height - 24}" stroke="{_GRID}"/>'
            f'<text x="{x:.1f}" y="{height - 8}" font-size="13" text-anchor="middle" '
            f'fill="{_AXIS}">{tick:g} s</text>'
        )
        tick += step
    for n, s in enumerate(steps):
        y = 12 + n * row
        x = left + s.start * scale
        w = max((s.end - s.start) * scale, 2.0)
        colour = _OK if s.ok else _FAIL
        label = f"{s.name}: {s.start:.1f}-{s.end:.1f} s{'' if s.ok else ' (failed)'}"
        body.append(
            f'<text x="{left - 6}" y="{y + 14}" font-size="14" text-anchor="end" '
            f'fill="{_AXIS}">{escape(s.name)}</text>'
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="18" fill="{colour}">'
            f"<title>{escape(label)}</title></rect>"
        )
    if not steps:
        body.append(f'<text x="{left}" y="30" font-size="12" fill="{_AXIS}">no steps</text>')
    title = "Drill steps to scale: " + "; ".join(
        f"{s.name} {s.end - s.start:.1f} s{'' if s.ok else ' failed'}" for s in steps
    )
    return _svg(width, height, title, body, ident)


def drill_history(drills: Sequence[DrillRecord], *, ident: str = "history") -> Markup:
    """One bar per drill, oldest left: height is its duration, colour its verdict."""
    width, height, left, bottom = 560, 170, 50, 30
    shown = list(reversed(drills[:40]))
    top = max((d.duration for d in shown), default=0.0) or 1.0
    step = _nice_step(top, 4)
    top = math.ceil(top / step) * step
    plot_h = height - bottom - 10
    body: list[str] = []
    tick = 0.0
    while tick <= top + 1e-9:
        y = 10 + plot_h - tick / top * plot_h
        body.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="{_GRID}"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="13" text-anchor="end" '
            f'fill="{_AXIS}">{tick:g} s</text>'
        )
        tick += step
    slot = (width - left - 10) / max(len(shown), 1)
    for n, d in enumerate(shown):
        h = max(d.duration / top * plot_h, 2.0)
        x = left + n * slot + slot * 0.15
        colour = {"passed": _OK, "failed": _FAIL}.get(d.verdict, _RUN)
        label = f"{d.started_at:%Y-%m-%d %H:%M} UTC: {d.verdict}, {d.duration:.1f} s"
        body.append(
            f'<rect x="{x:.1f}" y="{10 + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" fill="{colour}"><title>{escape(label)}</title></rect>'
        )
    if not shown:
        body.append(f'<text x="{left + 10}" y="40" font-size="12" fill="{_AXIS}">no drills</text>')
    passed = sum(d.verdict == "passed" for d in shown)
    title = f"Drill history: {len(shown)} drills, {passed} passed, duration in seconds"
    return _svg(width, height, title, body, ident)


def daily_counts(
    times: Sequence[dt.datetime], days: int = 30, *, end: dt.date | None = None
) -> list[tuple[dt.date, int]]:
    """How many of ``times`` fall on each of the ``days`` days up to ``end`` (default: the
    newest of ``times``), in UTC."""
    if not times and end is None:
        return []
    last = end if end is not None else max(times).astimezone(dt.UTC).date()
    first = last - dt.timedelta(days=days - 1)
    counts = {first + dt.timedelta(days=n): 0 for n in range(days)}
    for t in times:
        day = t.astimezone(dt.UTC).date()
        if day in counts:
            counts[day] += 1
    return sorted(counts.items())


def occurrences(
    series: Sequence[tuple[dt.date, int]], *, ident: str = "occ", title: str = "Occurrences"
) -> Markup:
    """Occurrences per day as bars (a crash group's dumps over time)."""
    width, height, left, bottom = 560, 150, 40, 30
    plot_h = height - bottom - 10
    top = max((c for _, c in series), default=0) or 1
    body: list[str] = [
        f'<line x1="{left}" y1="{10 + plot_h}" x2="{width - 10}" y2="{10 + plot_h}" '
        f'stroke="{_AXIS}"/>',
        f'<text x="{left - 6}" y="16" font-size="13" text-anchor="end" fill="{_AXIS}">{top}</text>',
        f'<text x="{left - 6}" y="{10 + plot_h}" font-size="13" text-anchor="end" '
        f'fill="{_AXIS}">0</text>',
    ]
    slot = (width - left - 10) / max(len(series), 1)
    for n, (day, count) in enumerate(series):
        x = left + n * slot
        if count:
            h = count / top * plot_h
            body.append(
                f'<rect x="{x + slot * 0.1:.1f}" y="{10 + plot_h - h:.1f}" '
                f'width="{slot * 0.8:.1f}" height="{h:.1f}" fill="{_RUN}">'
                f"<title>{day:%Y-%m-%d}: {count}</title></rect>"
            )
        if n in (0, len(series) - 1):
            anchor = "start" if n == 0 else "end"
            tx = x if n == 0 else x + slot
            body.append(
                f'<text x="{tx:.1f}" y="{height - 8}" font-size="13" text-anchor="{anchor}" '
                f'fill="{_AXIS}">{day:%Y-%m-%d}</text>'
            )
    total = sum(c for _, c in series)
    full = f"{title}: {total} over {len(series)} days, at most {top} a day"
    return _svg(width, height, full, body, ident)
