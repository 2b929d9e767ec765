"""Issue 9 for `subpixel upscale`: every bad input gives one line naming the file and the
problem, a non-zero exit status, no output (not even a partial one) and an untouched input;
odd but valid images (CMYK, palette, LA, 16-bit, 1-bit, 1×1) just work."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from subpixel.cli import main
from subpixel.models import get_model
from subpixel.serialization import WeightsError, save_weights
from subpixel.upscale import ImageError, upscale, upscale_file


@pytest.fixture
def w2(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    m = get_model("espcn", scale=2)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.08)
    path = tmp_path / "w2.safetensors"
    save_weights(path, m.state_dict(), model="espcn", config={"scale": 2})
    return path


def _rgb(h: int = 12, w: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png(path: Path, arr: np.ndarray | None = None) -> Path:
    Image.fromarray(_rgb() if arr is None else arr).save(path)
    return path


def _fails(
    capsys: pytest.CaptureFixture[str],
    argv: list[str | os.PathLike[str]],
    *,
    names: str,
    says: str,
    out: Path,
    code: int = 1,
) -> None:
    """Run the CLI and check the issue-9 contract for a failure."""
    inputs = [Path(a) for a in argv if Path(a).is_file()]
    before = {p: p.read_bytes() for p in inputs}
    assert main(["upscale", *map(str, argv), "-o", str(out), "--no-progress"]) == code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert names in lines[0] and says in lines[0], lines[0]
    assert "Traceback" not in err
    assert not out.exists() or (out.is_dir() and not any(out.rglob("*")))
    leftovers = [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert not leftovers
    for p, data in before.items():
        assert p.read_bytes() == data


# -- unreadable / corrupt images ------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "empty.png"
    src.write_bytes(b"")
    _fails(capsys, [src, "--weights", w2], names="empty.png", says="empty", out=tmp_path / "o.png")
    with pytest.raises(ImageError, match="empty"):
        upscale_file(src, tmp_path / "o.png", weights=w2)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated(tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    buf = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(buf, format=fmt)
    src = tmp_path / f"cut.{fmt.lower()}"
    src.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    _fails(capsys, [src, "--weights", w2], names=src.name, says="truncated", out=tmp_path / "o.png")


def test_text_file_named_png(tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "notes.png"
    src.write_text("these are not pixels\n" * 10)
    _fails(
        capsys, [src, "--weights", w2], names="notes.png", says="text file", out=tmp_path / "o.png"
    )


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("scene.exr", b"\x76\x2f\x31\x01\x02\x00\x00\x00" + bytes(range(256)) * 4),  # OpenEXR
        ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>'),
    ],
)
def test_format_pillow_cannot_read(
    tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes
) -> None:
    src = tmp_path / name
    src.write_bytes(data)
    _fails(capsys, [src, "--weights", w2], names=name, says="cannot read", out=tmp_path / "o.png")


# -- odd but valid images -------------------------------------------------------------------


def _up(tmp_path: Path, w2: Path, src: Path, ext: str = ".png") -> Image.Image:
    dst = tmp_path / f"out_{src.stem}{ext}"
    assert main(["upscale", str(src), "-o", str(dst), "--weights", str(w2), "--no-progress"]) == 0
    return Image.open(dst)


def test_cmyk_jpeg(tmp_path: Path, w2: Path) -> None:
    src = tmp_path / "cmyk.jpg"
    Image.fromarray(_rgb()).convert("CMYK").save(src, quality=95)
    with Image.open(src) as im:
        assert im.mode == "CMYK"
        rgb = np.asarray(im.convert("RGB"))
    out = _up(tmp_path, w2, src)
    assert out.mode == "RGB" and np.array_equal(np.asarray(out), upscale(rgb, weights=w2))


def test_palette_with_and_without_transparency(tmp_path: Path, w2: Path) -> None:
    p = Image.fromarray(_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    p.save(tmp_path / "pal.png")
    assert _up(tmp_path, w2, tmp_path / "pal.png").mode == "RGB"
    p.info["transparency"] = 0
    p.save(tmp_path / "palt.png", transparency=0)
    out = _up(tmp_path, w2, tmp_path / "palt.png")
    with Image.open(tmp_path / "palt.png") as im:
        rgba = np.asarray(im.convert("RGBA"))
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out), upscale(rgba, weights=w2))


def test_la_and_1bit_and_16bit(tmp_path: Path, w2: Path) -> None:
    Image.fromarray(_rgb()).convert("LA").save(tmp_path / "la.png")
    assert _up(tmp_path, w2, tmp_path / "la.png").mode == "LA"
    Image.fromarray(_rgb()).convert("1").save(tmp_path / "bw.png")
    out = _up(tmp_path, w2, tmp_path / "bw.png")
    with Image.open(tmp_path / "bw.png") as im:
        grey = np.asarray(im.convert("L"))
    assert out.mode == "L" and np.array_equal(np.asarray(out), upscale(grey, weights=w2))
    g16 = (np.random.default_rng(0).random((12, 16)) * 65535).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out16 = _up(tmp_path, w2, tmp_path / "g16.png")
    assert out16.mode == "I;16" and np.array_equal(np.asarray(out16), upscale(g16, weights=w2))


@pytest.mark.parametrize("size", [(1, 1), (2, 1), (1, 2)])
def test_tiny_images(tmp_path: Path, w2: Path, size: tuple[int, int]) -> None:
    _png(tmp_path / "t.png", _rgb(size[1], size[0]))
    assert _up(tmp_path, w2, tmp_path / "t.png").size == (size[0] * 2, size[1] * 2)


# -- limits ---------------------------------------------------------------------------------


def _fake_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width × height`` (its data is a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
    return path


def test_decompression_bomb(tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bomb = _fake_png(tmp_path / "bomb.png", 20000, 20000)
    _fails(
        capsys, [bomb, "--weights", w2], names="bomb.png", says="89478485", out=tmp_path / "o.png"
    )
    small = _png(tmp_path / "small.png")  # 16×12 = 192 pixels
    _fails(
        capsys,
        [small, "--weights", w2, "--max-pixels", "100"],
        names="small.png",
        says="limit of 100 pixels",
        out=tmp_path / "o.png",
    )
    assert (
        main(
            [
                "upscale",
                str(small),
                "-o",
                str(tmp_path / "ok.png"),
                "--weights",
                str(w2),
                "--max-pixels",
                "192",
                "--no-progress",
            ]
        )
        == 0
    )
    with pytest.raises(ImageError, match="decompression-bomb limit of 100"):
        upscale_file(small, tmp_path / "x.png", weights=w2, max_pixels=100)


def test_empty_folder(tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "nothing"
    folder.mkdir()
    (folder / "readme.txt").write_text("no images here")
    _fails(
        capsys, [folder, "--weights", w2], names="nothing", says="no images", out=tmp_path / "out"
    )


def test_missing_input(tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(
        capsys,
        [tmp_path / "ghost.png", "--weights", w2],
        names="ghost.png",
        says="no such",
        out=tmp_path / "o.png",
    )


def test_unreadable_input(tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _png(tmp_path / "secret.png")
    src.chmod(0)
    try:
        if os.access(src, os.R_OK):
            pytest.skip("running as root: chmod 000 does not prevent reading")
        _fails(
            capsys,
            [src, "--weights", w2],
            names="secret.png",
            says="ermission",
            out=tmp_path / "o.png",
        )
    finally:
        src.chmod(0o644)


def test_output_under_a_regular_file(
    tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _png(tmp_path / "a.png")
    blocker = tmp_path / "file.txt"
    blocker.write_text("I am a file")
    out = blocker / "out.png"
    assert main(["upscale", str(src), "-o", str(out), "--weights", str(w2), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "out.png" in err and "cannot write" in err
    assert blocker.read_text() == "I am a file"


def test_unwritable_output_folder(
    tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _png(tmp_path / "a.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable")
        _fails(
            capsys,
            [src, "--weights", w2],
            names="locked",
            says="cannot write",
            out=locked / "o.png",
        )
    finally:
        locked.chmod(0o755)


def test_output_equal_to_input(
    tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _png(tmp_path / "a.png")
    data = src.read_bytes()
    link = tmp_path / "link.png"
    link.symlink_to(src)
    monkeypatch.chdir(tmp_path)
    for out in (src, link, Path("a.png"), Path("sub/../a.png")):
        for overwrite in (["--overwrite"], []):  # refused either way, not "skipped"
            (tmp_path / "sub").mkdir(exist_ok=True)
            argv = ["upscale", str(src), "-o", str(out), "--weights", str(w2), "--no-progress"]
            code = main([*argv, *overwrite])
            captured = capsys.readouterr()
            err = captured.err
            assert code == 1 and "overwrite the input" in err
            assert len(err.strip().splitlines()) == 1 and "skipped" not in captured.out
            assert src.read_bytes() == data
    # a folder run whose output folder is the input folder
    code = main(
        [
            "upscale",
            str(tmp_path / "sub"),
            str(src),
            "-o",
            str(tmp_path),
            "--weights",
            str(w2),
            "--overwrite",
            "--no-progress",
        ]
    )
    assert code == 1 and "overwrite an input" in capsys.readouterr().err
    assert src.read_bytes() == data


# -- weights --------------------------------------------------------------------------------


def test_unknown_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _png(tmp_path / "a.png")
    assert main(["upscale", str(src), "-o", str(tmp_path / "o.png"), "--scale", "5"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(WeightsError, match="not ×5"):
        upscale(_rgb(), scale=5)  # no bundled weights for ×5


def test_weights_of_another_scale_or_model(
    tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _png(tmp_path / "a.png")
    _fails(
        capsys,
        [src, "--weights", w2, "--scale", "3"],
        names="w2.safetensors",
        says="scale=2",
        out=tmp_path / "o.png",
    )
    other = tmp_path / "srcnn.safetensors"
    save_weights(other, {"conv1.weight": torch.zeros(64, 1, 9, 9)}, model="srcnn", config={})
    _fails(capsys, [src, "--weights", other], names="", says="srcnn", out=tmp_path / "o.png")
    lying = tmp_path / "lying.safetensors"
    big = get_model("espcn", scale=2, features=(16, 8))
    save_weights(lying, big.state_dict(), model="espcn", config={"scale": 2})
    _fails(
        capsys,
        [src, "--weights", lying],
        names="lying.safetensors",
        says="do not fit",
        out=tmp_path / "o.png",
    )


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_corrupt_safetensors(
    tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    bad = tmp_path / "bad.safetensors"
    data = w2.read_bytes()
    bad.write_bytes(
        {"truncated": data[: len(data) // 2], "garbage": os.urandom(500), "empty": b""}[how]
    )
    src = _png(tmp_path / "a.png")
    _fails(
        capsys, [src, "--weights", bad], names="bad.safetensors", says="", out=tmp_path / "o.png"
    )


class _Evil:
    """Unpickling this creates a file: the proof that something was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [0, 2, 5])
@pytest.mark.parametrize("name", ["model.pt", "model.pth", "model.safetensors"])
def test_pickle_weights_are_never_loaded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], protocol: int, name: str
) -> None:
    marker = tmp_path / "PWNED"
    evil = tmp_path / name
    evil.write_bytes(pickle.dumps(_Evil(str(marker)), protocol=protocol))
    assert not marker.exists()
    src = _png(tmp_path / "a.png")
    _fails(capsys, [src, "--weights", evil], names=name, says="", out=tmp_path / "o.png")
    assert not marker.exists()
    with pytest.raises(WeightsError):
        upscale(_rgb(), weights=evil)
    assert not marker.exists()


def test_torch_save_archive_refused(
    tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pt = tmp_path / "ckpt.pth"
    torch.save(get_model("espcn", scale=2).state_dict(), pt)
    src = _png(tmp_path / "a.png")
    _fails(capsys, [src, "--weights", pt], names="ckpt.pth", says="pickle", out=tmp_path / "o.png")


# -- video ----------------------------------------------------------------------------------


def test_corrupt_and_audio_only_video(
    tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    av = pytest.importorskip("av")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(7).bytes(4096))  # fixed: some bytes probe as subtitles
    _fails(
        capsys,
        [junk, "--weights", w2],
        names="junk.mp4",
        says="not a readable video",
        out=tmp_path / "o.mp4",
    )
    audio = tmp_path / "song.mp4"
    with av.open(str(audio), "w") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 8000
        for i in range(4):
            frame.pts = i * 1024
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    _fails(
        capsys,
        [audio, "--weights", w2],
        names="song.mp4",
        says="no video stream",
        out=tmp_path / "o.mp4",
    )
