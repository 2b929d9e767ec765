"""Load: memory stays flat over a long folder run and a long video (RSS from /proc).

benchmarks/bench_load.py does the folder run at full size (500 images) and reports
throughput; these are the short versions that run with the tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from subpixel._upscale.batch import Job, plan_jobs, run_jobs
from subpixel.models import get_model
from subpixel.serialization import save_weights
from subpixel.upscale import Upscaler

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc"
)

#: Allowed RSS growth after warm-up. Measured growth (noise): 0.0-1.3 MB for the folder,
#: 0-4.2 MB for the video. The sizes are chosen so that keeping one output per file or frame
#: would show: 384×288×3 bytes is 0.33 MB, 33 MB over 100 images; 288×216×3 is 0.19 MB,
#: 47 MB over 250 frames.
_GROWTH_MB = 20.0


def rss_mb() -> float:
    """This process's resident set size in MB (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.fixture(autouse=True)
def one_thread() -> object:
    """One intra-op thread: on a shared CPU, spinning OpenMP workers only add noise."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Photo-like RGB: bilinear upsampling of coarse noise plus a little grain."""
    coarse = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = np.asarray(
        Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR), dtype=np.int16
    )
    return np.clip(img + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A paper-size ESPCN ×3 with random weights (speed and memory do not depend on them)."""
    path = tmp_path_factory.mktemp("w") / "espcn_x3.safetensors"
    save_weights(path, get_model("espcn", scale=3).state_dict(), model="espcn", config={"scale": 3})
    return path


def test_folder_of_120_images_keeps_memory_flat(tmp_path: Path, weights: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(120):
        Image.fromarray(smooth_image(rng, 96, 128)).save(src / f"{i}.png")
    up = Upscaler(weights)
    rss: list[float] = []

    def image_fn(job: Job, decoded: object, wrap: object) -> None:
        up._upscale_file(job.src, job.dst, decoded=decoded, wrap_sink=wrap)  # type: ignore[arg-type]
        rss.append(rss_mb())

    summary = run_jobs(
        plan_jobs([src], out),
        image_fn=image_fn,
        video_fn=lambda job: None,
        overwrite=False,
        threads=2,  # decoding ahead in a pool, encoding in a thread: as `--jobs 2`
        report=lambda msg: pytest.fail(msg),
        progress=False,
    )
    assert summary.done == 120 and summary.failed == 0
    growth = max(rss[20:]) - rss[20]
    print(
        f"RSS after 20 images {rss[20]:.1f} MB, max after {max(rss[20:]):.1f} MB", file=sys.stderr
    )
    assert growth < _GROWTH_MB, f"RSS grew {growth:.1f} MB over 100 images"
    assert len(list(out.glob("*.png"))) == 120


def _make_video(path: Path, frames: int, size: tuple[int, int]) -> None:
    av = pytest.importorskip("av")
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(frames):
            img = np.stack([(xx + i) % 256, (yy * 3 + i) % 256, (xx + yy + 2 * i) % 256], -1)
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def test_video_of_300_frames_keeps_memory_bounded(tmp_path: Path, weights: Path) -> None:
    src, dst = tmp_path / "clip.mp4", tmp_path / "clip_x3.mp4"
    _make_video(src, 300, (96, 72))
    up = Upscaler(weights)
    rss: list[tuple[int, float]] = []
    result = up.upscale_video(
        src, dst, progress=False, on_frames=lambda n: rss.append((n, rss_mb()))
    )
    assert result.frames == 300
    after_warmup = [mb for n, mb in rss if n >= 48]
    growth = max(after_warmup) - after_warmup[0]
    print(f"RSS after 48 frames {after_warmup[0]:.1f} MB, max {max(after_warmup):.1f} MB")
    assert growth < _GROWTH_MB, f"RSS grew {growth:.1f} MB over 250 frames"
    import av

    with av.open(str(dst)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (288, 216)
        assert sum(1 for _ in container.decode(video=0)) == 300
