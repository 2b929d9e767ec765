"""A streaming PNG encoder: rows in, file out, memory bounded by a few strips.

Pillow needs the whole image in memory (4 bytes per RGB pixel) to save it; an 8000×8000
input upscaled ×3 would need 2.3 GB for that alone. :class:`PngWriter` takes the output in
strips of rows, Paeth-filters and deflates them as they come, and writes 8- or 16-bit grey,
grey+alpha, RGB or RGBA, with an ICC profile (``iCCP``), DPI (``pHYs``) and EXIF (``eXIf``).

Filtering and deflate run on several threads the way pigz does it: the rows are cut into
chunks of whole rows (at least ``chunk_bytes``), each chunk is filtered and compressed on its
own by a worker as raw deflate primed with the 32 KiB of filtered bytes before it (so the
ratio barely changes) and ended with a sync flush (the last with ``Z_FINISH``), so that the
chunks, concatenated in order, are one deflate stream. The calling thread filters only the
last 32 KiB of each chunk (the next chunk's dictionary), writes the chunks in order as they
finish, and wraps them in the zlib header and the Adler-32 of all the filtered bytes (put
together from the chunks'). zlib and numpy release the GIL while they work, so the pool
runs in parallel; at most 2 chunks per thread are in flight. With one thread, or an image
of one chunk, it is a single zlib stream on the calling thread.

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

import collections
import struct
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import BinaryIO

import numpy as np

__all__ = ["PngWriter"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
_IDAT_SIZE = 1 << 20
#: Raw bytes per compressed chunk (whole rows, at least this many). A 3840×2160 RGB image
#: at level 3 on 2 threads: 128 / 256 / 512 KiB chunks took 356 / 330 / 318 ms for
#: 6655378 / 6654098 / 6653656 bytes (one stream: 609 ms, 6652919 bytes). Larger chunks
#: mean fewer of them to share among many threads.
_CHUNK_BYTES = 256 << 10
_WINDOW = 32 << 10  # deflate's window: what primes each chunk
#: The Paeth filter runs fastest on blocks of this many bytes (they stay in cache).
_FILTER_BYTES = 128 << 10


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth_filter(rows: np.ndarray, prior: np.ndarray, bpp: int, out: np.ndarray) -> None:
    """Filter type 4 of ``rows`` ``(r, n)`` uint8 below the raw row ``prior`` ``(n,)``.

    Writes ``out`` ``(r, n + 1)`` uint8, each row led by its filter type byte.
    """
    r, n = rows.shape
    buf = np.empty((r + 1, n), dtype=np.uint8)
    buf[0], buf[1:] = prior, rows
    x, up = buf[1:], buf[:-1]
    out[:, 0] = 4
    # The first pixel of a row has no left neighbour (a = c = 0): the predictor is b.
    np.subtract(x[:, :bpp], up[:, :bpp], out=out[:, 1 : 1 + bpp])
    a, b, c = x[:, :-bpp], up[:, bpp:], up[:, :-bpp]
    pa = b.astype(np.int16)
    pa -= c  # b - c
    pb = a.astype(np.int16)
    pb -= c  # a - c
    pc = np.abs(pa + pb)  # |a + b - 2c|
    np.abs(pa, out=pa)
    np.abs(pb, out=pb)
    pred = np.where(pb <= pc, b, c)
    use_a = pa <= pb
    use_a &= pa <= pc
    np.copyto(pred, a, where=use_a)
    np.subtract(x[:, bpp:], pred, out=out[:, 1 + bpp :])  # modulo 256


def _filter(raw: np.ndarray, prior: np.ndarray, bpp: int) -> memoryview:
    """The filtered bytes of ``raw`` ``(r, n)`` below ``prior``, in cache-sized blocks."""
    r, n = raw.shape
    out = np.empty((r, n + 1), dtype=np.uint8)
    step = max(1, _FILTER_BYTES // n)
    for i in range(0, r, step):
        _paeth_filter(raw[i : i + step], raw[i - 1] if i else prior, bpp, out[i : i + step])
    return out.reshape(-1).data


def _zlib_header(level: int) -> bytes:
    """The two bytes zlib starts a stream of ``level`` with (RFC 1950; 32 KiB window)."""
    level = 6 if level < 0 else level
    flevel = 0 if level < 2 else 1 if level < 6 else 2 if level == 6 else 3
    head = 0x7800 | flevel << 6
    return struct.pack(">H", head + 31 - head % 31)


def _adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    """The Adler-32 of ``A + B`` from those of ``A`` and ``B`` and ``len(B)``."""
    a1, b1, a2, b2 = adler1 & 0xFFFF, adler1 >> 16, adler2 & 0xFFFF, adler2 >> 16
    a = (a1 + a2 - 1) % 65521
    b = (b1 + b2 + len2 * (a1 - 1)) % 65521
    return b << 16 | a


def _compress_chunk(
    raw: np.ndarray,
    prior: np.ndarray,
    bpp: int,
    tail: memoryview,
    level: int,
    zdict: bytes,
    last: bool,
) -> tuple[bytes, int, int]:
    """A worker's job: filter ``raw`` below ``prior`` and deflate it, then ``tail`` (the
    rows after it, already filtered), as raw deflate primed with ``zdict``, ending
    byte-aligned (``Z_SYNC_FLUSH``) or final (``last``).

    Returns the deflate bytes, the Adler-32 and the length of the data.
    """
    z = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=zdict)
    out, adler, size = [], 1, len(tail)
    if raw.shape[0]:
        data = _filter(raw, prior, bpp)
        out.append(z.compress(data))
        adler, size = zlib.adler32(data), size + len(data)
    out.append(z.compress(tail))
    out.append(z.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH))
    return b"".join(out), zlib.adler32(tail, adler), size


def _default_threads() -> int:
    import torch

    return torch.get_num_threads()


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
        threads: deflate threads (default ``torch.get_num_threads()``); with 1, or an image
            of one chunk, a single zlib stream on the calling thread.
        chunk_bytes: raw bytes per chunk compressed on its own (whole rows, at least this
            many; small values are for tests).

    Raises:
        ValueError: on bad sizes, channels, depth, or rows that do not fit.

    A worker's exception is raised from :meth:`write_rows` or :meth:`close`, after the
    pool has stopped; :meth:`abort` (or leaving the ``with`` block by an exception) stops
    it without finishing the file.
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
        threads: int | None = None,
        chunk_bytes: int = _CHUNK_BYTES,
    ) -> None:
        if not (1 <= width < 2**31 and 1 <= height < 2**31):
            raise ValueError(f"PNG size must be 1..2^31-1, got {width}×{height}")
        if channels not in _COLOR_TYPE or bit_depth not in (8, 16):
            raise ValueError(f"unsupported PNG layout: {channels} channels, {bit_depth} bits")
        if not -1 <= compress_level <= 9:
            raise ValueError(f"zlib level must be -1..9, got {compress_level}")
        self._fh, self._w, self._h, self._c = fh, width, height, channels
        self._depth, self._level = bit_depth, compress_level
        self._bpp = channels * bit_depth // 8
        row_bytes = width * self._bpp
        self._chunk_rows = min(height, max(1, -(-max(1, chunk_bytes) // row_bytes)))
        # Raw rows of the chunk being filled (a new array per chunk: workers read the old).
        self._raw = np.empty((self._chunk_rows, row_bytes), dtype=np.uint8)
        self._fill = 0  # rows in self._raw
        self._prior = np.zeros(row_bytes, dtype=np.uint8)  # the raw row above self._raw
        # Rows of a chunk filtered here, not by its worker: the next chunk's dictionary.
        self._tail_rows = -(-_WINDOW // (row_bytes + 1))
        self._rows = 0
        self._state = "open"  # then "closed" (finished) or "aborted"
        self._pending: list[bytes] = []
        self._pending_size = 0
        threads = _default_threads() if threads is None else threads
        self._threads = max(1, threads) if self._chunk_rows < height else 1
        # One zlib stream on this thread, or chunks on a pool (started at the first chunk).
        self._z = zlib.compressobj(compress_level) if self._threads == 1 else None
        self._pool: ThreadPoolExecutor | None = None
        self._futures: collections.deque[Future[tuple[bytes, int, int]]] = collections.deque()
        self._adler = 1  # of the filtered bytes written
        self._zdict = b""  # the last 32 KiB of filtered bytes, to prime the next chunk
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
        if self._z is None:
            self._push(_zlib_header(compress_level))

    def write_rows(self, rows: np.ndarray) -> None:
        """Append ``rows`` ``(r, width, channels)`` (or ``(r, width)`` for grey)."""
        if self._state != "open":
            raise ValueError(f"PNG writer {self._state}")
        if rows.ndim == 2:
            rows = rows[..., None]
        if rows.shape[1:] != (self._w, self._c):
            raise ValueError(f"rows of shape {rows.shape} do not fit a {self._w}×{self._c} PNG")
        if self._rows + rows.shape[0] > self._h:
            raise ValueError(f"more than {self._h} rows written")
        flat = rows.reshape(rows.shape[0], -1)
        try:
            start = 0
            while start < flat.shape[0]:
                k = min(flat.shape[0] - start, self._chunk_rows - self._fill)
                # self._raw as the samples PNG stores (big-endian 16 bits): copying converts.
                dest = self._raw if self._depth == 8 else self._raw.view(">u2")
                dest[self._fill : self._fill + k] = flat[start : start + k]
                self._fill += k
                self._rows += k
                start += k
                # The last chunk waits for close(), which ends the stream with it.
                if self._fill == self._chunk_rows and self._rows < self._h:
                    self._emit(last=False)
        except BaseException:
            self.abort()
            raise

    def _emit(self, *, last: bool) -> None:
        """Filter and compress the rows in ``self._raw``."""
        raw, prior = self._raw[: self._fill], self._prior
        self._prior = raw[-1]
        self._raw = np.empty_like(self._raw)
        self._fill = 0
        if self._z is not None:
            self._push(self._z.compress(_filter(raw, prior, self._bpp)))
            if last:
                self._push(self._z.flush())
            return
        # The chunk's last 32 KiB are filtered here, to prime the next chunk; the worker
        # filters the rest. The Adler-32 of the chunks is put together as they finish.
        r = raw.shape[0]
        k = 0 if last else min(r, self._tail_rows)
        tail = _filter(raw[r - k :], raw[r - k - 1] if k < r else prior, self._bpp)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="subpixel-png")
        self._futures.append(
            self._pool.submit(
                _compress_chunk,
                raw[: r - k],
                prior,
                self._bpp,
                tail,
                self._level,
                self._zdict,
                last,
            )
        )
        self._zdict = (self._zdict + bytes(tail) if k == r else bytes(tail))[-_WINDOW:]
        # Write what is done, in order; wait while 2 chunks per thread are in flight.
        while self._futures and (
            self._futures[0].done() or len(self._futures) >= 2 * self._threads or last
        ):
            data, adler, size = self._futures[0].result()
            self._futures.popleft()
            self._adler = _adler32_combine(self._adler, adler, size)
            self._push(data)
        if last:
            self._push(struct.pack(">I", self._adler))
            self._stop()

    def _push(self, data: bytes, *, flush: bool = False) -> None:
        if data:
            self._pending.append(data)
            self._pending_size += len(data)
        if self._pending_size >= _IDAT_SIZE or (flush and self._pending):
            self._fh.write(_chunk(b"IDAT", b"".join(self._pending)))
            self._pending, self._pending_size = [], 0

    def _stop(self) -> None:
        """Stop the pool: chunks not started are dropped, running ones are waited for."""
        self._futures.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """Finish the stream (IEND).

        A second call does nothing.

        Raises:
            ValueError: if fewer rows than ``height`` were written (the writer is then
                aborted), or after :meth:`abort`.
        """
        if self._state == "closed":
            return
        if self._state != "open":
            raise ValueError(f"PNG writer {self._state}")
        try:
            if self._rows != self._h:
                raise ValueError(f"PNG incomplete: {self._rows} of {self._h} rows written")
            self._emit(last=True)
            self._push(b"", flush=True)
            self._fh.write(_chunk(b"IEND", b""))
        except BaseException:
            self.abort()
            raise
        self._state = "closed"

    def abort(self) -> None:
        """Stop without finishing the file: the threads end, the file stays incomplete."""
        if self._state == "open":
            self._state = "aborted"
        self._stop()

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
        else:
            self.abort()
