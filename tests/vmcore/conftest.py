"""Fixtures for the vmcore tests: the real dumps, with ELF dumps decompressed once per session.

``fixture_dump(name)`` returns the path of a readable dump for a fixture folder: the stored
``vmcore``, or for ``vmcore.zst`` a copy decompressed (with ``zstandard``) into a session
temporary directory and checked against ``meta.json`` ``raw_sha256`` (``uncompressed_sha256``
in the arm64 ones) when it is given.
"""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import fixtures_root

FIXTURE_NAMES = sorted(
    p.name for p in fixtures_root().glob("*") if (p / "meta.json").is_file()
) or ["<no fixtures found>"]


def load_meta(name: str) -> dict:
    return json.loads((fixtures_root() / name / "meta.json").read_text())


@pytest.fixture(scope="session")
def fixture_dump(vmcore_fixtures: Path, tmp_path_factory) -> Callable[[str], Path]:
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name in made:
            return made[name]
        folder = vmcore_fixtures / name
        plain = folder / "vmcore"
        if plain.is_file():
            made[name] = plain
            return plain
        import zstandard

        packed = folder / "vmcore.zst"
        out = tmp_path_factory.mktemp("dumps") / f"{name}.vmcore"
        digest = hashlib.sha256()
        with packed.open("rb") as src, out.open("wb") as dst:
            reader = zstandard.ZstdDecompressor(max_window_size=1 << 31).stream_reader(src)
            while chunk := reader.read(1 << 20):
                digest.update(chunk)
                dst.write(chunk)
        info = load_meta(name)
        want = info.get("raw_sha256") or info.get("uncompressed_sha256")
        if want:
            assert digest.hexdigest() == want, f"{packed} does not decompress to its sha256"
        made[name] = out
        return out

    return get
