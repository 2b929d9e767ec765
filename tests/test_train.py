"""Training: the loss goes down, runs are repeatable, resume is bit-identical, DDP works."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from subpixel.train import TrainConfig, learning_rate, train


def make_images(folder: Path, n: int = 4, size: tuple[int, int] = (72, 60)) -> Path:
    """Smooth random RGB images: bilinear upsampling of coarse noise, saved as PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        coarse = rng.integers(0, 256, (size[1] // 6, size[0] // 6, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize(size, Image.BILINEAR).save(folder / f"img{i}.png")
    return folder


def config(tmp_path: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = {
        "data": (str(make_images(tmp_path / "data")),),
        "scale": 2,
        "out": str(tmp_path / "run"),
        "steps": 40,
        "batch_size": 8,
        "patch": 12,
        "warmup_steps": 5,
        "checkpoint_every": 5,
        "keep_checkpoints": 100,
        "augment_scales": (),
        "progress": False,
        "lr": 3e-3,
    }
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def one_thread() -> object:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def losses(run: Path) -> list[float]:
    with (run / "log.csv").open() as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh) if r.get("loss")]


def test_loss_goes_down_and_outputs_are_written(tmp_path: Path, one_thread: object) -> None:
    cfg = config(tmp_path, val=(str(tmp_path / "data"),), val_every=20, command="subpixel train x")
    result = train(cfg)
    run = Path(cfg.out)
    got = losses(run)
    assert len(got) == 4
    assert got[-1] < 0.5 * got[0]
    assert {"model.safetensors", "model.md", "log.csv", "curves.png"} <= {
        p.name for p in run.iterdir()
    }
    assert "subpixel train x" in (run / "model.md").read_text()
    assert result.metrics["data"]["images"] == 4
    assert result.steps == 40


def test_learning_rate_schedule() -> None:
    cfg = TrainConfig(data=("x",), scale=2, out="o", steps=100, lr=1.0, warmup_steps=10)
    assert learning_rate(cfg, 0, 100) == pytest.approx(0.1)
    assert learning_rate(cfg, 10, 100) == pytest.approx(1.0)
    assert learning_rate(cfg, 100, 100) == pytest.approx(cfg.min_lr_ratio)
    assert learning_rate(cfg, 55, 100) == pytest.approx(0.5 * (1 + cfg.min_lr_ratio))


def test_refuses_to_overwrite_a_run(tmp_path: Path, one_thread: object) -> None:
    cfg = config(tmp_path, steps=5)
    train(cfg)
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg)


def test_resume_is_bit_identical_and_skips_corrupt_checkpoint(
    tmp_path: Path, one_thread: object
) -> None:
    ref = config(tmp_path / "a")
    train(ref)
    expected = load_file(str(Path(ref.out) / "model.safetensors"))

    cfg = config(tmp_path / "b")
    train(cfg)
    run = Path(cfg.out)
    # Pretend the run died after step 20 while writing step 25: drop everything later,
    # leave a half-written step-25 checkpoint behind.
    for p in (run / "checkpoints").iterdir():
        if int(p.stem.split("-")[1]) > 25:
            p.unlink()
    (run / "model.safetensors").unlink()
    last = run / "checkpoints" / "step-0000025.safetensors"
    last.write_bytes(last.read_bytes()[:100])
    # ... and the temporary files of writes it was killed in (atomic_write_bytes, the plot)
    dead = 999999999  # the pid of the killed run: no such process
    stale = [run / f".log.csv.{dead}.k1ll3d00.part.csv", run / f".model.md.{dead}.x0000000.part.md"]
    stale.append(run / f".curves.png.{dead}.abcdefgh.part.png")
    stale.append(
        run / "checkpoints" / f".step-0000030.safetensors.{dead}.q1w2e3r4.part.safetensors"
    )
    for p in stale:
        p.write_bytes(b"partial")
    keep = run / f".notes.txt.{dead}.abcdefgh.part.txt"  # not the run's: left alone
    keep.write_bytes(b"mine")
    with pytest.warns(UserWarning, match="unreadable checkpoint"):
        train(TrainConfig(**{**cfg.__dict__, "resume": True}))
    got = load_file(str(run / "model.safetensors"))
    assert got.keys() == expected.keys()
    for k in expected:
        assert torch.equal(got[k], expected[k]), k
    assert not any(p.exists() for p in stale) and keep.exists()


def test_photo_degradation_resumes_bit_identically_and_is_on_the_card(
    tmp_path: Path, one_thread: object
) -> None:
    ref = config(tmp_path / "a", steps=12, degradation="photo")
    train(ref)
    expected = load_file(str(Path(ref.out) / "model.safetensors"))
    cfg = config(tmp_path / "b", steps=12, degradation="photo")
    train(cfg)
    run = Path(cfg.out)
    for p in (run / "checkpoints").iterdir():  # died after step 5
        if int(p.stem.split("-")[1]) > 5:
            p.unlink()
    (run / "model.safetensors").unlink()
    train(TrainConfig(**{**cfg.__dict__, "resume": True}))
    got = load_file(str(run / "model.safetensors"))
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert "random photo degradation" in (run / "model.md").read_text()
    clean = config(tmp_path / "c", steps=12)
    train(clean)
    other = load_file(str(Path(clean.out) / "model.safetensors"))
    assert any(not torch.equal(other[k], expected[k]) for k in expected)  # other LR inputs
    resumed_clean = TrainConfig(**{**cfg.__dict__, "resume": True, "degradation": "clean"})
    (run / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"different settings.*degradation"):
        train(resumed_clean)
    with pytest.raises(ValueError, match="unknown degradation"):
        config(tmp_path / "d", degradation="film")


def test_resume_with_other_settings_is_refused(tmp_path: Path, one_thread: object) -> None:
    cfg = config(tmp_path, steps=10)
    train(cfg)
    (Path(cfg.out) / "model.safetensors").unlink()
    changed = TrainConfig(**{**cfg.__dict__, "resume": True, "lr": 0.5})
    with pytest.raises(ValueError, match=r"different settings.*lr"):
        train(changed)


def _cli(cfg: TrainConfig) -> list[str]:
    return [
        sys.executable, "-m", "subpixel", "train", "--data", *cfg.data, "--scale",
        str(cfg.scale), "--out", cfg.out, "--steps", str(cfg.steps), "--batch-size",
        str(cfg.batch_size), "--patch-size", str(cfg.patch), "--checkpoint-every",
        str(cfg.checkpoint_every), "--threads", "1", "--no-scale-augment", "--no-progress",
        "--lr", str(cfg.lr),
    ]  # fmt: skip


def _latest_step(run: Path) -> int:
    steps = [int(p.stem.split("-")[1]) for p in (run / "checkpoints").glob("step-*.safetensors")]
    return max(steps, default=0)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path: Path) -> None:
    """Kill the training process with SIGKILL several times; resuming ends bit-identical.

    Each kill lands right after a randomly chosen checkpoint has appeared, i.e. at a random
    point of the next steps (possibly while a checkpoint is being written).
    """
    data = str(make_images(tmp_path / "data"))
    common = {"data": (data,), "steps": 150, "checkpoint_every": 5, "warmup_steps": 100}
    ref = config(tmp_path / "ref", **common)
    subprocess.run(_cli(ref), check=True, capture_output=True)
    expected = load_file(str(Path(ref.out) / "model.safetensors"))

    cfg = config(tmp_path / "killed", **common)
    run = Path(cfg.out)
    rng = random.Random(1234)
    kill_after = sorted(rng.sample(range(5, 100, 5), 3))
    kills = 0
    resume: list[str] = []
    for target in [*kill_after, None]:
        proc = subprocess.Popen(_cli(cfg) + resume, stderr=subprocess.DEVNULL)
        resume = ["--resume"]
        if target is None:
            assert proc.wait(timeout=120) == 0
            break
        deadline = time.monotonic() + 120
        while proc.poll() is None and _latest_step(run) < target:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills == 3
    got = load_file(str(run / "model.safetensors"))
    for k in expected:
        assert torch.equal(got[k], expected[k]), k
    assert not list(run.rglob("*.tmp"))


def _rank_logs(logs: Path) -> str:
    """The last lines each torchrun worker wrote, named by file (``attempt_0/<rank>/...``)."""
    parts = []
    for log in sorted(logs.rglob("*.log")):
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        parts.append(f"--- {log.relative_to(logs)}\n{tail}\n")
    return "".join(parts) + "--- torchrun\n"


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
    reason="torchrun not installed",
)
def test_torchrun_two_processes_cpu(tmp_path: Path) -> None:
    cfg = config(tmp_path, steps=6, checkpoint_every=3)
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    logs = tmp_path / "logs"  # each rank's own stdout and stderr, for the failure message
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", "--log-dir", str(logs),
           "--redirects", "3", "-m", "subpixel", *_cli(cfg)[3:]]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, _rank_logs(logs) + done.stderr[-2000:]
    printed = sorted(p.read_text() for p in logs.rglob("stdout.log"))
    assert [s.count("weights: ") for s in printed] == [0, 1]  # rank 0 alone reports
    weights = load_file(str(Path(cfg.out) / "model.safetensors"))
    assert weights["upsample.weight"].shape == (4, 32, 3, 3)
    ckpt = load_file(str(Path(cfg.out) / "checkpoints" / "step-0000006.safetensors"))
    assert {"rng.0", "rng.1"} <= set(ckpt)
    assert not torch.equal(ckpt["rng.0"], ckpt["rng.1"])


_CALLER_OWNS_THE_GROUP = """
import sys
import torch.distributed as dist
from subpixel.train import TrainConfig, train

dist.init_process_group("gloo")
cfg = TrainConfig(data=(sys.argv[1],), scale=2, out=sys.argv[2], steps=2, batch_size=4,
                  patch=12, checkpoint_every=2, augment_scales=(), progress=False)
train(cfg)
assert dist.is_initialized(), "train() ended a process group it did not start"
dist.barrier()  # the caller's group still works
dist.destroy_process_group()
"""


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
    reason="torchrun not installed",
)
def test_train_leaves_a_process_group_the_caller_started(tmp_path: Path) -> None:
    script = tmp_path / "caller.py"
    script.write_text(_CALLER_OWNS_THE_GROUP)
    data = make_images(tmp_path / "data")
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    logs = tmp_path / "logs"
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", "--log-dir", str(logs),
           "--redirects", "3", str(script), str(data), str(tmp_path / "run")]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, _rank_logs(logs) + done.stderr[-2000:]
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_degradation_options_change_the_inputs_are_on_the_card_and_bind_a_resume(
    tmp_path: Path, one_thread: object
) -> None:
    photo = config(tmp_path / "a", steps=4, degradation="photo")
    train(photo)
    jpeg_only = {"blur_prob": 0.0, "noise_prob": 0.0, "jpeg_quality": [40, 60]}
    cfg = config(tmp_path / "b", steps=4, degradation="photo", degradation_options=jpeg_only)
    train(cfg)
    a = load_file(str(Path(photo.out) / "model.safetensors"))
    b = load_file(str(Path(cfg.out) / "model.safetensors"))
    assert any(not torch.equal(a[k], b[k]) for k in a)  # other LR inputs, other weights
    card = (Path(cfg.out) / "model.md").read_text()
    assert '"jpeg_quality": [40, 60]' in card and '"blur_prob": 0.0' in card
    (Path(cfg.out) / "model.safetensors").unlink()
    changed = {**jpeg_only, "blur_prob": 0.5}
    with pytest.raises(ValueError, match=r"different settings.*degradation_options"):
        train(TrainConfig(**{**cfg.__dict__, "resume": True, "degradation_options": changed}))
    with pytest.raises(ValueError, match="unknown degradation option 'blur'"):
        config(tmp_path / "c", degradation="photo", degradation_options={"blur": 0.1})
    with pytest.raises(ValueError, match="jpeg_quality"):
        config(tmp_path / "d", degradation="photo", degradation_options={"jpeg_quality": [0, 5]})


def two_runs(tmp_path: Path) -> tuple[TrainConfig, TrainConfig]:
    """Run ``a``, then run ``b`` started from ``a``'s final weights (10 steps each)."""
    first = config(tmp_path, steps=10, out=str(tmp_path / "a"), command="subpixel train --out a")
    train(first)
    second = config(
        tmp_path,
        steps=10,
        out=str(tmp_path / "b"),
        init_from=str(tmp_path / "a" / "model.safetensors"),
        command="subpixel train --out b --init-from a/model.safetensors",
    )
    train(second)
    return first, second


def test_the_card_names_every_run_back_to_the_first(tmp_path: Path, one_thread: object) -> None:
    """A model fine-tuned from a checkpoint of a model fine-tuned from another run: its card
    lists all three runs' commands, oldest first, and says at which step each was taken."""
    first, second = two_runs(tmp_path)
    third = config(
        tmp_path,
        steps=10,
        out=str(tmp_path / "c"),
        init_from=str(tmp_path / "b" / "checkpoints" / "step-0000005.safetensors"),
        command="subpixel train --out c --init-from b/checkpoints/step-0000005.safetensors",
    )
    train(third)
    card = json.loads(load_metadata(tmp_path / "c" / "model.safetensors")["subpixel.card"])
    assert [s["commands"] for s in card["lineage"]] == [[first.command], [second.command]]
    assert "step" not in card["lineage"][0] and card["lineage"][1]["step"] == 5
    text = (tmp_path / "c" / "model.md").read_text()
    at = [text.index(c.command) for c in (first, second, third)]
    assert at == sorted(at), "commands out of order on the card"
    assert "(its step 5)" in text


def test_a_checkpoint_from_before_lineages_still_gives_its_history(
    tmp_path: Path, one_thread: object
) -> None:
    """Older checkpoints have no ``train.lineage``: the ``--init-from`` in their identity is
    followed instead (while that file exists)."""
    from safetensors.torch import save_file

    from subpixel.cards import lineage_of

    first, second = two_runs(tmp_path)
    ckpt = tmp_path / "b" / "checkpoints" / "step-0000010.safetensors"
    meta = load_metadata(ckpt)
    del meta["train.lineage"]
    old = tmp_path / "old.safetensors"
    save_file(load_file(ckpt), old, metadata=meta)
    got = lineage_of(old)
    assert [s["commands"] for s in got] == [[first.command], [second.command]]
    assert got[-1]["weights"] == str(old) and got[-1]["step"] == 10


def load_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})
