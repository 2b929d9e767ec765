"""Faults from outside: a folder run killed with SIGKILL, a full disk (upscale and training).

Subprocesses are used where the fault needs a process of its own (SIGKILL, a file-size
limit); only the processes these tests start are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from subpixel.cli import main
from subpixel.upscale import Upscaler

_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread (as the subprocesses): spinning OpenMP workers only add noise."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def weights(tiny_espcn_x2: Path) -> Path:
    """A small random ESPCN ×2 (the result's quality does not matter here)."""
    return tiny_espcn_x2


def _noise(path: Path, w: int, h: int, seed: int) -> Path:
    """Random RGB pixels: incompressible, so output sizes are predictable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _noise_video(path: Path, frames: int, w: int, h: int) -> None:
    av = pytest.importorskip("av")
    rng = np.random.default_rng(0)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for _ in range(frames):
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "subpixel", *map(str, args)]


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _hidden(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*") if p.is_file())


#: ``python -c`` program: ``subpixel ARGV`` where no file can grow past LIMIT bytes (writes
#: beyond fail with EFBIG; SIGXFSZ, which would kill the process, is ignored).
_LIMITED = """
import resource, signal, sys
from subpixel.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
sys.exit(main(sys.argv[1:]))
"""


def _run_limited(argv: list[str], limit: int, tmp: Path) -> subprocess.CompletedProcess[str]:
    """``subpixel ARGV`` in a child process whose files cannot grow past ``limit`` bytes.

    The child writes no bytecode caches (CPython does not check for short writes there, so
    a size limit would leave truncated ``.pyc`` files behind for every later process) and
    keeps matplotlib's cache in ``tmp``.
    """
    env = {**_ENV, "PYTHONDONTWRITEBYTECODE": "1", "MPLCONFIGDIR": str(tmp / "mpl")}
    code = _LIMITED.format(limit=limit)
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# -- a folder run killed mid-way, then run again ---------------------------------------------


def test_killed_folder_run_completes_on_rerun(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(30):
        _noise(src / f"img{i:02d}.png", 120, 90, i)
    argv: list[str | Path] = ["upscale", src, "-o", out, "--weights", weights, "--no-progress"]
    proc = subprocess.Popen(
        _cli(*argv), env=_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 180
    try:
        while (len(_visible(out)) if out.exists() else 0) < 3:
            assert proc.poll() is None, f"exited early: {proc.stderr.read()!r}"
            assert time.monotonic() < deadline, "no output appeared"
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    finished = _visible(out)
    assert 3 <= len(finished) < 30, f"{len(finished)} outputs: the kill came too late"
    # Every visible output is complete: it decodes and equals a fresh computation.
    up = Upscaler(weights)
    for p in finished:
        with Image.open(p) as im:
            got = np.asarray(im)
        with Image.open(src / p.name) as im:
            expected = up(np.asarray(im))
        np.testing.assert_array_equal(got, expected)
    # The killed run may have left a hidden temporary file; plant more to be sure: one of the
    # killed process (stale), one of a live process (a concurrent run: must stay), and an
    # unrelated hidden file.
    todo = [f"img{i:02d}.png" for i in range(30) if not (out / f"img{i:02d}.png").exists()]
    stale = out / f".{todo[0]}.{proc.pid}.abcdefgh.part.png"
    stale.write_bytes(b"\x89PNG partial")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        live = out / f".{todo[-1]}.{sleeper.pid}.ijklmnop.part.png"
        live.write_bytes(b"in progress elsewhere")
        notes = out / ".notes"
        notes.write_text("mine")
        capsys.readouterr()
        assert main([str(a) for a in argv]) == 0
        printed = capsys.readouterr().out
        assert f"done {30 - len(finished)}, skipped {len(finished)}, failed 0" in printed
        assert [p.name for p in _visible(out)] == [f"img{i:02d}.png" for i in range(30)]
        assert _hidden(out) == sorted([live, notes])  # the stale ones are gone
    finally:
        os.kill(sleeper.pid, signal.SIGKILL)
        sleeper.wait()
    for p in _visible(out):
        with Image.open(p) as im:
            assert im.size == (240, 180)
            im.load()


# -- a full disk -------------------------------------------------------------------------------


def test_disk_full_upscale_folder(tmp_path: Path, weights: Path) -> None:
    """Outputs over the file-size limit fail with one line naming them; nothing partial stays."""
    src, out = tmp_path / "in", tmp_path / "out"
    _noise(src / "a_small.png", 24, 16, 0)  # 48×32 output: about 5 kB, fits
    _noise(src / "b_big.png", 200, 150, 1)  # 400×300 noise: ~360 kB PNG (streamed)
    with Image.open(src / "b_big.png") as im:
        im.save(src / "c_big.bmp")  # 360 kB uncompressed, encoded by Pillow
    _noise_video(src / "d_noise.mp4", 30, 64, 48)  # ×2 in H.264: about 30 kB
    argv = ["upscale", str(src), "-o", str(out), "--weights", str(weights), "--no-progress"]
    done = _run_limited([*argv, "--jobs", "2"], 20_000, tmp_path)
    assert done.returncode == 1, done.stderr
    errors = done.stderr.strip().splitlines()
    assert errors == [
        f"subpixel upscale: error: {out / 'b_big.png'}: cannot write the output (File too large)",
        f"subpixel upscale: error: {out / 'c_big.bmp'}: cannot write the output (File too large)",
        f"subpixel upscale: error: {out / 'd_noise.mp4'}: cannot write the output (File too large)",
    ]
    assert "done 1, skipped 0, failed 3" in done.stdout
    assert _visible(out) == [out / "a_small.png"] and _hidden(out) == []
    with Image.open(out / "a_small.png") as im:
        assert im.size == (48, 32)


@contextlib.contextmanager
def _small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A ``size`` tmpfs mounted at ``path`` (root only); skips the test where that fails."""
    if os.geteuid() != 0 or sys.platform != "linux":
        pytest.skip("mounting a small tmpfs needs root on Linux")
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


def test_no_space_left_on_a_real_small_disk(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ENOSPC from a 128 kB tmpfs, in-process: one line naming the output, nothing left."""
    src = _noise(tmp_path / "big.png", 200, 150, 3)
    with _small_tmpfs(tmp_path / "disk", "128k") as disk:
        for name in ("out.png", "out.tif"):
            dst = disk / name
            argv = ["upscale", str(src), "-o", str(dst), "--weights", str(weights)]
            assert main([*argv, "--no-progress"]) == 1
            err = capsys.readouterr().err.strip()
            assert err == (
                f"subpixel upscale: error: {dst}: cannot write the output (No space left on device)"
            )
            assert list(disk.iterdir()) == []
        with pytest.raises(OSError, match="No space left on device") as info:
            Upscaler(weights).upscale_file(src, disk / "api.png")
        assert info.value.errno == 28 and str(disk / "api.png") in str(info.value)
        assert list(disk.iterdir()) == []


def _train_argv(data: Path, run: Path, steps: int) -> list[str]:
    return [
        "train", "--data", str(data), "--scale", "2", "--out", str(run), "--steps", str(steps),
        "--batch-size", "8", "--patch-size", "8", "--checkpoint-every", "5", "--threads", "1",
        "--no-scale-augment", "--no-progress", "--seed", "3",
    ]  # fmt: skip


def test_disk_full_during_training_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for i in range(3):
        _noise(data / f"{i}.png", 48, 40, i)
    run = tmp_path / "run"
    assert main(_train_argv(data, run, 10)) == 0
    ckpts = sorted((run / "checkpoints").iterdir())
    assert [p.name for p in ckpts] == ["step-0000005.safetensors", "step-0000010.safetensors"]
    before = {p: p.read_bytes() for p in [*ckpts, run / "model.safetensors"]}
    biggest = max(len(b) for b in before.values())
    # Resume to step 20 with a limit below a checkpoint's size: the step-15 save fails.
    done = _run_limited([*_train_argv(data, run, 20), "--resume"], biggest // 2, tmp_path)
    assert done.returncode == 1, done.stderr
    failed = run / "checkpoints" / "step-0000015.safetensors"
    assert done.stderr.strip().splitlines()[-1] == (
        f"subpixel train: error: {failed}: cannot write (File too large)"
    )
    assert not failed.exists()
    assert {p: p.read_bytes() for p in before} == before  # nothing older was touched
    assert [p for p in run.rglob("*") if ".tmp" in p.name] == []
    # With room again, the run resumes from step 10 and completes.
    assert main([*_train_argv(data, run, 20), "--resume"]) == 0
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names[-1] == "step-0000020.safetensors"
