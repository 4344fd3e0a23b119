"""Why did the kernel die: the panic message, its class and a stable crash signature.

Pure functions over kernel log text (no I/O), so they work on a vmcore's log, a serial
console capture, ``dmesg`` output or ``makedumpfile --dump-dmesg`` files alike::

    >>> info = classify(log_text.splitlines())
    >>> info.klass
    'null-deref'
    >>> info.signature
    'null-deref: BUG: kernel NULL pointer dereference | crashme_write < proc_reg_write < vfs_write'

The approach follows syzkaller's ``pkg/report/linux.go``: find the report that killed the
machine, give it a normalized title, and add the first frames of its call trace that are not
generic (panic/dump_stack/exception entry/syscall glue), with offsets, ``.cold``/``.isra``
suffixes, module tags and addresses stripped. The result does not change across reboots,
KASLR slides, pids, CPUs or timestamps, and :func:`signature_id` hashes it into a short id.

The ``CPU: N PID: M Comm: X`` line that belongs to the panic is the one ``panic()`` printed
right after ``Kernel panic - not syncing`` when it dumped the stack, otherwise the one of the
oops block (with a kdump kernel loaded and ``panic_on_oops=1``, ``oops_end()`` calls
``crash_kexec()`` before ``panic()`` ever runs, so there is no panic line at all).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = (
    "CLASSES",
    "Frame",
    "PanicInfo",
    "classify",
    "crash_panic_string",
    "extract_frames",
    "normalize_frame",
    "signature_id",
    "strip_prefix",
)

#: Every class :func:`classify` can answer, in no particular order.
CLASSES: tuple[str, ...] = (
    "nmi",
    "sysrq",
    "null-deref",
    "page-fault",
    "gpf",
    "bug",
    "warn",
    "soft-lockup",
    "hard-lockup",
    "hung-task",
    "rcu-stall",
    "oom",
    "mce",
    "init-exit",
    "no-rootfs",
    "panic",
    "unknown",
)

#: How many non-generic frames go into a signature (syzkaller uses one, ABRT six).
SIGNATURE_FRAMES = 3

# --- line prefixes ----------------------------------------------------------------------------

# ``<4>`` syslog level (``dmesg -r``), ``[   12.345678]`` printk time, and the optional
# ``[  T123]`` / ``[    C1]`` caller id of CONFIG_PRINTK_CALLER (v5.1, "printk: Add caller
# information to printk() output").
_PREFIX = re.compile(r"^(?:<\d+>)?(?:\[\s*\d+\.\d+\]\s?)?(?:\[\s*[TC]\d+\]\s?)?")


def strip_prefix(line: str) -> str:
    """``line`` without its syslog level, timestamp and caller id, trailing space removed."""
    return _PREFIX.sub("", line, count=1).rstrip()


# --- the panic line and its reasons ------------------------------------------------------------

_PANIC_LINE = re.compile(r"Kernel panic - not syncing: ?(?P<reason>.*)$")

# Ranked: the first matching reason decides. ``None`` as a class means "the reason is generic:
# look at the report that came before the panic" (panic_on_oops, panic on a fatal exception).
_PANIC_REASONS: tuple[tuple[re.Pattern[str], str | None], ...] = (
    # mce_panic() (arch/x86/kernel/cpu/mce/core.c): "Fatal machine check", "Machine check from
    # unknown source", "Machine check: Processor context corrupt", "Fatal local machine check".
    (re.compile(r"[Mm]achine check|MCE"), "mce"),
    # arch/x86/kernel/nmi.c: unknown_nmi_error() -> nmi_panic(regs, "NMI: Not continuing");
    # io_check_error() -> "NMI IOCK error: Not continuing"; pci_serr_error() ->
    # "NMI: Not continuing" after "NMI: PCI system error (SERR) for reason ..".
    (re.compile(r"^NMI\b.*Not continuing"), "nmi"),
    # drivers/tty/sysrq.c sysrq_handle_crash(): panic("sysrq triggered crash\n") since v4.x;
    # older kernels dereferenced NULL instead (see the "Trigger a crash" report below).
    (re.compile(r"^sysrq triggered crash"), "sysrq"),
    # kernel/watchdog.c: hardlockup_panic -> "Hard LOCKUP"; older watchdog_hld.c too.
    (re.compile(r"^Hard LOCKUP"), "hard-lockup"),
    # kernel/watchdog.c: softlockup_panic -> "softlockup: hung tasks".
    (re.compile(r"^softlockup"), "soft-lockup"),
    # kernel/hung_task.c: hung_task_panic -> "hung_task: blocked tasks".
    (re.compile(r"^hung_task"), "hung-task"),
    # kernel/rcu/tree_stall.h panic_on_rcu_stall (v4.18) -> "RCU Stall".
    (re.compile(r"^RCU Stall"), "rcu-stall"),
    # mm/oom_kill.c check_panic_on_oom(): "Out of memory: system-wide panic_on_oom is
    # enabled", "Out of memory: compulsory panic_on_oom is enabled"; out_of_memory() with no
    # killable task: "System is deadlocked on memory" (older "Out of memory and no killable
    # processes...").
    (re.compile(r"[Oo]ut of memory|deadlocked on memory"), "oom"),
    # kernel/exit.c do_exit() for pid 1: "Attempted to kill init! exitcode=0x%08x".
    (re.compile(r"^Attempted to kill init"), "init-exit"),
    # init/do_mounts.c mount_block_root(): "VFS: Unable to mount root fs on %s"; init/main.c
    # kernel_init(): "No working init found" / "Requested init %s failed" — in practice a
    # missing or unusable root filesystem or initramfs.
    (
        re.compile(r"^VFS: Unable to mount root fs|^No working init found|^Requested init"),
        "no-rootfs",
    ),
    # kernel/panic.c check_panic_on_warn(): "%s: panic_on_warn set ...\n" (v6.2 moved the
    # text into check_panic_on_warn(), "exit: Put an upper limit on how often we can oops";
    # before that __warn() said "panic_on_warn set ...").
    (re.compile(r"panic_on_warn set"), "warn"),
    # arch/x86/kernel/dumpstack.c oops_end(): "Fatal exception" / "Fatal exception in
    # interrupt" (panic_on_oops or an oops in interrupt context): class from the oops.
    (re.compile(r"^Fatal exception"), None),
)

# --- reports (oops headers) --------------------------------------------------------------------

# Ranked by specificity; the report nearest before the panic (or the last one when there is no
# panic line) is the primary event. Each entry: (pattern on the stripped line, class, title).
# Titles use only fixed text and named groups that are stable across boots.
_REPORTS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    # arch/x86/kernel/cpu/mce/core.c: "mce: [Hardware Error]: CPU 0: Machine Check Exception: 5
    # Bank 4: ..." (pr_fmt "mce: " since v4.x), older "Machine Check Exception: ..." alone.
    (re.compile(r"Machine Check Exception|\[Hardware Error\]"), "mce", "machine check"),
    # arch/x86/kernel/nmi.c unknown_nmi_error(): "Uhhuh. NMI received for unknown reason %02x
    # on CPU %d."; io_check_error(): "NMI: IOCK error (debug interrupt?) for reason ..".
    (
        re.compile(r"^Uhhuh\. NMI received for unknown reason"),
        "nmi",
        "NMI received for unknown reason",
    ),
    (re.compile(r"^NMI: (?:IOCK error|PCI system error)"), "nmi", "NMI hardware error"),
    # arch/x86/mm/fault.c show_fault_oops(): v5.1 ("x86/fault: Reword initial BUG message for
    # unhandled page faults") prints "BUG: kernel NULL pointer dereference, address: %px" and
    # "BUG: unable to handle page fault for address: %px"; older kernels "BUG: unable to handle
    # kernel NULL pointer dereference at %p" and "... kernel paging request at %p".
    (
        re.compile(
            r"^BUG: (?:kernel NULL pointer dereference|unable to handle kernel NULL pointer)"
        ),
        "null-deref",
        "BUG: kernel NULL pointer dereference",
    ),
    (
        re.compile(r"^BUG: unable to handle (?:page fault|kernel paging request)"),
        "page-fault",
        "BUG: unable to handle page fault",
    ),
    # arm64/others: "Unable to handle kernel NULL pointer dereference at virtual address".
    (
        re.compile(r"^Unable to handle kernel NULL pointer dereference"),
        "null-deref",
        "BUG: kernel NULL pointer dereference",
    ),
    (
        re.compile(r"^Unable to handle kernel paging request"),
        "page-fault",
        "BUG: unable to handle page fault",
    ),
    # arch/x86/kernel/traps.c: v5.5 ("x86/traps: Print address on #GP") prints "general
    # protection fault, probably for non-canonical address 0x...: 0000 [#1] SMP"; older
    # "general protection fault: 0000 [#1] SMP".
    (re.compile(r"^general protection fault"), "gpf", "general protection fault"),
    # lib/bug.c report_bug(): "kernel BUG at %s:%u!" (older "Kernel BUG at"); the file name is
    # stable, the line number changes with every patch of the file, so the title keeps the file.
    (re.compile(r"^[Kk]ernel BUG at (?P<file>[^:\s]+)"), "bug", "kernel BUG at {file}"),
    # kernel/watchdog.c: "watchdog: BUG: soft lockup - CPU#%d stuck for %us! [%s:%d]"
    # (the "watchdog: " pr_fmt since v4.x; older "BUG: soft lockup - CPU#...").
    (re.compile(r"BUG: soft lockup"), "soft-lockup", "BUG: soft lockup"),
    # kernel/watchdog_perf.c (watchdog_hld.c before v6.6): "Watchdog detected hard LOCKUP on
    # cpu %d"; older "NMI watchdog: Watchdog detected hard LOCKUP on cpu %d".
    (re.compile(r"Watchdog detected hard LOCKUP"), "hard-lockup", "watchdog: hard LOCKUP"),
    # kernel/hung_task.c check_hung_task(): "INFO: task %s:%d blocked for more than %ld seconds."
    (re.compile(r"^INFO: task \S+ blocked for more than"), "hung-task", "INFO: task hung"),
    # kernel/rcu/tree_stall.h: "rcu: INFO: rcu_sched self-detected stall on CPU", "rcu: INFO:
    # rcu_preempt detected stalls on CPUs/tasks:" (the "rcu: " pr_fmt since v4.20), older
    # "INFO: rcu_sched detected stalls on CPUs/tasks:"; expedited: "rcu: INFO: rcu_preempt
    # detected expedited stalls".
    (
        re.compile(r"INFO: rcu_\w+ (?:self-)?detected (?:expedited )?stall"),
        "rcu-stall",
        "INFO: rcu detected stall",
    ),
    # mm/oom_kill.c: "Out of memory: Killed process %d (%s) ..." (older "Kill process"),
    # "... invoked oom-killer: gfp_mask=..."; memcg: "Memory cgroup out of memory: Killed".
    (re.compile(r"^(?:Memory cgroup )?[Oo]ut of memory: Kill"), "oom", "out of memory"),
    (re.compile(r"invoked oom-killer:"), "oom", "out of memory"),
    # kernel/panic.c __warn(): "WARNING: CPU: %d PID: %d at %pS" (v4.x); older "WARNING: at".
    (
        re.compile(r"^WARNING: (?:CPU: \d+ PID: \d+ at|at) (?P<file>[^:\s]+)(?P<where>.*)$"),
        "warn",
        "WARNING at {file}",
    ),
    # Other detected kernel bugs ("BUG: scheduling while atomic", "BUG: Bad page state",
    # "BUG: sleeping function called from invalid context", KASAN "BUG: KASAN: ...").
    (
        re.compile(r"^BUG: (?P<what>[A-Za-z][A-Za-z ]*?)(?:[:,(]|\s+in\b|\s+-|$)"),
        "bug",
        "BUG: {what}",
    ),
    (re.compile(r"^(?P<what>list_(?:add|del) corruption)"), "bug", "{what}"),
    # Fatal traps with no class of their own (arch/x86/kernel/traps.c do_error_trap()).
    (
        re.compile(
            r"^(?P<what>divide error|double fault|stack segment|invalid opcode|"
            r"alignment check|coprocessor segment overrun|invalid TSS|segment not present)"
            r": [0-9a-f]{4}"
        ),
        "bug",
        "{what}",
    ),
    # drivers/tty/sysrq.c: "sysrq: Trigger a crash" (pr_fmt "sysrq: " since v4.19-ish), older
    # "SysRq : Trigger a crash"; before panic() was used the crash was a NULL write.
    (re.compile(r"^(?:sysrq: |SysRq : )Trigger a crash"), "sysrq", "sysrq triggered crash"),
)


class _Report(NamedTuple):
    """A report header found in the log: its line index ``at``, class, title template, match."""

    at: int
    klass: str
    title: str
    match: re.Match[str]


# The oops header die() prints: "Oops: 0002 [#1] PREEMPT SMP NOPTI"; some recent kernels say
# "Oops: Oops: 0002 ..." (die() now passes the string "Oops" through). crash's PANIC shows it.
_OOPS = re.compile(r"^(?:Oops: )?Oops: [0-9a-f]{4}")

# "CPU: 0 PID: 155 Comm: sh Kdump: loaded ..."; v6.10+ adds "UID: 0" after the CPU
# (dump_stack_print_info(), "dump_stack: Add UID to the process information").
_CPU_LINE = re.compile(
    r"^CPU: (?P<cpu>\d+) (?:UID: \d+ )?PID: (?P<pid>\d+) Comm: (?P<comm>.{1,16}?)"
    r"(?: {1,2}(?:Kdump|Not tainted|Tainted|\d)|$)"
)

_CALL_TRACE = re.compile(r"^(?:Call Trace:|Call trace:|Backtrace:|Call Trace\b)")
# " [<ffffffff8104a1b2>] func+0x12/0x30" (pre-4.x) or " func+0x12/0x30 [mod]" or "? func+...".
_FRAME = re.compile(
    r"^\s*(?:\[<?(?:0x)?[0-9a-f]+>?\]\s*)*(?P<q>\?\s+)?"
    r"(?P<func>[A-Za-z_][A-Za-z0-9_.$]*)\+0x(?P<off>[0-9a-f]+)/0x[0-9a-f]+"
    r"(?:\s+\[(?P<mod>[^\]]+)\])?\s*$"
)
_RIP = re.compile(
    r"^(?:RIP|pc|PC is at|EIP): (?:[0-9a-f]{4}:)?(?:\[<[0-9a-f]+>\]\s*)?"
    r"(?P<func>[A-Za-z_][A-Za-z0-9_.$]*)\+0x[0-9a-f]+/0x[0-9a-f]+"
)
_CONTEXT_OPEN = re.compile(
    r"^\s*<(?P<ctx>NMI|IRQ|TASK|SOFTIRQ|#DF|#MC|#DB|#VC|EOE|DB\d?|NMI_EXC)>\s*$"
)
_CONTEXT_CLOSE = re.compile(r"^\s*</(?:\w+|#\w+)>\s*$")
_TRACE_NOISE = re.compile(
    r"^\s*(?:RIP|RSP|RAX|RDX|RBP|R10|R13|FS|CS|CR2|PKRU|Code|DR\d|EFLAGS|ORIG_RAX)\b"
    r"|^\s*[A-Z0-9]{2,3}: [0-9a-f]{4,}"
)
_TRACE_END = re.compile(
    r"^(?:---\[ end|Modules linked in:|Kernel panic|Kernel Offset:|---\[ end Kernel panic)"
)

# Generic frames never describe the bug (syzkaller's skipPatterns, condensed to the ones that
# appear in x86_64 traces, plus crash/panic plumbing).
_SKIP_FRAME = re.compile(
    r"^(?:"
    r"panic|nmi_panic|vpanic|__warn|warn_slowpath\w*|report_bug|handle_bug|do_error_trap|do_trap"
    # panic_on_warn plumbing: check_panic_on_warn() calls panic() for __warn() since v6.2 (and
    # stable backports such as 6.1.y), "exit: Put an upper limit on how often we can oops"
    r"|check_panic_on_warn"
    r"|dump_stack\w*|show_stack|show_trace_log_lvl|__dump_stack|show_regs|oops_end|die|__die\w*|die_body"
    r"|exc_\w+|asm_exc_\w+|asm_sysvec_\w+|asm_common_interrupt|sysvec_\w+|common_interrupt|end_repeat_nmi"
    r"|repeat_nmi|first_nmi|nmi_handle|default_do_nmi|do_nmi|nmi|unknown_nmi_error_irrelevant"
    r"|page_fault_oops|kernelmode_fixup_or_oops|no_context|__bad_area_nosemaphore|bad_area_nosemaphore"
    r"|do_user_addr_fault|do_kern_addr_fault|handle_page_fault|spurious_kernel_fault|__do_page_fault|do_page_fault"
    r"|page_fault|general_protection|invalid_op|do_general_protection|do_invalid_op"
    r"|entry_\w+|do_syscall_\d+|do_fast_syscall_\d+|__do_fast_syscall_\d+|syscall_\w+|ret_from_fork\w*"
    r"|__x64_sys_\w+|__ia32_sys_\w+|__se_sys_\w+|x64_sys_call|kthread|worker_thread|process_one_work"
    r"|secondary_startup_64\w*|start_secondary|cpu_startup_entry|start_kernel|x86_64_start_\w+"
    r"|watchdog_timer_fn|__hrtimer_run_queues|hrtimer_interrupt|__sysvec_apic_timer_interrupt"
    r"|irq_exit_rcu|__irq_exit_rcu|__do_softirq|handle_softirqs|run_ksoftirqd|smpboot_thread_fn"
    r"|_printk|printk|vprintk\w*|__schedule|schedule|schedule_timeout|io_schedule"
    r"|crash_kexec|__crash_kexec|machine_kexec|native_machine_crash_shutdown"
    # stall and lockup reporting machinery (the NMI backtrace of a stalled CPU)
    r"|nmi_cpu_backtrace|nmi_trigger_cpumask_backtrace|arch_trigger_cpumask_backtrace"
    r"|nmi_cpu_backtrace_handler|rcu_dump_cpu_stacks|print_cpu_stall|check_cpu_stall|rcu_pending"
    r"|rcu_sched_clock_irq|update_process_times|tick_sched_handle|tick_sched_timer|tick_nohz_handler"
    r"|watchdog_overflow_callback|watchdog_hardlockup_check|__perf_event_overflow|perf_event_nmi_handler"
    r"|sched_show_task|show_state_filter|check_hung_task|check_hung_uninterruptible_tasks|watchdog"
    r"|hung_task_panic|native_safe_halt|default_idle|arch_cpu_idle|default_idle_call|do_idle"
    # arm64: the unwinder's own frame, exception and syscall entry (entry-common.c), fault and
    # break handling, interrupt plumbing, idle
    r"|dump_backtrace|el[01]t?_\w+|el[01]h_64_\w+|invoke_syscall|do_el0_svc\w*|__arm64_sys_\w+"
    r"|do_mem_abort|do_translation_fault|__do_kernel_fault|die_kernel_fault|do_bad_area"
    r"|arm64_notify_die|bug_handler|call_break_hook|brk_handler|do_debug_exception"
    r"|call_on_irq_stack|do_interrupt_handler|gic_handle_irq|generic_handle_domain_irq"
    r"|secondary_start_kernel|cpu_do_idle|arm64_panic_block_dump"
    r")$"
)
# syzkaller's stripFramePrefixes: syscall wrappers name the syscall after their prefix.
_STRIP_FRAME_PREFIX = re.compile(
    r"^(?:__do_sys_|__se_sys_|ksys_|SyS_|compat_SyS_|__do_compat_sys_)"
)

# Interrupt-triggered "manual" crash reasons whose trace is in the panic's own dump_stack.
_STALLS = frozenset({"soft-lockup", "hard-lockup", "rcu-stall"})
_OWN_TRACE = frozenset({"nmi", "sysrq", "init-exit", "no-rootfs", "oom", "panic", "mce"})


@dataclass(frozen=True)
class Frame:
    """One normalized call-trace frame."""

    func: str
    module: str | None = None


@dataclass(frozen=True)
class PanicInfo:
    """What the log says about the crash.

    ``message`` is the panic line (``Kernel panic - not syncing: ...``) or, without one, the
    report line crash would show; ``panic_line`` is only ever the ``Kernel panic`` line.
    """

    message: str | None
    panic_line: str | None
    report_line: str | None
    cpu: int | None
    pid: int | None
    comm: str | None
    klass: str
    title: str
    frames: tuple[str, ...]
    signature: str | None

    @property
    def signature_id(self) -> str | None:
        """:func:`signature_id` of the signature; ``None`` when there is none (``unknown``)."""
        return signature_id(self.signature) if self.signature is not None else None

    @property
    def crash_panic(self) -> str:
        """The value crash's ``sys`` prints after ``PANIC:``."""
        return crash_panic_string(self)


def normalize_frame(func: str) -> str:
    """``__handle_sysrq.cold`` -> ``__handle_sysrq``, ``ksys_write`` -> ``write``."""
    base = func.split(".", 1)[0]  # .cold, .isra.0, .constprop.0, .part.0, .llvm.123
    stripped = _STRIP_FRAME_PREFIX.sub("", base)
    return stripped or base


def extract_frames(
    lines: Sequence[str], start: int, limit: int = 200, *, stall: bool = False
) -> list[Frame]:
    """Frames of the first call trace at or after ``start``, in the first context only.

    Stops at the end of the first ``<NMI>``/``<IRQ>``/``<TASK>`` block (what follows is the
    interrupted context, not the bug), at ``---[ end trace``, at ``Modules linked in:``, or at
    the next line that is neither a frame nor a register dump. Questionable ``?`` frames are
    dropped, as the kernel marks them unreliable.

    ``stall=True`` is for lockups and RCU stalls, where the interesting code is the one that
    was interrupted: the walk goes on past context ends and takes the kernel-mode ``RIP:``
    lines of exception frames as frames too (syzkaller's stall frame extractor works likewise
    from the interrupted context).
    """
    end = min(len(lines), start + limit)
    i = start
    while i < end and not _CALL_TRACE.match(lines[i]):
        i += 1
    frames: list[Frame] = []
    i += 1
    while i < end:
        line = lines[i]
        if _CONTEXT_CLOSE.match(line):
            if frames and not stall:
                break
        elif stall and (m := _RIP.match(line.strip())) is not None and "RIP: 0033" not in line:
            frames.append(Frame(m.group("func")))
        elif _CONTEXT_OPEN.match(line) or _TRACE_NOISE.match(line):
            pass
        elif (m := _FRAME.match(line)) is not None:
            # A return address at a function's very start (arm64's "sysrq_reset_seq_param_set
            # +0x0/0xa0" under panic()) is a noreturn call at the end of the function before
            # it, which the log does not name: not a frame of its own.
            if not m.group("q") and int(m.group("off"), 16):
                frames.append(Frame(m.group("func"), m.group("mod")))
        elif not line.strip() or _TRACE_END.match(line) or frames or not line.startswith(" "):
            break
        i += 1
    return frames


def _significant(frames: Sequence[Frame], first: str | None = None) -> tuple[str, ...]:
    out: list[str] = []
    candidates = ([first] if first else []) + [f.func for f in frames]
    for func in candidates:
        base = func.split(".", 1)[0]
        if _SKIP_FRAME.match(base):
            continue
        name = normalize_frame(func)
        if out and out[-1] == name:
            continue
        out.append(name)
        if len(out) == SIGNATURE_FRAMES:
            break
    return tuple(out)


_HEX = re.compile(r"\b(?:0x)?[0-9a-f]{8,16}\b")
_NUM_RUNS = re.compile(r"\b\d+\b")


def _normalize_text(text: str) -> str:
    """Remove what changes between boots from free-form text (addresses, pids, numbers)."""
    text = re.sub(r"\+0x[0-9a-f]+/0x[0-9a-f]+", "", text)  # func+0x4e2/0x4f0 -> func
    text = _HEX.sub("ADDR", text)
    text = re.sub(r"\[[^\]\s]+:\d+\]", "", text)  # [comm:pid]
    text = re.sub(r"CPU#?\d+", "CPU", text)
    text = _NUM_RUNS.sub("N", text)
    return re.sub(r"\s+", " ", text).strip().rstrip(".!")


def _panic_title(reason: str) -> str:
    # Keep exit codes (they name the signal) and device names; drop addresses and counters.
    reason = reason.strip()
    if reason.startswith("Attempted to kill init"):
        return "Kernel panic - not syncing: " + re.sub(r"\s+", " ", reason).rstrip()
    if reason.startswith("VFS: Unable to mount root fs"):
        return "Kernel panic - not syncing: " + reason
    return "Kernel panic - not syncing: " + _normalize_text(reason)


def _cpu_line(lines: Sequence[str], start: int, stop: int) -> re.Match[str] | None:
    for i in range(start, min(stop, len(lines))):
        m = _CPU_LINE.match(lines[i])
        if m:
            return m
        if i > start and _CALL_TRACE.match(lines[i]):
            break
    return None


def _match_report(line: str) -> tuple[int, str, str, re.Match[str]] | None:
    """(rank in _REPORTS, class, title template, match) of the first report ``line`` is."""
    for rank, (pattern, klass, title) in enumerate(_REPORTS):
        m = pattern.search(line)
        if m is not None:
            return rank, klass, title, m
    return None


def _find_report(lines: Sequence[str], end: int) -> _Report | None:
    """The last report header before ``end``.

    One oops can print several header lines ("kernel BUG at mm/slub.c:123!" then "invalid
    opcode: 0000 [#1]"); the most specific header within a few lines before the last one
    wins.
    """
    for i in range(end - 1, -1, -1):
        found = _match_report(lines[i])
        if found is None:
            continue
        best_i, best = i, found
        for j in range(i - 1, max(-1, i - 7), -1):
            other = _match_report(lines[j])
            if other is not None and other[0] < best[0]:
                best_i, best = j, other
        return _Report(best_i, best[1], best[2], best[3])
    return None


def _oops_line(lines: Sequence[str], start: int, end: int) -> str | None:
    for i in range(start, min(end, start + 12)):
        if _OOPS.match(lines[i]):
            return lines[i]
    return None


def classify(log_lines: Sequence[str]) -> PanicInfo:
    """Classify a kernel log (lines with or without timestamps) and sign the crash.

    A log with no panic line and no report is class ``unknown`` with no signature
    (``signature`` and ``signature_id`` are ``None``): "nothing recognizable" is not a crash
    signature, and two such dumps have nothing in common to group them by.
    """
    lines = [strip_prefix(line) for line in log_lines]
    panic_idx, reason = _find_panic(lines)
    klass, report = _decide_class(lines, panic_idx, reason)
    title = _title(klass, reason, report)
    frames = _signature_frames(lines, klass, panic_idx, report)
    cpu_m = _panic_cpu_line(lines, panic_idx, report)
    panic_line = lines[panic_idx] if panic_idx is not None else None
    signature: str | None = None
    if klass != "unknown":
        signature = f"{klass}: {title}" + (" | " + " < ".join(frames) if frames else "")
    return PanicInfo(
        message=_message(lines, panic_line, report),
        panic_line=panic_line,
        report_line=lines[report.at] if report is not None else None,
        cpu=int(cpu_m.group("cpu")) if cpu_m else None,
        pid=int(cpu_m.group("pid")) if cpu_m else None,
        comm=cpu_m.group("comm").rstrip() if cpu_m else None,
        klass=klass,
        title=title,
        frames=frames,
        signature=signature,
    )


def _find_panic(lines: Sequence[str]) -> tuple[int | None, str]:
    """The index of the first ``Kernel panic - not syncing`` line and its reason."""
    for i, line in enumerate(lines):
        m = _PANIC_LINE.search(line)
        if m is not None:
            return i, m.group("reason")
    return None, ""


def _reason_class(reason: str) -> str | None:
    """The class a panic reason names; ``None`` for a generic one ("Fatal exception")."""
    for pattern, cls in _PANIC_REASONS:
        if pattern.search(reason):
            return cls
    return "panic"


def _decide_class(
    lines: Sequence[str], panic_idx: int | None, reason: str
) -> tuple[str, _Report | None]:
    """The crash class and the report (oops header) that explains it, if any.

    For a generic panic reason or no panic line, the last report before the panic decides the
    class; for a specific reason, the last report of the same class (if any) supplies the
    title, the frames and possibly the CPU line. A panic with a reason of its own
    (stack-protector, "Attempted to kill the idle task!", ...) is its own evidence: an earlier
    report is not the cause.
    """
    end = panic_idx if panic_idx is not None else len(lines)
    report = _find_report(lines, end)
    if panic_idx is None:
        return (report.klass if report is not None else "unknown"), report
    klass = _reason_class(reason)
    if klass == "panic":
        return klass, None
    if klass is None:
        return (report.klass if report is not None else "panic"), report
    if report is not None and report.klass != klass:
        report = _find_report_of(lines, end, klass)
    return klass, report


def _signature_frames(
    lines: Sequence[str], klass: str, panic_idx: int | None, report: _Report | None
) -> tuple[str, ...]:
    """The significant frames: from the report's own block (RIP first) when the report is
    what failed; from the panic's own dump_stack when the panic itself is the event (sysrq,
    NMI, init exit, ...) or the report has no trace."""
    first: str | None = None
    frames: list[Frame] = []
    if report is not None and not (klass in _OWN_TRACE and panic_idx is not None):
        start = report.at
        block_end = panic_idx if panic_idx is not None and panic_idx > start else len(lines)
        first = _report_first_frame(lines, start, block_end, report)
        frames = extract_frames(
            lines, start, limit=max(1, block_end - start), stall=klass in _STALLS
        )
    if not frames and panic_idx is not None:
        frames = extract_frames(lines, panic_idx)
    return _significant(frames, first)


def _panic_cpu_line(
    lines: Sequence[str], panic_idx: int | None, report: _Report | None
) -> re.Match[str] | None:
    """CPU/PID/Comm: after the panic line when panic() dumped the stack, else the report's."""
    found = _cpu_line(lines, panic_idx + 1, panic_idx + 4) if panic_idx is not None else None
    if found is None and report is not None:
        found = _cpu_line(lines, report.at, report.at + 40)
    return found


def _message(lines: Sequence[str], panic_line: str | None, report: _Report | None) -> str | None:
    """The panic line, else the line crash would show, else the oops or report line."""
    message = panic_line or _crash_order_line(lines)
    if message is None and report is not None:
        message = _oops_line(lines, report.at, len(lines)) or lines[report.at]
    return message


def _find_report_of(lines: Sequence[str], end: int, klass: str) -> _Report | None:
    for i in range(end - 1, -1, -1):
        for pattern, cls, title in _REPORTS:
            if cls != klass:
                continue
            m = pattern.search(lines[i])
            if m is not None:
                return _Report(i, cls, title, m)
    return None


def _report_first_frame(
    lines: Sequence[str], start: int, end: int, report: _Report | None
) -> str | None:
    """The faulting function: the WARNING's ``at func+off/size`` or the kernel-mode RIP."""
    if report is not None and report.klass == "warn":
        where = report.match.groupdict().get("where") or ""
        m = re.search(r"([A-Za-z_][A-Za-z0-9_.$]*)\+0x[0-9a-f]+/0x[0-9a-f]+", where)
        if m:
            return m.group(1)
    for i in range(start, min(end, start + 60)):
        if _CALL_TRACE.match(lines[i]):
            break
        m = _RIP.match(lines[i])
        if m is not None and not lines[i].startswith("RIP: 0033"):
            return m.group("func")
    return None


def _title(klass: str, reason: str, report: _Report | None) -> str:
    if report is not None and (not reason or klass not in _OWN_TRACE):
        _, _, template, m = report
        groups = {k: (v or "") for k, v in m.groupdict().items()}
        if groups.get("file", "").startswith("/"):
            # An out-of-tree module built in a temporary directory reports an absolute path
            # (/tmp/kdiag-crashme-ib9spt53/crashme.c); only the file name is stable.
            groups["file"] = groups["file"].rsplit("/", 1)[-1]
        return template.format(**groups)
    if reason:
        return _panic_title(reason)
    return "unknown"


def signature_id(signature: str) -> str:
    """A short stable id for a signature (16 hex digits of its SHA-256)."""
    return hashlib.sha256(signature.encode("utf-8")).hexdigest()[:16]


# crash's get_panicmsg() (task.c) order: the first of these found in the log is PANIC.
_CRASH_PANIC_ORDER: tuple[str, ...] = (
    "SysRq : Crash",
    "SysRq : Trigger a crash",
    "Kernel panic: ",
    "Kernel panic - ",
    "Kernel BUG at",
    "kernel BUG at",
    "Unable to handle kernel paging request",
    "Unable to handle kernel NULL pointer dereference",
    "BUG: unable to handle kernel ",
    "general protection fault: ",
    "double fault: ",
    "divide error: ",
    "stack segment: ",
    "[Hardware Error]: ",
    "Bad mode in ",
    "Oops: ",
)


def _crash_order_line(lines: Sequence[str]) -> str | None:
    for needle in _CRASH_PANIC_ORDER:
        for line in lines:
            pos = line.find(needle)
            if pos >= 0:
                return line[pos:]
    return None


def crash_panic_string(info: PanicInfo) -> str:
    """crash ``sys`` PANIC: the panic line quoted, or an oops line quoted plus a hint."""
    if info.panic_line:
        return f'"{info.panic_line}"'
    if info.message:
        return f'"{info.message}" (check log for details)'
    return ""
