"""`subpixel upscale`: outputs, folders, skipping, failures, threads and the comparison."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from subpixel.cli import main
from subpixel.models import get_model
from subpixel.serialization import save_weights
from subpixel.upscale import upscale


def _weights(path: Path, scale: int = 2) -> Path:
    torch.manual_seed(scale)
    m = get_model("espcn", scale=scale)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.08)
        m.upsample.bias.fill_(0.5)
    save_weights(path, m.state_dict(), model="espcn", config={"scale": scale})
    return path


def _image(path: Path, size: tuple[int, int] = (23, 17), seed: int = 0, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).convert(mode).save(path)
    return path


@pytest.fixture
def w2(tmp_path: Path) -> Path:
    return _weights(tmp_path / "w2.safetensors")


def _run(*argv: str | os.PathLike[str]) -> int:
    return main(["upscale", *map(str, argv), "--no-progress"])


def test_single_file(tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _image(tmp_path / "a.png")
    assert _run(src, "-o", tmp_path / "out.png", "--weights", w2) == 0
    with Image.open(tmp_path / "out.png") as im, Image.open(src) as lr:
        assert im.size == (46, 34)
        assert np.array_equal(np.asarray(im), upscale(np.asarray(lr), weights=w2))
    assert "wrote" in capsys.readouterr().out


def test_help_lists_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["upscale", "--help"]) == 0
    text = capsys.readouterr().out
    assert "subpixel upscale photos/ -o photos_x3/" in text and "--max-pixels" in text


def test_scale_defaults_and_mismatch(
    tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _image(tmp_path / "a.png")
    assert _run(src, "-o", tmp_path / "b.png", "--weights", w2) == 0  # ×2 from the file
    assert Image.open(tmp_path / "b.png").size == (46, 34)
    assert _run(src, "-o", tmp_path / "c.png", "--weights", w2, "--scale", "3") == 1
    err = capsys.readouterr().err
    assert "w2.safetensors" in err and "scale=2" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c.png").exists()


def test_folder_mirrors_tree_and_skips(
    tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    _image(src / "a.png")
    _image(src / "sub" / "b.jpg", seed=1)
    _image(src / "sub" / "deep" / "c.bmp", seed=2, mode="L")
    (src / "notes.txt").write_text("not an image")
    (src / ".hidden.png").write_bytes(b"")
    out = tmp_path / "out"
    assert _run(src, "-o", out, "--weights", w2) == 0
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert made == ["a.png", "sub/b.jpg", "sub/deep/c.bmp"]
    assert Image.open(out / "sub" / "deep" / "c.bmp").mode == "L"
    assert "done 3, skipped 0, failed 0" in capsys.readouterr().out
    before = (out / "a.png").stat().st_mtime_ns
    assert _run(src, "-o", out, "--weights", w2) == 0
    assert "done 0, skipped 3, failed 0" in capsys.readouterr().out
    assert (out / "a.png").stat().st_mtime_ns == before
    assert _run(src, "-o", out, "--weights", w2, "--overwrite") == 0
    assert "done 3, skipped 0" in capsys.readouterr().out


def test_output_inside_input_folder_is_not_rescanned(tmp_path: Path, w2: Path) -> None:
    src = tmp_path / "photos"
    _image(src / "a.png")
    assert _run(src, "-o", src / "big", "--weights", w2) == 0
    assert _run(src, "-o", src / "big", "--weights", w2) == 0
    assert sorted(p.name for p in (src / "big").iterdir()) == ["a.png"]


def test_failure_is_reported_and_run_goes_on(
    tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    _image(src / "a.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    _image(src / "z.png", seed=3)
    code = _run(src, "-o", tmp_path / "out", "--weights", w2)
    captured = capsys.readouterr()
    assert code == 1
    lines = [line for line in captured.err.splitlines() if "error" in line]
    assert len(lines) == 1 and "broken.png" in lines[0] and "Traceback" not in captured.err
    assert "done 2, skipped 0, failed 1" in captured.out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "z.png"]


def test_jobs_give_identical_outputs(tmp_path: Path, w2: Path) -> None:
    src = tmp_path / "in"
    for i in range(4):
        _image(src / f"{i}.png", size=(30 + i, 20), seed=i)
    assert _run(src, "-o", tmp_path / "one", "--weights", w2, "--tile", "8") == 0
    assert _run(src, "-o", tmp_path / "two", "--weights", w2, "--tile", "8", "--jobs", "3") == 0
    for i in range(4):
        a = (tmp_path / "one" / f"{i}.png").read_bytes()
        assert a == (tmp_path / "two" / f"{i}.png").read_bytes()


def test_several_inputs_need_a_folder(
    tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _image(tmp_path / "a.png"), _image(tmp_path / "b.png", seed=1)
    assert _run(a, b, "-o", tmp_path / "x.png", "--weights", w2) == 1
    assert "folder" in capsys.readouterr().err
    assert _run(a, b, "-o", tmp_path / "outdir", "--weights", w2) == 0
    assert sorted(p.name for p in (tmp_path / "outdir").iterdir()) == ["a.png", "b.png"]


def test_compare_with_reference(tmp_path: Path, w2: Path) -> None:
    hr = _image(tmp_path / "hr.png", size=(40, 30))
    with Image.open(hr) as im:
        im.resize((20, 15), Image.Resampling.BICUBIC).save(tmp_path / "lr.png")
    assert (
        _run(
            tmp_path / "lr.png",
            "-o",
            tmp_path / "sr.png",
            "--weights",
            w2,
            "--compare",
            "--reference",
            hr,
        )
        == 0
    )
    with Image.open(tmp_path / "sr.compare.png") as fig:
        assert fig.mode == "RGB" and fig.width == 4 * 40 + 5 * 4
    code = _run(tmp_path / "lr.png", "-o", tmp_path / "sr2.png", "--weights", w2, "--reference", hr)
    assert code == 1  # --reference without --compare


def test_format_conversion_by_extension(tmp_path: Path, w2: Path) -> None:
    src = _image(tmp_path / "a.bmp")
    for ext, fmt in ((".jpg", "JPEG"), (".webp", "WEBP"), (".tiff", "TIFF")):
        assert _run(src, "-o", tmp_path / f"b{ext}", "--weights", w2) == 0
        with Image.open(tmp_path / f"b{ext}") as im:
            assert im.format == fmt and im.size == (46, 34)


def test_debug_shows_traceback(tmp_path: Path, w2: Path) -> None:
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        main(
            [
                "--debug",
                "upscale",
                str(tmp_path / "e.png"),
                "-o",
                str(tmp_path / "o.png"),
                "--weights",
                str(w2),
                "--no-progress",
            ]
        )


def test_reference_folder_mirrors_inputs(tmp_path: Path, w2: Path) -> None:
    for name in ("a", "b"):
        hr = _image(tmp_path / "hr" / f"{name}.png", size=(40, 30), seed=ord(name))
        with Image.open(hr) as im:
            (tmp_path / "lr").mkdir(exist_ok=True)
            im.resize((20, 15), Image.Resampling.BICUBIC).save(tmp_path / "lr" / f"{name}.png")
    argv = [tmp_path / "lr", "-o", tmp_path / "sr", "--weights", w2, "--compare"]
    assert _run(*argv, "--reference", tmp_path / "hr") == 0
    for name in ("a", "b"):
        with Image.open(tmp_path / "sr" / f"{name}.compare.png") as fig:
            assert fig.width == 4 * 40 + 5 * 4  # the original is the fourth panel


def test_verbose_names_the_backend_and_why(
    tmp_path: Path, w2: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _image(tmp_path / "a.png")
    assert _run(src, "-o", tmp_path / "out.png", "--weights", w2, "--verbose") == 0
    out = capsys.readouterr().out
    assert "backend: cpu-" in out and "colour: fused uint8 RGB kernel" in out
    assert "declined: cpu-int8: precision='auto'" in out
    argv = ("--weights", w2, "--verbose", "--precision", "int8")
    assert _run(src, "-o", tmp_path / "o8.png", *argv) == 0
    out = capsys.readouterr().out  # int8 where it is not measured slower than fp32 (AMX ×2)
    assert "backend: cpu-int8" in out or "declined: cpu-int8: measured slower" in out
