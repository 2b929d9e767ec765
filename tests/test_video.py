"""`subpixel upscale clip.mp4`: frames, timestamps, frame rate and audio survive (PyAV)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from subpixel.cli import main
from subpixel.models import get_model
from subpixel.serialization import save_weights
from subpixel.upscale import Upscaler

av = pytest.importorskip("av")

FRAMES, W, H, FPS = 12, 32, 24, 12


def _frame(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    r = (xx * 8 + i * 10) % 256
    g = (yy * 10 + i * 5) % 256
    b = ((xx + yy) * 4) % 256
    return np.stack([r, g, b], -1).astype(np.uint8)


def _make_clip(path: Path, *, audio: bool = True, vfr: bool = False) -> list[int]:
    """A 12-frame 32×24 H.264 clip (smooth colour ramps) with a 1 s AAC tone."""
    pts = []
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.time_base = v.codec_context.time_base = Fraction(1, 1200)
        a = c.add_stream("aac", rate=8000) if audio else None
        for i in range(FRAMES):
            f = av.VideoFrame.from_ndarray(_frame(i), format="rgb24")
            f.pts = i * 100 + (37 * (i % 3) if vfr else 0)
            f.time_base = Fraction(1, 1200)
            pts.append(f.pts)
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        if a is not None:
            t = np.arange(8000) / 8000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for k in range(0, 8000 - 1024, 1024):
                af = av.AudioFrame.from_ndarray(tone[:, k : k + 1024], format="fltp", layout="mono")
                af.sample_rate, af.pts = 8000, k
                for p in a.encode(af):
                    c.mux(p)
            for p in a.encode(None):
                c.mux(p)
    return pts


def _probe(path: Path) -> dict[str, object]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        info: dict[str, object] = {
            "size": (v.codec_context.width, v.codec_context.height),
            "rate": v.average_rate,
            "times": [round(float(f.pts * f.time_base), 4) for f in frames],
            "first": frames[0].to_ndarray(format="rgb24"),
            "last": frames[-1].to_ndarray(format="rgb24"),
        }
    with av.open(str(path)) as c:
        info["audio"] = [(s.codec_context.name, s.rate) for s in c.streams.audio]
        if c.streams.audio:
            info["audio_packets"] = sum(1 for p in c.demux(c.streams.audio[0]) if p.size)
    return info


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    m = get_model("espcn", scale=2)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.05)
        m.upsample.bias.fill_(0.5)
    path = tmp_path / "w2.safetensors"
    save_weights(path, m.state_dict(), model="espcn", config={"scale": 2})
    return path


@pytest.mark.parametrize("vfr", [False, True])
def test_video_keeps_frames_timestamps_audio(tmp_path: Path, weights: Path, vfr: bool) -> None:
    src = tmp_path / "clip.mp4"
    _make_clip(src, vfr=vfr)
    before = src.read_bytes()
    dst = tmp_path / "big.mp4"
    argv = [
        "upscale",
        str(src),
        "-o",
        str(dst),
        "--weights",
        str(weights),
        "--no-progress",
        "--batch",
        "5",
    ]
    assert main(argv) == 0
    assert src.read_bytes() == before
    a, b = _probe(src), _probe(dst)
    assert b["size"] == (2 * W, 2 * H)
    assert len(b["times"]) == len(a["times"]) == FRAMES  # type: ignore[arg-type]
    assert b["times"] == a["times"]
    if not vfr:  # (an average rate of irregular timestamps depends on the last duration)
        assert b["rate"] == a["rate"] == FPS
    assert b["audio"] == a["audio"] == [("aac", 8000)]
    assert b["audio_packets"] == a["audio_packets"]
    # Content: the decoded output is the upscaled decoded input, up to H.264 loss (luma:
    # the 4:2:0 chroma of the noisy random model output is lossier).
    up = Upscaler(weights)
    luma = np.array([0.299, 0.587, 0.114])
    refs = {key: up(a[key]) @ luma for key in ("first", "last")}  # type: ignore[arg-type]
    for key, other in (("first", "last"), ("last", "first")):
        err = np.abs(b[key] @ luma - refs[key]).mean()  # type: ignore[operator]
        assert err < 5 and err < 0.3 * np.abs(b[key] @ luma - refs[other]).mean()  # type: ignore[operator]


def test_video_without_audio_odd_size_and_webm(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "silent.mp4"
    _make_clip(src, audio=False)
    up = Upscaler(weights)
    result = up.upscale_video(src, tmp_path / "out.webm", batch=3, progress=False)
    assert result.frames == FRAMES and result.audio_streams == 0
    info = _probe(tmp_path / "out.webm")
    assert info["size"] == (64, 48) and len(info["times"]) == FRAMES  # type: ignore[arg-type]
    # ×3 of 32×24 is even; force an odd output with a ×3 model on a cropped clip.
    odd = tmp_path / "odd.mkv"
    with av.open(str(odd), "w") as c:
        v = c.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = 30, 22, "yuv420p"
        for i in range(3):
            for p in v.encode(
                av.VideoFrame.from_ndarray(_frame(i)[:22, :30].copy(), format="rgb24")
            ):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    w3 = tmp_path / "w3.safetensors"
    save_weights(w3, get_model("espcn", scale=3).state_dict(), model="espcn", config={"scale": 3})
    r3 = Upscaler(w3).upscale_video(odd, tmp_path / "odd_x3.mp4", progress=False)
    assert r3.frames == 3 and _probe(tmp_path / "odd_x3.mp4")["size"] == (90, 66)


def test_truncated_video_leaves_nothing(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "clip.mp4"
    _make_clip(src)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    code = main(
        [
            "upscale",
            str(cut),
            "-o",
            str(tmp_path / "o.mp4"),
            "--weights",
            str(weights),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "cut.mp4" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "cut.mp4", "w2.safetensors"]


def test_folder_with_images_and_videos(tmp_path: Path, weights: Path) -> None:
    from PIL import Image

    src = tmp_path / "media"
    src.mkdir()
    _make_clip(src / "clip.mp4", audio=False)
    Image.fromarray(_frame(0)).save(src / "still.png")
    out = tmp_path / "out"
    assert (
        main(["upscale", str(src), "-o", str(out), "--weights", str(weights), "--no-progress"]) == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4", "still.png"]
    assert len(_probe(out / "clip.mp4")["times"]) == FRAMES  # type: ignore[arg-type]


def test_upscale_video_refuses_its_input_and_existing_outputs(
    tmp_path: Path, weights: Path
) -> None:
    src = tmp_path / "clip.mp4"
    _make_clip(src, audio=False)
    data = src.read_bytes()
    up = Upscaler(weights)
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="overwrite the input"):
            up.upscale_video(src, src, overwrite=overwrite)
    (tmp_path / "out.mp4").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        up.upscale_video(src, tmp_path / "out.mp4")
    assert src.read_bytes() == data and (tmp_path / "out.mp4").read_bytes() == b"old"
