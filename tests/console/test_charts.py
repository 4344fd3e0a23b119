"""The SVG charts: drawn to scale, counted per UTC day, and escaped."""

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest

from kdiag.console import charts
from kdiag.console.sources import DrillRecord, DrillStep

NS = "{http://www.w3.org/2000/svg}"


def _parse(markup):
    return ET.fromstring(str(markup))  # well-formed XML, or this raises


def test_timeline_bars_are_to_scale_and_in_order():
    steps = (
        DrillStep("send", 0, 0.5),
        DrillStep("panic", 0.5, 2.5),
        DrillStep("reboot", 2.5, 12.5, ok=False),
    )
    svg = _parse(charts.step_timeline(steps))
    bars = svg.findall(f"{NS}rect")
    xs = [float(b.get("x")) for b in bars]
    widths = [float(b.get("width")) for b in bars]
    assert xs == sorted(xs)
    assert widths[2] / widths[1] == pytest.approx(5.0, rel=0.01)
    assert xs[2] == pytest.approx(xs[1] + widths[1], abs=0.2)
    assert [b.get("fill") for b in bars][-1] != bars[0].get("fill")
    assert "reboot 10.0 s failed" in svg.find(f"{NS}title").text


def test_names_are_escaped():
    nasty = '<script>alert("x")</script>&'
    svg = charts.step_timeline((DrillStep(nasty, 0, 1),))
    assert "<script>" not in str(svg)
    assert _parse(svg).findall(f"{NS}text")[-1].text == nasty
    out = charts.occurrences([(dt.date(2026, 1, 1), 1)], title=nasty)
    assert "<script>" not in str(out)
    _parse(out)


def test_daily_counts_per_utc_day_within_the_window():
    cet = dt.timezone(dt.timedelta(hours=1))
    times = [
        dt.datetime(2026, 12, 5, 23, 30, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 6, 0, 30, tzinfo=cet),  # 2026-12-05 23:30 UTC
        dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 10, 1, 10, 0, tzinfo=dt.UTC),  # outside a 30-day window
    ]
    series = charts.daily_counts(times, end=dt.date(2026, 12, 7))
    assert len(series) == 30
    assert series[-1] == (dt.date(2026, 12, 7), 0)
    assert dict(series)[dt.date(2026, 12, 5)] == 2
    assert dict(series)[dt.date(2026, 12, 6)] == 1
    assert sum(c for _, c in series) == 3
    assert charts.daily_counts([]) == []


def test_history_heights_follow_durations():
    now = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    drills = [
        DrillRecord(str(n), "i-0", now - dt.timedelta(hours=n), v, (DrillStep("x", 0, d),))
        for n, (v, d) in enumerate([("passed", 20.0), ("failed", 60.0), ("passed", 30.0)])
    ]
    svg = _parse(charts.drill_history(drills))
    bars = svg.findall(f"{NS}rect")
    heights = [float(b.get("height")) for b in bars]  # oldest first
    assert heights[0] / heights[2] == pytest.approx(30 / 20, rel=0.01)
    assert heights[1] / heights[2] == pytest.approx(60 / 20, rel=0.01)
    assert re.search(r"3 drills, 2 passed", svg.find(f"{NS}title").text)
