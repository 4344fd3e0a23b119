"""Assemble the lab guest: Debian's kernel, a capture initramfs and a main initramfs.

Inputs are the downloaded .deb files, the guest ``/init``, the crashme module source and the
readiness collector; their hash names the build directory, so an unchanged input set reuses
the previous build and a changed one rebuilds. Layout under ``cache_dir()/"lab"``::

    debs/                    apt-get download cache (x86_64 guests)
    debs-arm64/              the same for arm64 guests (``pkg:arm64`` packages)
    kernel/<kver>/           the unpacked kernel package (depmod -b run on it)
    build/<hash>/            vmlinuz, capture.img, main.img, crashme.ko, build.json

The architecture (:mod:`kdiag.lab.arches`) is one of the inputs: an arm64 build has its own
hash, packages and modules, and no crashme module (that needs arm64 kernel headers).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from kdiag.errors import ConfigError
from kdiag.lab import debs
from kdiag.lab.arches import ARCHES, GuestArch, get_arch
from kdiag.lab.initramfs import write_initramfs
from kdiag.paths import cache_dir

__all__ = (
    "CAPTURE_MODULES",
    "FIRST_MODULES",
    "BuildInfo",
    "build",
    "collector_path",
    "lab_cache",
)

#: bumped whenever the layout of a build changes
BUILD_FORMAT = 5
#: finished builds kept in the cache (each about 27 MB)
KEEP_BUILDS = 4

FIRST_MODULES = ARCHES["x86_64"].first_modules
CAPTURE_MODULES = ARCHES["x86_64"].capture_modules
_BINARIES = (
    "usr/sbin/kexec",
    "usr/sbin/vmcore-dmesg",
    "usr/sbin/makedumpfile",
    "usr/sbin/dropbear",
    "usr/bin/dropbearconvert",
)
#: installed under another name: Debian's dropbear runs /usr/lib/sftp-server for SFTP
_RENAMED = (("usr/lib/openssh/sftp-server", "usr/lib/sftp-server"),)
_HERE = Path(__file__).resolve().parent

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildInfo:
    """What ``Lab.build`` produced."""

    directory: Path
    arch: str
    kernel_release: str
    kernel_package: str
    kernel_version: str
    vmlinuz: Path
    main_initrd: Path
    capture_initrd: Path
    crashme: Path | None
    collector: bool
    inputs_hash: str
    packages: dict[str, str]
    cached: bool

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        for key in ("directory", "vmlinuz", "main_initrd", "capture_initrd", "crashme"):
            data[key] = None if data[key] is None else str(data[key])
        return data


def lab_cache() -> Path:
    path = cache_dir() / "lab"
    path.mkdir(parents=True, exist_ok=True)
    return path


def collector_path() -> Path:
    """Where the readiness facts collector lives in the source tree (may not exist)."""
    return _HERE.parent / "readiness" / "collect.sh"


def _run(args: list[str], **kw: object) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip()[-1500:]
        raise ConfigError(f"{' '.join(map(str, args))} failed: {tail}")
    return str(proc.stdout)


def _unpack_kernel(deb: debs.Deb, kver: str, cache: Path, note: Progress) -> Path:
    root = cache / "kernel" / kver
    stamp = root / ".unpacked"
    if not stamp.exists():
        shutil.rmtree(root, ignore_errors=True)
        note(f"unpacking {deb.path.name}")
        debs.unpack(deb, root)
        note(f"depmod -b {root} {kver}")
        _run(["depmod", "-b", str(root), kver])
        stamp.write_text(deb.version + "\n")
    return root


def _module_index(kroot: Path, kver: str) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for path in (kroot / "lib" / "modules" / kver).rglob("*.ko*"):
        name = path.name.split(".ko")[0]
        index[name] = path
    return index


def _module_name(path: str) -> str:
    return Path(path).name.split(".ko")[0]


def module_order(kroot: Path, kver: str, wanted: tuple[str, ...]) -> list[str]:
    """``wanted`` with the modules each depends on (``modules.dep``) before it, each once;
    modules built into the kernel (``modules.builtin``) are left out."""
    moddir = kroot / "lib" / "modules" / kver
    deps: dict[str, list[str]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        target, _, needs = line.partition(":")
        deps[_module_name(target)] = [_module_name(n) for n in needs.split()]
    builtin_file = moddir / "modules.builtin"
    builtin = {
        _module_name(line).replace("-", "_")
        for line in (builtin_file.read_text().split() if builtin_file.exists() else [])
    }
    order: list[str] = []

    def add(name: str, chain: tuple[str, ...]) -> None:
        if name in order or name.replace("-", "_") in builtin:
            return
        if name not in deps:
            raise ConfigError(f"module {name} is neither built in nor in modules.dep ({kver})")
        if name in chain:
            raise ConfigError(f"module dependency loop: {' -> '.join((*chain, name))}")
        for dep in deps[name]:
            add(dep, (*chain, name))
        order.append(name)

    for name in wanted:
        add(name, ())
    return order


def _copy_module(src: Path, dest: Path) -> None:
    if src.name.endswith(".ko.xz"):
        dest.write_bytes(lzma.decompress(src.read_bytes()))
    elif src.name.endswith(".ko"):
        shutil.copyfile(src, dest)
    else:
        raise ConfigError(f"unsupported module compression: {src.name}")


def _executable(path: Path) -> None:
    """Mode 0755 (the initramfs is world-readable guest root, not host data)."""
    path.chmod(0o755)


def _needed(binary: Path) -> list[str]:
    out = _run(["readelf", "-d", str(binary)])
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def _lib_dirs(arch: GuestArch) -> tuple[str, ...]:
    return (f"lib/{arch.triplet}", f"usr/lib/{arch.triplet}", "lib64", "lib", "usr/lib")


def _find_lib(staging: Path, soname: str, arch: GuestArch) -> Path | None:
    for d in _lib_dirs(arch):
        candidate = staging / d / soname
        if candidate.exists():
            return candidate
    return None


def _install_userland(staging: Path, root: Path, arch: GuestArch) -> None:
    busybox = staging / "bin" / "busybox"
    if not busybox.exists():
        raise ConfigError("busybox-static did not provide /bin/busybox")
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(busybox, root / "bin" / "busybox")
    _executable(root / "bin" / "busybox")
    todo: list[Path] = []
    pairs = [(rel, rel) for rel in _BINARIES] + list(_RENAMED)
    for origin, rel in pairs:
        name = Path(origin).name
        dirs = ("sbin", "bin", "usr/sbin", "usr/bin", str(Path(origin).parent))
        found = [staging / d / name for d in dirs]
        src = next((p for p in found if p.exists()), None)
        if src is None:
            raise ConfigError(f"no {name} in the unpacked packages")
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        _executable(dest)
        todo.append(src)
    seen: set[str] = set()
    while todo:
        for soname in _needed(todo.pop()):
            if soname in seen:
                continue
            seen.add(soname)
            lib = _find_lib(staging, soname, arch)
            if lib is None:
                raise ConfigError(f"library {soname} not found in the downloaded packages")
            dest = root / lib.relative_to(staging)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(lib.resolve(), dest)
            todo.append(lib.resolve())
    loader = _find_lib(staging, Path(arch.loader).name, arch)
    if loader is None:
        raise ConfigError("the dynamic loader is not in the downloaded libc6")
    (root / arch.loader).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(loader.resolve(), root / arch.loader)
    _executable(root / arch.loader)


def _build_crashme(kver: str, out: Path, note: Progress) -> Path | None:
    headers = Path("/usr/src") / f"linux-headers-{kver}"
    if not (headers / "Makefile").exists():
        note(f"crashme not built: {headers} missing (apt-get install linux-headers-{kver})")
        return None
    note(f"building crashme.ko against {headers.name}")
    with tempfile.TemporaryDirectory(prefix="kdiag-crashme-") as tmp:
        for name in ("crashme.c", "Makefile"):
            shutil.copyfile(_HERE / "crashme" / name, Path(tmp) / name)
        env = dict(os.environ)
        if shutil.which("gcc-12"):
            env["CC"] = "gcc-12"
        _run(
            ["make", "-C", str(headers), f"M={tmp}", "CC=" + env.get("CC", "gcc"), "modules"],
            env=env,
        )
        _run(["strip", "--strip-debug", str(Path(tmp) / "crashme.ko")])
        shutil.copyfile(Path(tmp) / "crashme.ko", out)
    return out


def _inputs_hash(deb_list: list[debs.Deb], collector: Path, arch: str = "x86_64") -> str:
    h = hashlib.sha256(f"format={BUILD_FORMAT}\narch={arch}\n".encode())
    for deb in sorted(deb_list, key=lambda d: d.package):
        h.update(f"{deb.package}={deb.version}\n".encode())
    for path in (
        _HERE / "init.sh",
        _HERE / "crashme" / "crashme.c",
        _HERE / "crashme" / "Makefile",
    ):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    if collector.exists():
        h.update(b"collect.sh\0" + collector.read_bytes())
    return h.hexdigest()[:16]


def build(
    progress: Progress | None = None, *, force: bool = False, arch: str = "x86_64"
) -> BuildInfo:
    """Download, unpack and assemble; reuses the previous build when no input changed.

    :raises ConfigError: an unknown ``arch``, or a package, module or tool missing.
    """
    note: Progress = progress or (lambda _msg: None)
    spec = get_arch(arch)
    cache = lab_cache()
    with open(cache / "build.lock", "w") as lock:
        # several test sessions may build at once; one builds, the others then reuse it
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_locked(cache, note, spec, force=force)


def _suffix(arch: GuestArch) -> str:
    """Cache names of the x86_64 build are unsuffixed (as before arm64 existed)."""
    return "" if arch.name == "x86_64" else f"-{arch.deb_arch}"


def _resolve(cache: Path, note: Progress, arch: GuestArch) -> tuple[str, str, dict[str, str]]:
    """Kernel package, kernel release and every package to download; cached until the apt
    lists change (``apt-cache`` takes seconds per call)."""
    debs.ensure_architecture(arch.deb_arch, note)
    lists = Path("/var/lib/apt/lists")
    key = f"{lists.stat().st_mtime_ns if lists.exists() else 0}|{BUILD_FORMAT}"
    record = cache / f"resolved{_suffix(arch)}.json"
    try:
        saved = json.loads(record.read_text())
        if saved["key"] == key and isinstance(saved["packages"], dict):
            return saved["kpkg"], saved["kver"], saved["packages"]
    except (OSError, ValueError, KeyError):
        pass
    kpkg, kver = debs.kernel_package(note, arch.deb_arch)
    libs = debs.library_closure(debs.LINKED_PACKAGES, arch.deb_arch)
    packages = debs.candidates([kpkg, *debs.TOOL_PACKAGES, *libs], note, arch.deb_arch)
    record.write_text(json.dumps({"key": key, "kpkg": kpkg, "kver": kver, "packages": packages}))
    return kpkg, kver, packages


def _build_locked(cache: Path, note: Progress, arch: GuestArch, *, force: bool) -> BuildInfo:
    kpkg, kver, packages = _resolve(cache, note, arch)
    deb_list = debs.download(packages, cache / f"debs{_suffix(arch)}", note, arch.deb_arch)
    collector = collector_path()
    digest = _inputs_hash(deb_list, collector, arch.name)
    out = cache / "build" / digest
    info_path = out / "build.json"
    if info_path.exists() and not force:
        data = json.loads(info_path.read_text())
        return _info(out, data, cached=True)

    kernel_deb = deb_list[0]
    kroot = _unpack_kernel(kernel_deb, kver, cache, note)
    modules = _module_index(kroot, kver)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=out.parent))
    try:
        staging = work / "staging"
        for deb in deb_list[1:]:
            note(f"unpacking {deb.path.name}")
            debs.unpack(deb, staging)
        root = work / "root"
        for d in ("proc", "sys", "dev", "tmp", "mnt", "boot", "lib/modules"):
            (root / d).mkdir(parents=True, exist_ok=True)
        _install_userland(staging, root, arch)
        shutil.copyfile(_HERE / "init.sh", root / "init")
        _executable(root / "init")
        _install_modules(kroot, kver, modules, root / "lib" / "modules", arch)
        if collector.exists():
            (root / "kdiag").mkdir()
            shutil.copyfile(collector, root / "kdiag" / "collect.sh")
            _executable(root / "kdiag" / "collect.sh")
        final = work / "out"
        final.mkdir()
        note("packing capture.img")
        write_initramfs(root, final / "capture.img")
        vmlinuz = kroot / "boot" / f"vmlinuz-{kver}"
        shutil.copyfile(vmlinuz, final / "vmlinuz")
        shutil.copyfile(vmlinuz, root / "boot" / "vmlinuz")
        shutil.copyfile(final / "capture.img", root / "boot" / "capture.img")
        crashme = _build_crashme(kver, final / "crashme.ko", note) if arch.crashme else None
        if crashme is not None:
            shutil.copyfile(crashme, root / "lib" / "modules" / "crashme.ko")
        note("packing main.img")
        write_initramfs(root, final / "main.img")
        data = {
            "arch": arch.name,
            "kernel_release": kver,
            "kernel_package": kpkg,
            "kernel_version": kernel_deb.version,
            "crashme": crashme is not None,
            "collector": collector.exists(),
            "inputs_hash": digest,
            "packages": {d.package: d.version for d in deb_list},
        }
        (final / "build.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        shutil.rmtree(out, ignore_errors=True)
        final.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _prune(out.parent, keep=KEEP_BUILDS)
    return _info(out, data, cached=False)


def _install_modules(
    kroot: Path, kver: str, modules: dict[str, Path], dest: Path, arch: GuestArch
) -> None:
    """Copy each kernel's modules (dependencies first) and write their load order to
    ``first.list`` and ``capture.list``, which the guest ``/init`` reads."""
    for kind, wanted in (("first", arch.first_modules), ("capture", arch.capture_modules)):
        order = module_order(kroot, kver, wanted)
        for name in order:
            if name not in modules:
                raise ConfigError(f"module {name} missing from the {kver} kernel package")
            _copy_module(modules[name], dest / f"{name}.ko")
        (dest / f"{kind}.list").write_text(" ".join(order) + "\n")


def _prune(builds: Path, *, keep: int) -> None:
    """Remove all but the ``keep`` newest builds (older guests may still use recent ones)."""
    done = [d for d in builds.iterdir() if (d / "build.json").exists()]
    done.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    for old in done[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _info(out: Path, data: dict[str, object], *, cached: bool) -> BuildInfo:
    packages = data["packages"]
    assert isinstance(packages, dict)
    return BuildInfo(
        directory=out,
        arch=str(data.get("arch", "x86_64")),
        kernel_release=str(data["kernel_release"]),
        kernel_package=str(data["kernel_package"]),
        kernel_version=str(data["kernel_version"]),
        vmlinuz=out / "vmlinuz",
        main_initrd=out / "main.img",
        capture_initrd=out / "capture.img",
        crashme=out / "crashme.ko" if data["crashme"] else None,
        collector=bool(data["collector"]),
        inputs_hash=str(data["inputs_hash"]),
        packages={str(k): str(v) for k, v in packages.items()},
        cached=cached,
    )
