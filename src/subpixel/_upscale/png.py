"""A streaming PNG encoder: rows in, file out, memory bounded by one strip.

Pillow needs the whole image in memory (4 bytes per RGB pixel) to save it; an 8000×8000
input upscaled ×3 would need 2.3 GB for that alone. :class:`PngWriter` takes the output in
strips of rows, Paeth-filters and deflates them as they come, and writes 8- or 16-bit grey,
grey+alpha, RGB or RGBA, with an ICC profile (``iCCP``), DPI (``pHYs``) and EXIF (``eXIf``).

Example:
    >>> import io, numpy as np
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> img = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    >>> with PngWriter(buf, width=4, height=2, channels=3, bit_depth=8) as png:
    ...     png.write_rows(img)
    >>> bool((np.asarray(Image.open(io.BytesIO(buf.getvalue()))) == img).all())
    True
"""

from __future__ import annotations

import struct
import zlib
from types import TracebackType
from typing import BinaryIO

import numpy as np

__all__ = ["PngWriter"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
_ROWS_PER_CHUNK = 64
_IDAT_SIZE = 1 << 20


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth_filter(rows: np.ndarray, prior: np.ndarray, bpp: int) -> np.ndarray:
    """Filter type 4 for ``rows`` ``(r, n)`` uint8 given the raw row above ``prior`` ``(n,)``."""
    x = rows.astype(np.int16)
    b = np.concatenate([prior[None].astype(np.int16), x[:-1]])
    a = np.zeros_like(x)
    a[:, bpp:] = x[:, :-bpp]
    c = np.zeros_like(x)
    c[:, bpp:] = b[:, :-bpp]
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    out = np.empty((x.shape[0], x.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = 4
    out[:, 1:] = (x - pred).astype(np.uint8)
    return out


class PngWriter:
    """Write a PNG to ``fh`` strip by strip.

    Args:
        fh: a binary file object, written sequentially.
        width, height: image size in pixels.
        channels: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA.
        bit_depth: 8 (uint8 rows) or 16 (uint16 rows).
        icc_profile: raw ICC profile bytes to embed.
        dpi: ``(x, y)`` dots per inch to record.
        exif: EXIF bytes (with or without the ``Exif\\0\\0`` prefix).
        compress_level: zlib level 0-9 (Pillow's default is 6).

    Raises:
        ValueError: on bad sizes, channels, depth, or rows that do not fit.
    """

    def __init__(
        self,
        fh: BinaryIO,
        *,
        width: int,
        height: int,
        channels: int,
        bit_depth: int = 8,
        icc_profile: bytes | None = None,
        dpi: tuple[float, float] | None = None,
        exif: bytes | None = None,
        compress_level: int = 6,
    ) -> None:
        if not (1 <= width < 2**31 and 1 <= height < 2**31):
            raise ValueError(f"PNG size must be 1..2^31-1, got {width}×{height}")
        if channels not in _COLOR_TYPE or bit_depth not in (8, 16):
            raise ValueError(f"unsupported PNG layout: {channels} channels, {bit_depth} bits")
        self._fh, self._w, self._h, self._c = fh, width, height, channels
        self._depth = bit_depth
        self._bpp = channels * bit_depth // 8
        self._prior = np.zeros(width * self._bpp, dtype=np.uint8)
        self._rows = 0
        self._z = zlib.compressobj(compress_level)
        self._pending: list[bytes] = []
        self._pending_size = 0
        ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, _COLOR_TYPE[channels], 0, 0, 0)
        head = [_SIGNATURE, _chunk(b"IHDR", ihdr)]
        if icc_profile:
            head.append(_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
        if dpi:
            ppm = [min(max(1, round(float(d) / 0.0254)), 0xFFFFFFFF) for d in dpi]
            head.append(_chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
        if exif:
            raw = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
            head.append(_chunk(b"eXIf", raw))
        fh.write(b"".join(head))

    def write_rows(self, rows: np.ndarray) -> None:
        """Append ``rows`` ``(r, width, channels)`` (or ``(r, width)`` for grey)."""
        dtype = np.uint8 if self._depth == 8 else np.dtype(">u2")
        if rows.ndim == 2:
            rows = rows[..., None]
        if rows.shape[1:] != (self._w, self._c):
            raise ValueError(f"rows of shape {rows.shape} do not fit a {self._w}×{self._c} PNG")
        if self._rows + rows.shape[0] > self._h:
            raise ValueError(f"more than {self._h} rows written")
        for start in range(0, rows.shape[0], _ROWS_PER_CHUNK):
            part = np.ascontiguousarray(rows[start : start + _ROWS_PER_CHUNK], dtype=dtype)
            raw = part.reshape(part.shape[0], -1).view(np.uint8)
            filtered = _paeth_filter(raw, self._prior, self._bpp)
            self._prior = raw[-1].copy()
            self._push(self._z.compress(filtered.tobytes()))
        self._rows += rows.shape[0]

    def _push(self, data: bytes, *, flush: bool = False) -> None:
        if data:
            self._pending.append(data)
            self._pending_size += len(data)
        if self._pending_size >= _IDAT_SIZE or (flush and self._pending):
            self._fh.write(_chunk(b"IDAT", b"".join(self._pending)))
            self._pending, self._pending_size = [], 0

    def close(self) -> None:
        """Finish the stream (IEND).

        Raises:
            ValueError: if fewer rows than ``height`` were written.
        """
        if self._rows != self._h:
            raise ValueError(f"PNG incomplete: {self._rows} of {self._h} rows written")
        self._push(self._z.flush(), flush=True)
        self._fh.write(_chunk(b"IEND", b""))

    def __enter__(self) -> PngWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
