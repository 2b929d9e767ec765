"""subpixel._upscale.png: the streaming PNG writer deflating chunks on several threads.

References are independent of the writer: Pillow's PNG decoder, ``zlib.decompress`` of the
concatenated IDAT data (which checks the zlib header and the Adler-32) followed by a plain
Python reconstruction of the PNG filters as RFC 2083 writes them, the Paeth filter written
from the specification, and zlib's own header bytes for each level.
"""

from __future__ import annotations

import io
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from subpixel._upscale import png
from subpixel._upscale.png import PngWriter


def _png_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("subpixel-png")]


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(kind, payload)`` of every chunk, CRCs checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        assert crc == zlib.crc32(kind + payload)
        out.append((kind, payload))
        pos += 12 + n
    assert out[0][0] == b"IHDR" and out[-1] == (b"IEND", b"")
    return out


def _idat(data: bytes) -> bytes:
    return b"".join(p for k, p in _chunks(data) if k == b"IDAT")


def _unfilter(data: bytes, height: int, row_bytes: int, bpp: int) -> bytes:
    """Undo the PNG filters (types 0-4), byte by byte as the specification gives them."""
    assert len(data) == height * (row_bytes + 1)
    prev = [0] * row_bytes
    out = bytearray()
    for y in range(height):
        kind = data[y * (row_bytes + 1)]
        line = data[y * (row_bytes + 1) + 1 : (y + 1) * (row_bytes + 1)]
        cur = [0] * row_bytes
        for i in range(row_bytes):
            a = cur[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            else:
                assert kind == 4
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            cur[i] = (line[i] + pred) & 0xFF
        out += bytes(cur)
        prev = cur
    return bytes(out)


def _spec_paeth(raw: np.ndarray, bpp: int) -> bytes:
    """Filter type 4 of ``raw`` ``(h, n)`` uint8, with the specification's ``p = a + b - c``."""
    x = raw.astype(np.int32)
    b = np.vstack([np.zeros_like(x[:1]), x[:-1]])
    a = np.hstack([np.zeros_like(x[:, :bpp]), x[:, :-bpp]])
    c = np.hstack([np.zeros_like(b[:, :bpp]), b[:, :-bpp]])
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    out = np.hstack([np.full((x.shape[0], 1), 4), (x - pred) % 256]).astype(np.uint8)
    return out.tobytes()


def _encode(img: np.ndarray, bands: int = 5, **kw: object) -> bytes:
    h, w, c = img.shape
    buf = io.BytesIO()
    depth = 16 if img.dtype == np.uint16 else 8
    with PngWriter(buf, width=w, height=h, channels=c, bit_depth=depth, **kw) as wr:  # type: ignore[arg-type]
        for start in range(0, h, bands):
            wr.write_rows(img[start : start + bands])
    return buf.getvalue()


def _check(data: bytes, img: np.ndarray) -> None:
    """Decode ``data`` with zlib + the reference unfilter, and Pillow where it can."""
    h, _, c = img.shape
    depth = 16 if img.dtype == np.uint16 else 8
    raw = img.astype(">u2" if depth == 16 else np.uint8).tobytes()
    stream = _idat(data)
    filtered = zlib.decompress(stream)  # checks the header and the Adler-32
    assert stream[-4:] == struct.pack(">I", zlib.adler32(filtered))
    assert _unfilter(filtered, h, len(raw) // h, c * depth // 8) == raw
    if depth == 8 or c == 1:  # Pillow has no 16-bit colour modes
        got = np.asarray(Image.open(io.BytesIO(data)))
        assert np.array_equal(got.reshape(img.shape), img)


LAYOUTS = [(1, 8), (2, 8), (3, 8), (4, 8), (1, 16), (2, 16), (3, 16), (4, 16)]


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize(("channels", "depth"), LAYOUTS)
def test_chunks_decode_exactly(threads: int, channels: int, depth: int) -> None:
    rng = np.random.default_rng(channels * depth + threads)
    dtype = np.uint8 if depth == 8 else np.uint16
    img = rng.integers(0, 2**depth, (23, 13, channels)).astype(dtype)
    img[:5] = img[:1]  # some repetition for the matches across chunks
    # One row per chunk (chunk_bytes=1) and a few rows per chunk.
    for chunk_bytes in (1, 150):
        _check(_encode(img, threads=threads, chunk_bytes=chunk_bytes), img)


@pytest.mark.parametrize("threads", [2, 4])
def test_worker_filters_part_of_a_chunk(threads: int) -> None:
    # Rows of 9003 bytes, 8 per chunk: the writer filters the last 4 (the next chunk's
    # 32 KiB dictionary), the worker the first 4.
    rng = np.random.default_rng(threads)
    base = rng.integers(0, 256, (1, 3001, 3), dtype=np.uint8)
    img = (base + rng.integers(0, 3, (40, 3001, 3), dtype=np.uint8)).astype(np.uint8)
    data = _encode(img, bands=7, threads=threads, chunk_bytes=64 << 10)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), img)
    stream = _idat(data)
    assert zlib.decompress(stream) == _spec_paeth(img.reshape(40, -1), 3)
    # The same stream deflated as one piece is not much smaller.
    assert len(stream) < 1.02 * len(_idat(_encode(img, threads=1)))


def test_dictionary_spans_chunks() -> None:
    # Rows repeating every 6 rows, one row per chunk: each chunk finds its match 6 rows back
    # only through the 32 KiB dictionary built from the chunks before it.
    period = np.random.default_rng(5).integers(0, 256, (6, 50, 3)).astype(np.uint8)
    img = np.tile(period, (20, 1, 1))
    one = len(_idat(_encode(img, threads=1)))
    many = len(_idat(data := _encode(img, threads=2, chunk_bytes=1)))
    assert many < one + 120 * 8  # a few bytes per chunk boundary, no lost matches
    _check(data, img)


@pytest.mark.parametrize("window", [1, 40, 100])
def test_small_dictionary_splits(monkeypatch: pytest.MonkeyPatch, window: int) -> None:
    # A tiny window moves the writer/worker split inside small chunks.
    monkeypatch.setattr(png, "_WINDOW", window)
    img = np.random.default_rng(window).integers(0, 256, (30, 11, 3)).astype(np.uint8)
    _check(_encode(img, threads=3, chunk_bytes=120), img)


@pytest.mark.parametrize("threads", [1, 4])
@pytest.mark.parametrize("shape", [(1, 7, 3), (1, 1, 1), (9, 1, 2), (1, 5000, 4)])
def test_single_row_and_column(threads: int, shape: tuple[int, int, int]) -> None:
    img = np.random.default_rng(shape[1]).integers(0, 256, shape).astype(np.uint8)
    _check(_encode(img, threads=threads, chunk_bytes=1), img)


@pytest.mark.parametrize("level", [-1, 0, 1, 2, 3, 5, 6, 7, 9])
def test_zlib_header_matches_zlib(level: int) -> None:
    img = np.random.default_rng(level + 1).integers(0, 4, (12, 9, 3)).astype(np.uint8)
    data = _encode(img, threads=2, chunk_bytes=40, compress_level=level)
    assert _idat(data)[:2] == zlib.compress(b"", level)[:2]
    _check(data, img)


def test_metadata_chunks_with_threads() -> None:
    img = np.random.default_rng(0).integers(0, 256, (20, 6, 3)).astype(np.uint8)
    data = _encode(
        img, threads=2, chunk_bytes=1, dpi=(300, 300), icc_profile=b"x" * 50, exif=b"II*\x00"
    )
    assert [k for k, _ in _chunks(data)][:5] == [b"IHDR", b"iCCP", b"pHYs", b"eXIf", b"IDAT"]
    im = Image.open(io.BytesIO(data))
    assert round(im.info["dpi"][0]) == 300 and im.info["icc_profile"] == b"x" * 50
    _check(data, img)


def test_worker_failure_raises_and_stops_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = png._compress_chunk

    def failing(*args: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("chunk 3 failed")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(png, "_compress_chunk", failing)
    img = np.zeros((40, 5, 3), dtype=np.uint8)
    buf = io.BytesIO()
    wr = PngWriter(buf, width=5, height=40, channels=3, threads=2, chunk_bytes=1)
    with pytest.raises(RuntimeError, match="chunk 3 failed"):
        for start in range(0, 40, 4):
            wr.write_rows(img[start : start + 4])
        wr.close()
    assert _png_threads() == []
    with pytest.raises(ValueError, match="aborted"):
        wr.close()  # no file that looks complete
    assert not buf.getvalue().endswith(png._chunk(b"IEND", b""))


def test_failure_at_close_stops_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: object) -> object:
        raise OSError("disk full")

    img = np.zeros((10, 5, 1), dtype=np.uint8)
    wr = PngWriter(io.BytesIO(), width=5, height=10, channels=1, threads=2, chunk_bytes=1)
    wr.write_rows(img[:9])
    monkeypatch.setattr(png, "_compress_chunk", failing)
    wr.write_rows(img[9:])
    with pytest.raises(OSError, match="disk full"):
        wr.close()
    assert _png_threads() == []


def test_abort_and_incomplete_stop_threads() -> None:
    img = np.zeros((10, 5, 1), dtype=np.uint8)
    with (
        pytest.raises(KeyError),
        PngWriter(io.BytesIO(), width=5, height=10, channels=1, threads=2, chunk_bytes=1) as w,
    ):
        w.write_rows(img[:6])
        assert _png_threads()
        raise KeyError("model failed")
    assert _png_threads() == []
    wr = PngWriter(io.BytesIO(), width=5, height=10, channels=1, threads=2, chunk_bytes=1)
    wr.write_rows(img[:6])
    with pytest.raises(ValueError, match="6 of 10 rows"):
        wr.close()
    assert _png_threads() == []


def test_chunks_in_flight_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Workers that block until released: the writer must stop submitting after 2 per thread.
    release = threading.Event()
    submitted = []
    real = png._compress_chunk

    def slow(*args: object) -> object:
        submitted.append(1)
        release.wait(5)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(png, "_compress_chunk", slow)
    img = np.random.default_rng(0).integers(0, 256, (50, 4, 3)).astype(np.uint8)
    buf = io.BytesIO()
    wr = PngWriter(buf, width=4, height=50, channels=3, threads=2, chunk_bytes=1)
    done = threading.Event()

    def feed() -> None:
        wr.write_rows(img)
        done.set()

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        assert not done.wait(0.3)  # blocked on the 4 chunks in flight
        assert len(submitted) <= 2  # only the 2 workers started, the rest queued
        assert len(wr._futures) == 4
    finally:
        release.set()
        feeder.join(5)
    wr.close()
    _check(buf.getvalue(), img)
    assert _png_threads() == []


def test_default_threads_from_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    wr = PngWriter(io.BytesIO(), width=4, height=50, channels=3, chunk_bytes=1)
    assert wr._threads == 3
    wr.abort()
    tiny = PngWriter(io.BytesIO(), width=4, height=50, channels=3)  # one chunk: one stream
    assert tiny._threads == 1
    tiny.abort()


def test_png_sink_abort_and_close(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    from subpixel._upscale.images import ImageMeta, open_sink

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    img = np.random.default_rng(1).integers(0, 256, (200, 1000, 3)).astype(np.uint8)
    sink = open_sink(str(tmp_path / "a.png"), "PNG", 200, 1000, 3, img.dtype, ImageMeta())
    sink.write(img[:150])  # 450 KB: a chunk of 256 KiB sent
    assert _png_threads()
    sink.abort()  # type: ignore[attr-defined]
    assert _png_threads() == [] and sink._fh.closed  # type: ignore[attr-defined]
    sink = open_sink(str(tmp_path / "b.png"), "PNG", 200, 1000, 3, img.dtype, ImageMeta())
    sink.write(img[:150])
    sink.write(img[150:])
    sink.close()
    assert _png_threads() == []
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), img)
