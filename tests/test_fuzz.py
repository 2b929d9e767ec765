"""Fuzzing image decoding + upscaling and the command line (hypothesis).

With the tests: a short fixed-seed run (``derandomize=True``, a few dozen examples each).
``make fuzz`` sets ``FUZZ_SECONDS`` (default 120) and runs these same targets with fresh
randomness, round after round, until each has spent its share of that time.

The only allowed outcomes:

* decoding + upscaling a file (random bytes, or a valid PNG/JPEG/BMP/TIFF/WebP/GIF with
  bytes flipped, chunks edited, cut or spliced): the output is written, or
  :class:`~subpixel.upscale.ImageError` is raised naming the file, and nothing but the
  output is ever left in the output folder;
* ``main(argv)`` for random argument lists: an ``int`` comes back (0, 1 with one
  ``subpixel ...: error:`` line, 2 for usage errors), no exception, no traceback printed.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import struct
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from subpixel.cli import main
from subpixel.upscale import IMAGE_EXTENSIONS, ImageError, Upscaler

#: ``make fuzz``: total seconds for this file's targets; unset in the normal test run.
FUZZ_SECONDS = float(os.environ["FUZZ_SECONDS"]) if os.environ.get("FUZZ_SECONDS") else None
_TARGETS = 2
_ROUND = 100  # examples per hypothesis run in fuzz mode


def _settings(examples: int) -> settings:
    return settings(
        max_examples=_ROUND if FUZZ_SECONDS else examples,
        derandomize=not FUZZ_SECONDS,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


#: Examples run per target (printed in fuzz mode).
CALLS: collections.Counter[str] = collections.Counter()


def _run(target: Callable[[], None], name: str) -> None:
    """Once (fixed seed), or in fuzz mode repeatedly until this target's share of time is up."""
    if not FUZZ_SECONDS:
        target()
        return
    start = time.monotonic()
    while time.monotonic() < start + FUZZ_SECONDS / _TARGETS:
        target()
    seconds = time.monotonic() - start
    print(f"{name}: {CALLS[name]} examples in {seconds:.0f} s without a failure")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def weights(tiny_espcn_x2: Path) -> Path:
    """A small random ESPCN ×2 (the result's quality does not matter here)."""
    return tiny_espcn_x2


# -- seeds: small valid files of every format and mode we decode ----------------------------------


def _encode(im: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **options)
    return buf.getvalue()


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 256, (7, 6, 4), dtype=np.uint8))
    grey16 = Image.fromarray(rng.integers(0, 65536, (5, 8), dtype=np.uint16))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated
    seeds = [
        _encode(rgb, "PNG"),
        _encode(rgba, "PNG"),
        _encode(rgb.convert("L"), "PNG"),
        _encode(rgb.convert("LA"), "PNG"),
        _encode(rgb.convert("1"), "PNG"),
        _encode(rgb.convert("P"), "PNG", transparency=3),
        _encode(grey16, "PNG"),
        _encode(rgb, "JPEG", quality=80, exif=exif.tobytes()),
        _encode(rgb.convert("L"), "JPEG"),
        _encode(rgb.convert("CMYK"), "JPEG"),
        _encode(rgb, "BMP"),
        _encode(rgba, "BMP"),
        _encode(rgb, "TIFF"),
        _encode(rgb, "TIFF", compression="tiff_deflate"),
        _encode(grey16, "TIFF"),
        _encode(rgb.convert("CMYK"), "TIFF"),
        _encode(rgb, "WEBP", quality=80),
        _encode(rgba, "WEBP", lossless=True),
        _encode(rgb.convert("P"), "GIF"),
    ]
    # 16-bit RGB PNG (decoded through PyAV when installed).
    raw = rng.integers(0, 65536, (4, 5, 3), dtype=np.uint16).astype(">u2").tobytes()
    rows = b"".join(b"\x00" + raw[i * 30 : (i + 1) * 30] for i in range(4))
    seeds.append(_png_file(struct.pack(">IIBBBBB", 5, 4, 16, 2, 0, 0, 0), zlib.compress(rows)))
    return seeds


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_file(ihdr: bytes, idat: bytes) -> bytes:
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


SEEDS = _seeds()

_edits = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "cut", "insert", "delete", "splice"]),
        st.integers(0, 1 << 20),
        st.binary(min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=6,
)


def _mutate(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    b = bytearray(data)
    for kind, pos, payload in edits:
        i = pos % (len(b) + 1)
        if kind == "flip" and b:
            b[i % len(b)] ^= 1 << (payload[0] % 8)
        elif kind == "set":
            b[i : i + len(payload)] = payload
        elif kind == "cut":
            del b[i:]
        elif kind == "insert":
            b[i:i] = payload
        elif kind == "delete":
            del b[i : i + payload[0] % 32 + 1]
        elif kind == "splice":
            other = SEEDS[payload[0] % len(SEEDS)]
            b[i:] = other[pos % len(other) :]
    return bytes(b)


@st.composite
def _png_field_edit(draw: st.DrawFn) -> bytes:
    """A PNG whose IHDR fields are replaced (CRC fixed, so decoders read on)."""
    width = draw(st.sampled_from([0, 1, 3, 1 << 16, (1 << 31) - 1, 1 << 31, 0xFFFFFFFF]))
    height = draw(st.integers(0, 0xFFFFFFFF))
    depth = draw(st.sampled_from([0, 1, 2, 4, 8, 16, 32]))
    color = draw(st.sampled_from([0, 2, 3, 4, 6, 7]))
    extra = draw(st.binary(max_size=3).map(lambda b: b.ljust(3, b"\x00")))
    ihdr = struct.pack(">II", width, height) + bytes([depth, color]) + extra
    idat = zlib.compress(draw(st.binary(max_size=256)))
    return _png_file(ihdr, idat)


FILES = st.one_of(
    st.binary(max_size=512),
    st.tuples(st.sampled_from(SEEDS), _edits).map(lambda t: _mutate(*t)),
    _png_field_edit(),
    st.sampled_from(SEEDS),
)


def test_seeds_are_valid(weights: Path, tmp_path: Path) -> None:
    """Every seed decodes and upscales: the mutations start from real files."""
    up = Upscaler(weights)
    for i, data in enumerate(SEEDS):
        src = tmp_path / f"seed{i}.img"
        src.write_bytes(data)
        assert up.upscale_file(src, tmp_path / f"out{i}.png").exists()


def test_fuzz_decode_and_upscale(weights: Path) -> None:
    up = Upscaler(weights, max_pixels=100_000)

    @_settings(60)
    @given(
        data=FILES, ext=st.sampled_from(IMAGE_EXTENSIONS), out_ext=st.sampled_from(IMAGE_EXTENSIONS)
    )
    def target(data: bytes, ext: str, out_ext: str) -> None:
        CALLS["decode+upscale"] += 1
        with tempfile.TemporaryDirectory() as d:
            src, dst = Path(d) / f"in{ext}", Path(d) / "out" / f"result{out_ext}"
            src.write_bytes(data)
            try:
                up.upscale_file(src, dst)
            except ImageError as exc:
                assert str(src) in str(exc) and "\n" not in str(exc)
                assert not dst.parent.exists() or not any(dst.parent.iterdir())
            else:
                assert [p.name for p in dst.parent.iterdir()] == [dst.name]
                with Image.open(dst) as im:
                    im.load()
            assert src.read_bytes() == data  # the input is never modified

    _run(target, "decode+upscale")


# -- the command line -------------------------------------------------------------------------


_COMMANDS = ["upscale"] * 4 + ["train", "eval", "import-opencv", "experiment", "bogus", ""]
_OPTIONS = [
    "-o", "--output", "--scale", "--weights", "--tile", "--device", "--precision", "--compare",
    "--reference", "--overwrite", "--jobs", "--max-pixels", "--batch", "--no-progress", "-h",
    "--help", "--version", "--steps", "--model", "--", "-", "--scale=3", "--tile=-1",
    "--jobs=0", "--unknown", "-x",
]  # fmt: skip
_VALUES = [
    "2", "3", "4", "0", "-1", "1", "7", "99999999999999999999", "abc", "", "1e3", "nan",
    "cpu", "cuda", "cuda:0", "mps", "meta", "xla", "int8", "fp32", "fp16", "DEFAULT", "default",
    "{png}", "{jpg}", "{grey}", "{corrupt}", "{text}", "{empty}", "{folder}", "{nofolder}",
    "{missing}", "{video}", "{weights}", "{pickle}", "{garbage}", "{out}/a.png", "{out}/b.jpg",
    "{out}/c.txt", "{out}/d", "{out}/", "{out}/v.mp4", "{out}/ünï©ødé.webp",
    "{out}/" + "n" * 300 + ".png", "{out}/nul\x00.png",
]  # fmt: skip


def _fixture_files(root: Path, weights: Path) -> dict[str, str]:
    """Fresh inputs for one example (an example may overwrite them)."""
    rng = np.random.default_rng(1)
    folder = root / "folder"
    folder.mkdir()
    img = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    Image.fromarray(img).save(folder / "png.png")
    Image.fromarray(img).save(folder / "jpg.jpg")
    Image.fromarray(img[..., 0]).save(folder / "grey.png")
    (folder / "corrupt.png").write_bytes(SEEDS[0][:40])
    (folder / "text.png").write_text("hello")
    (folder / "empty.bmp").write_bytes(b"")
    (root / "nofolder").mkdir()
    (root / "pickle.pt").write_bytes(b"\x80\x04\x95" + b"\x00" * 40)
    (root / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    (root / "w.safetensors").write_bytes(weights.read_bytes())
    (root / "v.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    (root / "out").mkdir()
    return {
        "png": str(folder / "png.png"),
        "jpg": str(folder / "jpg.jpg"),
        "grey": str(folder / "grey.png"),
        "corrupt": str(folder / "corrupt.png"),
        "text": str(folder / "text.png"),
        "empty": str(folder / "empty.bmp"),
        "folder": str(folder),
        "nofolder": str(root / "nofolder"),
        "missing": str(root / "missing.png"),
        "video": str(root / "v.mp4"),
        "weights": str(root / "w.safetensors"),
        "pickle": str(root / "pickle.pt"),
        "garbage": str(root / "garbage.safetensors"),
        "out": str(root / "out"),
    }


_INPUTS = ["{png}", "{jpg}", "{grey}", "{corrupt}", "{text}", "{empty}", "{folder}"]
_INPUTS += ["{nofolder}", "{missing}", "{video}"]
_OUTPUTS = [v for v in _VALUES if v.startswith("{out}")]
_OPTION_VALUES = {
    "--scale": ["2", "3", "4", "5", "0", "x"],
    "--weights": ["{weights}", "{weights}", "{pickle}", "{garbage}", "{png}", "DEFAULT", ""],
    "--tile": ["0", "1", "2", "5", "512", "-3", "99999999999999999999"],
    "--device": ["cpu", "cuda", "mps", "meta", "xla", "cpu:1", ""],
    "--precision": ["fp32", "int8", "fp16"],
    "--jobs": ["1", "2", "0", "-1", "99999"],
    "--max-pixels": ["0", "-1", "10", "1000", "89478485"],
    "--batch": ["1", "8", "0", "-2"],
    "--reference": ["{png}", "{folder}", "{missing}", "{text}"],
    "--compare": [],
    "--overwrite": [],
    "--no-progress": [],
}


def _option(name: str) -> st.SearchStrategy[list[str]]:
    """``[name]`` for a flag, ``[name, value]`` for an option."""
    if not _OPTION_VALUES[name]:
        return st.just([name])
    return st.sampled_from(_OPTION_VALUES[name]).map(lambda v: [name, v])


#: Mostly well-formed `upscale` command lines (so that runs get past the parser), with
#: option values drawn from valid, edge and garbage values.
UPSCALE_ARGV = st.tuples(
    st.lists(st.sampled_from(_INPUTS), min_size=1, max_size=2),
    st.sampled_from(["{out}/", "{out}/a.png", *_OUTPUTS]),
    st.sampled_from(["{weights}"] * 6 + _OPTION_VALUES["--weights"]),
    st.lists(
        st.sampled_from(sorted(_OPTION_VALUES)).flatmap(_option),
        max_size=4,
    ),
).map(
    lambda t: [
        "upscale",
        *t[0],
        "-o",
        t[1],
        "--weights",
        t[2],
        *[tok for pair in t[3] for tok in pair],
    ]
)
#: Anything: tokens from the vocabulary in any order.
RANDOM_ARGV = st.tuples(
    st.sampled_from(_COMMANDS),
    st.lists(st.one_of(st.sampled_from(_OPTIONS), st.sampled_from(_VALUES)), max_size=9),
).map(lambda t: [t[0], *t[1]] if t[0] else t[1])
ARGV = st.one_of(UPSCALE_ARGV, RANDOM_ARGV)


def test_fuzz_command_line(weights: Path) -> None:
    @_settings(60)
    @given(argv=ARGV)
    def target(argv: list[str]) -> None:
        CALLS["command line"] += 1
        with tempfile.TemporaryDirectory() as d:
            files = _fixture_files(Path(d), weights)
            args = [a.format(**files) for a in argv]
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(args)
            stderr = err.getvalue()
            assert isinstance(code, int) and code in (0, 1, 2), (code, stderr)
            assert "Traceback" not in stderr, stderr
            if code == 1:
                errors = [line for line in stderr.splitlines() if ": error: " in line]
                assert errors, stderr

    _run(target, "command line")
