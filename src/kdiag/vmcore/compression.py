"""Per-page codecs of the kdump-compressed format, imported only when a page needs them.

zlib is in the standard library.  LZO (``python-lzo``), snappy (``cramjam``) and zstd
(``zstandard``) are optional extras; a page in a codec whose module is missing raises
:class:`~kdiag.errors.UnsupportedDump` naming the extra to install.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable
from enum import IntFlag
from typing import Any

from kdiag.errors import CorruptPage, UnsupportedDump

__all__ = ("COMPRESSION_MASK", "Codec", "codec_name", "decompress_page")


class Codec(IntFlag):
    """``DUMP_DH_*`` bits of ``disk_dump_header.status`` and ``page_desc.flags``."""

    ZLIB = 0x01
    LZO = 0x02
    SNAPPY = 0x04
    INCOMPLETE = 0x08
    EXCLUDED_VMEMMAP = 0x10
    ZSTD = 0x20


COMPRESSION_MASK = Codec.ZLIB | Codec.LZO | Codec.SNAPPY | Codec.ZSTD

_NAMES = {Codec.ZLIB: "zlib", Codec.LZO: "lzo", Codec.SNAPPY: "snappy", Codec.ZSTD: "zstd"}
_EXTRAS = {Codec.LZO: "lzo", Codec.SNAPPY: "snappy", Codec.ZSTD: "zstd"}

_Decoder = Callable[[bytes, int], bytes]
_decoders: dict[int, _Decoder] = {}


def codec_name(flags: int) -> str:
    """``zlib``/``lzo``/``snappy``/``zstd``, ``none`` without a codec bit, ``mixed`` for several."""
    bits = [name for bit, name in _NAMES.items() if flags & bit]
    if not bits:
        return "none"
    return bits[0] if len(bits) == 1 else "mixed"


def _zlib(data: bytes, page_size: int) -> bytes:
    # Bounded: a corrupt or hostile stream never inflates past one page (plus one byte).
    return zlib.decompressobj().decompress(data, page_size + 1)


def _snappy_length(data: bytes) -> int:
    """The uncompressed length a raw snappy block announces (leading varint)."""
    value = shift = 0
    for i, byte in enumerate(data[:10]):
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7
        if i == 9:
            break
    raise ValueError("bad snappy length varint")


_MODULES = {Codec.LZO: "lzo", Codec.SNAPPY: "cramjam", Codec.ZSTD: "zstandard"}


def _import(codec: Codec) -> Any:
    extra = _EXTRAS[codec]
    try:
        return importlib.import_module(_MODULES[codec])
    except ImportError as exc:
        raise UnsupportedDump(
            f"pages are {_NAMES[codec]}-compressed and the {extra!r} codec is not installed: "
            f"pip install 'kdiag[{extra}]'"
        ) from exc


def _load(codec: Codec) -> _Decoder:
    module = _import(codec)
    if codec is Codec.LZO:

        def _lzo(data: bytes, page_size: int) -> bytes:
            return bytes(module.decompress(data, False, page_size))

        return _lzo
    if codec is Codec.SNAPPY:

        def _snappy(data: bytes, page_size: int) -> bytes:
            if _snappy_length(data) != page_size:
                raise ValueError("snappy block does not announce one page")
            return bytes(module.snappy.decompress_raw(data))

        return _snappy
    dctx = module.ZstdDecompressor()

    def _zstd(data: bytes, page_size: int) -> bytes:
        announced = module.frame_content_size(data)
        if announced not in (-1, page_size):
            raise ValueError(f"zstd frame announces {announced} bytes")
        return bytes(dctx.decompress(data, max_output_size=page_size))

    return _zstd


def decompress_page(
    flags: int, data: bytes, page_size: int, *, offset: int | None = None, pfn: int | None = None
) -> bytes:
    """Decode one stored page; the result is exactly ``page_size`` bytes or ``CorruptPage``."""
    codec = Codec(flags & COMPRESSION_MASK)
    address = None if pfn is None else pfn * page_size
    if codec not in _NAMES:
        raise CorruptPage(
            f"page descriptor has several codec bits set ({flags:#x})",
            offset=offset,
            address=address,
        )
    decoder = _decoders.get(codec)
    if decoder is None:
        decoder = _zlib if codec is Codec.ZLIB else _load(codec)
        _decoders[codec] = decoder
    try:
        out = decoder(data, page_size)
    except UnsupportedDump:
        raise
    except Exception as exc:  # each codec raises its own error type
        raise CorruptPage(
            f"{_NAMES[codec]} page does not decompress: {exc}", offset=offset, address=address
        ) from exc
    if len(out) != page_size:
        raise CorruptPage(
            f"{_NAMES[codec]} page decompresses to {len(out)} bytes, not {page_size}",
            offset=offset,
            address=address,
        )
    return out
