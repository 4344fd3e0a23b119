"""The drill's libvirt event watch against libvirt's own test driver (``test:///default``,
one shared state per process): lifecycle events delivered through libvirt-python's default
event loop in its thread, and the mapping of every event the drill cares about."""

from __future__ import annotations

import time
from typing import Any

import pytest

from kdiag.backends.base import Target
from kdiag.backends.libvirt import LibvirtSettings, import_libvirt
from kdiag.drill.hypervisor_events import LibvirtEventWatch
from kdiag.errors import InvalidInstanceIDNotFound, KdiagError

TARGET = {"uri": "test:///default", "domain": "test"}


def _watch(target: dict[str, str] = TARGET) -> LibvirtEventWatch:
    settings = LibvirtSettings.parse(target)
    return LibvirtEventWatch(settings, Target("i-0123456789abcdef0", dict(target)), None)


def _until(watch: LibvirtEventWatch, done: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        watch.poll()
        time.sleep(0.05)


def test_stop_and_start_arrive_as_power_off_then_reboot() -> None:
    libvirt = import_libvirt()
    watch = _watch()
    watch.start()
    conn = libvirt.open("test:///default")
    dom = conn.lookupByName("test")
    try:
        assert watch.connected
        dom.destroy()
        _until(watch, lambda: watch.powered_off)
        assert watch.powered_off, watch.excerpt
        assert watch.resets == 0
        dom.create()
        _until(watch, lambda: watch.resets > 0)
        assert watch.resets == 1, watch.excerpt
        assert not watch.panic_seen
    finally:
        if not dom.isActive():
            dom.create()
        conn.close()
        watch.close()
    watch.close()  # twice is harmless


def test_crash_events_map_to_panic_and_capture_loaded() -> None:
    libvirt = import_libvirt()
    watch = _watch()
    watch._lv = libvirt  # the mapping alone, as the event thread would call it
    crashed = libvirt.VIR_DOMAIN_EVENT_CRASHED
    watch._lifecycle(None, None, crashed, libvirt.VIR_DOMAIN_EVENT_CRASHED_PANICKED, None)
    watch.poll()
    assert (watch.panic_seen, watch.capture_started) == (True, False)
    assert watch.crash_event == "libvirt event CRASHED (panicked)"
    watch._lifecycle(None, None, crashed, libvirt.VIR_DOMAIN_EVENT_CRASHED_CRASHLOADED, None)
    watch._reboot(None, None, None)
    watch.poll()
    assert (watch.capture_started, watch.resets) == (True, 1)
    # a STARTED that follows no stop is the first boot, not a reboot
    other = _watch()
    other._lv = libvirt
    other._lifecycle(None, None, libvirt.VIR_DOMAIN_EVENT_STARTED, 0, None)
    other.poll()
    assert other.resets == 0


def test_an_unknown_domain_is_a_typed_error() -> None:
    watch = _watch({"uri": "test:///default", "domain": "no-such-domain"})
    with pytest.raises(KdiagError) as caught:
        watch.start()
    assert isinstance(caught.value, InvalidInstanceIDNotFound) or "no-such-domain" in str(
        caught.value
    )
    assert not watch.connected


def test_an_event_flood_is_bounded() -> None:
    watch = _watch()
    for _ in range(5000):
        watch._push("reset", "libvirt event REBOOT")
    notes = watch.poll()
    assert len(notes) == 1000
    assert watch.resets == 1000
    assert len(watch.excerpt) == 40
