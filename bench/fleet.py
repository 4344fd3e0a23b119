"""Benchmark: ``kdiag fleet doctor`` over a few hundred real SSH endpoints, at several --forks.

One network namespace made for the run (``kdf-PID``), holding only its loopback; one
OpenSSH sshd listening on port 22 of every address in it (nothing outside the namespace can
reach it).  Each inventory host is a different loopback address (127.0.1.1, 127.0.1.2, ...),
so Ansible opens a real SSH session per host, and judges one of the readiness test trees
(tests/readiness/trees.py; host variable ``kdiag_collect_root``).  For each --forks value
the whole ``kdiag fleet doctor`` process runs inside the namespace; printed: wall time,
hosts per second, CPU seconds (the controller side; and apart, the hosts' side: sshd's
session processes with the collector they run, "host ms/host"), peak
memory (the largest sum of RSS over kdiag, ansible and ssh processes, sampled every 0.1 s;
and GNU time's largest single process), and the load average before and at most during.  The
verdicts are checked against the trees' own (each host must fail exactly its tree's checks)
so a fast wrong run cannot pass for a fast one.  Asserts nothing else.

Run: ``.venv/bin/python bench/fleet.py [--hosts 300] [--forks 5,20,50]`` (root: ip netns).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fleet.sshd import start_sshd  # noqa: E402
from tests.readiness.trees import rhel9_ready, rhel9_unprepared, suse15  # noqa: E402

from kdiag.readiness import facts  # noqa: E402 - after the path is set
from kdiag.readiness.checks import run_checks  # noqa: E402

TREES = {"rhel-ready": rhel9_ready, "rhel-unprepared": rhel9_unprepared, "suse": suse15}


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakSampler(threading.Thread):
    """Largest total RSS of a process tree, sampled."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.peak_load = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            self.peak = max(self.peak, sum(_rss_kib(p) for p in _descendants(self.pid)))
            self.peak_load = max(self.peak_load, os.getloadavg()[0])


def _tree_cpu(root: int) -> float:
    """CPU seconds of a process tree (sshd's per-connection processes): each live process's
    own and its reaped children's."""
    ticks = 0
    for pid in _descendants(root):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        own = int(fields[11]) + int(fields[12])
        ticks += own * (pid != root) + int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _address(i: int) -> str:
    return f"127.0.{1 + i // 250}.{1 + i % 250}"


def main() -> int:  # noqa: PLR0915 - one linear benchmark script
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hosts", type=int, default=300)
    parser.add_argument("--forks", default="5,20,50")
    # the endpoints' sshd shares this machine's CPUs with the controller (a real fleet's
    # hosts have their own), so ssh's 10 s default to the banner is not the hosts' fault
    parser.add_argument("--connect-timeout", type=int, default=60)
    opts = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (ip netns)", file=sys.stderr)
        return 2
    ns = f"kdf-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="kdf-"))
    kdiag = str(Path(sys.executable).parent / "kdiag")
    gnu_time = shutil.which("time") or "/usr/bin/time"
    rows = []
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        server = start_sshd(
            work / "sshd",
            shutil.which("sshd") or "/usr/sbin/sshd",
            "/usr/lib/openssh/sftp-server",
            listen="0.0.0.0",
            port=22,
            prefix=("ip", "netns", "exec", ns),
            max_startups=2000,
        )
        time.sleep(0.5)
        pub = server.known_hosts.read_text().split()[1:3]
        known = work / "known_hosts"
        known.write_text(f"127.* {pub[0]} {pub[1]}\n")
        roots = {name: build(work / "trees" / name) for name, build in TREES.items()}
        expected = {
            name: [
                c.id for c in run_checks(facts.read_root(root), "nmi").checks if c.status == "fail"
            ]
            for name, root in roots.items()
        }
        kinds = list(TREES)
        lines = ["[bench]"]
        host_kind = {}
        common = f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
        for i in range(opts.hosts):
            kind = kinds[i % len(kinds)]
            name = f"h{i:04d}"
            host_kind[name] = kind
            lines.append(
                f"{name} ansible_host={_address(i)} ansible_user=root "
                f"ansible_ssh_private_key_file={server.key} kdiag_collect_root={roots[kind]} "
                f"ansible_ssh_common_args='{common}' ansible_timeout={opts.connect_timeout}"
            )
        inventory = work / "inventory.ini"
        inventory.write_text("\n".join(lines) + "\n")
        for forks in (int(f) for f in opts.forks.split(",")):
            db = work / f"fleet-{forks}.db"
            env = {**os.environ, "KDIAG_STATE_DIR": str(work / "state")}
            argv = [
                gnu_time,
                "-f",
                "%M %U %S",
                "-o",
                str(work / "time.txt"),
                kdiag,
                "fleet",
                "doctor",
                "-i",
                str(inventory),
                "--forks",
                str(forks),
                "--json",
                "--db",
                f"sqlite:///{db}",
            ]
            load_before = os.getloadavg()[0]
            sshd_before = _tree_cpu(server.process.pid)
            start = time.perf_counter()
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *argv],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            sampler = PeakSampler(proc.pid)
            sampler.start()
            out, _ = proc.communicate()
            wall = time.perf_counter() - start
            sampler.done.set()
            sampler.join()
            load_after = os.getloadavg()[0]
            sshd_cpu = _tree_cpu(server.process.pid) - sshd_before
            max_single, user, system = (work / "time.txt").read_text().split()[-3:]
            report = json.loads(out)
            wrong = [
                h["host"]
                for h in report["hosts"]
                if h["failing"] != expected[host_kind[h["host"]]]
                or h["status"] in ("error", "unreachable")
            ]
            rows.append(
                (
                    forks,
                    wall,
                    float(user) + float(system),
                    sampler.peak,
                    int(max_single),
                    len(wrong),
                    load_before,
                    max(sampler.peak_load, load_after),
                    sshd_cpu,
                )
            )
            why: dict[str, int] = {}
            for h in report["hosts"]:
                if h["host"] in wrong:
                    key = f"{h['status']}: {(h['message'] or '')[:60]}"
                    why[key] = why.get(key, 0) + 1
            print(
                f"  forks {forks}: {wall:.1f} s, {len(wrong)} wrong {why}, load average "
                f"{load_before:.1f} before, {sampler.peak_load:.1f} at most during",
                file=sys.stderr,
                flush=True,
            )
        server.stop()
    finally:
        pids = subprocess.run(
            ["ip", "netns", "pids", ns], capture_output=True, text=True, check=False
        ).stdout
        for pid in pids.split():  # ssh ControlPersist masters left in the namespace: ours
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGTERM)
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"kdiag fleet doctor over {opts.hosts} SSH endpoints (one sshd, distinct loopback "
        "addresses in a private netns; the whole process, ansible-playbook included)"
    )
    print(
        f"{'forks':>6} {'wall s':>8} {'hosts/s':>8} {'CPU s':>8} {'CPU ms/host':>12} "
        f"{'peak tree MiB':>14} {'largest proc MiB':>17} {'wrong':>6} {'load avg':>12} "
        f"{'host ms/host':>13}"
    )
    for forks, wall, cpu, peak, single, wrong, load0, load1, sshd_cpu in rows:
        print(
            f"{forks:>6} {wall:>8.1f} {opts.hosts / wall:>8.2f} {cpu:>8.1f} "
            f"{1000 * cpu / opts.hosts:>12.0f} {peak / 1024:>14.0f} {single / 1024:>17.0f} "
            f"{wrong:>6} {f'{load0:.0f}->{load1:.0f}':>12} {1000 * sshd_cpu / opts.hosts:>13.0f}"
        )
    base = rows[0]
    for forks, wall, *_ in rows[1:]:
        print(f"forks {forks} vs {base[0]}: {base[1] / wall:.2f}x the hosts per second")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
