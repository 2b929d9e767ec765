"""Train the original project's 4× colour face super-resolver on any folder of face images.

As in the TensorFlow project: every image is centre-cropped to ``crop×crop`` pixels (RGB),
resized to 128×128 when ``crop`` is not 128, and downscaled to 32×32 with
:func:`subpixel.resize.imresize` (MATLAB bicubic, antialiased) then rounded to 8-bit levels;
inputs and targets are mapped to [-1, 1] to match the generator's tanh. The loss is the mean
squared error, the optimiser Adam (learning rate 2e-4, β1 = 0.5), batches of 64 drawn at
random (seeded). Every ``sample_every`` steps a grid of fixed images is written, one row per
image: input (nearest-neighbour enlarged) | output | ground truth.

A run folder holds ``samples/step-NNNNNNN.png``, ``checkpoints/step-NNNNNNN.safetensors``
(model, optimiser and sampler state; the last 3 are kept), ``log.csv`` and, at the end,
``model.safetensors`` (loadable with ``get_model("subpixel-faces", weights=path)``). All
files are written atomically; ``resume=True`` continues from the newest checkpoint.

CelebA is not shipped: point ``data`` at a local copy, e.g. its ``img_align_celeba`` folder
(178×218 aligned faces; ``crop=128`` keeps the face, as the original did).

Example:
    >>> cfg = FacesConfig(data=("img_align_celeba",), out="runs/faces", steps=20000)
    >>> cfg.lr, cfg.beta1, cfg.crop
    (0.0002, 0.5, 128)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
import re
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from subpixel import __version__
from subpixel._progress import progress_bar
from subpixel.data import find_images, load_image, quantize
from subpixel.experiments import image_grid, save_png
from subpixel.models import get_model
from subpixel.resize import imresize
from subpixel.serialization import WeightsError, load_weights, save_weights
from subpixel.train import _flatten_optimizer, _unflatten_optimizer

__all__ = ["FacesConfig", "FacesResult", "face_pair", "train_faces"]

HR_SIZE = 128
LR_SIZE = 32
_CKPT = re.compile(r"step-(\d+)\.safetensors$")


@dataclass(frozen=True)
class FacesConfig:
    """Everything that defines a faces training run.

    Attributes:
        data: image folders (searched recursively) or files.
        out: the run folder.
        crop: centre-crop size in pixels before resizing to 128×128.
        steps: number of steps (exactly one of ``steps``/``minutes``).
        minutes: train for about this long instead.
        batch_size: images per step (the original: 64).
        lr: Adam learning rate (the original: 2e-4).
        beta1: Adam β1 (the original: 0.5).
        sample_every: write a sample grid every N steps (and at the end).
        checkpoint_every: write a checkpoint every N steps (and at the end).
        samples: how many fixed images the grid shows.
        seed: seeds the initialisation and the batches.
        init: the model's initialisation, ``"icnr"`` or ``"original"``.
        device: ``"cpu"`` or ``"cuda"``.
        cache_images: keep up to this many prepared images in memory.
        resume: continue the run in ``out``.
        progress: show a progress bar.
        command: the command line, recorded in the weights' card.
    """

    data: tuple[str, ...]
    out: str
    crop: int = 128
    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    sample_every: int = 500
    checkpoint_every: int = 1000
    samples: int = 8
    seed: int = 0
    init: str = "icnr"
    device: str = "cpu"
    cache_images: int = 20000
    resume: bool = False
    progress: bool = True
    command: str = ""

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None:
            object.__setattr__(self, "steps", 10000)
        if self.steps is not None and self.minutes is not None:
            raise ValueError("give steps or minutes, not both")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes}")
        if self.crop < LR_SIZE:
            raise ValueError(f"crop must be at least {LR_SIZE} pixels, got {self.crop}")
        for name in ("batch_size", "sample_every", "checkpoint_every", "samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.data:
            raise ValueError("no training data given")

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the original."""
        keep = ("data", "crop", "batch_size", "lr", "beta1", "seed", "init", "samples")
        d = dataclasses.asdict(self)
        return json.loads(json.dumps({k: d[k] for k in keep}))


@dataclass
class FacesResult:
    """What :func:`train_faces` returns."""

    model_path: Path
    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    samples: list[Path]


def face_pair(path: str | os.PathLike[str], crop: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """One training pair from an image file: 32×32 input and 128×128 target, in [-1, 1].

    The image is loaded as RGB, centre-cropped to ``crop×crop`` (the offset is rounded down),
    resized to 128×128 with :func:`~subpixel.resize.imresize` when ``crop != 128``, rounded to
    8-bit levels, and downscaled to 32×32 with ``imresize`` (rounded to 8 bits too).

    Raises:
        ValueError: the image is smaller than ``crop`` (the message names the file).
    """
    img = load_image(path)
    h, w = img.shape[-2:]
    if h < crop or w < crop:
        raise ValueError(f"{path}: image is {w}×{h}, smaller than the {crop}×{crop} crop")
    top, left = (h - crop) // 2, (w - crop) // 2
    hr = img[:, top : top + crop, left : left + crop]
    if crop != HR_SIZE:
        hr = quantize(imresize(hr, size=(HR_SIZE, HR_SIZE)))
    lr = quantize(imresize(hr, size=(LR_SIZE, LR_SIZE)))
    return lr * 2 - 1, hr * 2 - 1


class _Faces:
    """Random batches of face pairs, with a bounded in-memory cache of prepared pairs."""

    def __init__(self, paths: Sequence[Path], crop: int, cache: int) -> None:
        self.paths = list(paths)
        self.crop = crop
        self.cache_limit = cache
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def pair(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        hit = self.cache.get(i)
        if hit is not None:
            return hit
        lr, hr = face_pair(self.paths[i], self.crop)
        if len(self.cache) < self.cache_limit:
            self.cache[i] = (lr, hr)
        return lr, hr

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self.pair(i) for i in indices]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def _checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _CKPT.search(p.name)))


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["step", "loss", "elapsed_s"])
        writer.writeheader()
        writer.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _sample_grid(
    model: torch.nn.Module, lr: torch.Tensor, hr: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """Rows of input (nearest ×4) | output | ground truth, as one [0, 1] image."""
    model.eval()
    with torch.no_grad():
        out = model(lr.to(device)).cpu()
    model.train()
    big = F.interpolate(lr, scale_factor=4, mode="nearest")
    tiles = torch.stack([big, out, hr], dim=1).reshape(-1, 3, HR_SIZE, HR_SIZE)
    return image_grid((tiles + 1) / 2, 3)


def train_faces(cfg: FacesConfig) -> FacesResult:
    """Train ``subpixel-faces`` by ``cfg`` (see the module docstring)."""
    run_dir = Path(cfg.out)
    if run_dir.exists() and not cfg.resume and _has_run(run_dir):
        raise FileExistsError(
            f"{run_dir}: already holds a training run; use --resume to continue it or choose "
            "another --out (nothing was overwritten)"
        )
    paths = find_images(cfg.data)
    device = torch.device(cfg.device)
    faces = _Faces(paths, cfg.crop, cfg.cache_images)
    fixed = list(range(min(cfg.samples, len(paths))))
    fixed_lr, fixed_hr = faces.batch(fixed)

    torch.manual_seed(cfg.seed)
    model = get_model("subpixel-faces", init=cfg.init).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    rng = random.Random(cfg.seed)
    step, elapsed_before = 0, 0.0
    rows: list[dict[str, Any]] = []
    if cfg.resume:
        step, elapsed_before, rows = _restore(run_dir, cfg, model, opt, rng)
    for sub in ("samples", "checkpoints"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)

    def checkpoint() -> None:
        _save_checkpoint(run_dir, cfg, step, model, opt, rng, elapsed())
        _write_log(run_dir / "log.csv", rows)

    start = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - start

    def done() -> bool:
        if cfg.steps is not None:
            return step >= cfg.steps
        return elapsed() >= cfg.minutes * 60  # type: ignore[operator]

    samples: list[Path] = []
    if step == 0:
        samples.append(_write_samples(run_dir, 0, model, fixed_lr, fixed_hr, device))
    bar = progress_bar(cfg.steps, desc="faces", initial=step, enabled=cfg.progress)
    model.train()
    window: list[float] = []
    while not done():
        lr_b, hr_b = faces.batch([rng.randrange(len(paths)) for _ in range(cfg.batch_size)])
        loss = F.mse_loss(model(lr_b.to(device)), hr_b.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        window.append(float(loss.detach()))
        if step % 10 == 0 or done():
            rows.append(
                {
                    "step": step,
                    "loss": f"{sum(window) / len(window):.6g}",
                    "elapsed_s": f"{elapsed():.1f}",
                }
            )
            window = []
            if bar is not None:
                bar.set_postfix(loss=rows[-1]["loss"])
        if bar is not None:
            bar.update(1)
        if step % cfg.sample_every == 0 and not done():
            samples.append(_write_samples(run_dir, step, model, fixed_lr, fixed_hr, device))
        if step % cfg.checkpoint_every == 0 and not done():
            checkpoint()
    if bar is not None:
        bar.close()
    samples.append(_write_samples(run_dir, step, model, fixed_lr, fixed_hr, device))
    checkpoint()
    seconds = elapsed()
    losses = [float(r["loss"]) for r in rows]
    model_path = run_dir / "model.safetensors"
    card = {
        "architecture": "subpixel-faces",
        "config": {"init": cfg.init},
        "scale": 4,
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": list(cfg.data),
        "images": len(paths),
        "crop": cfg.crop,
        "steps": step,
        "batch_size": cfg.batch_size,
        "seconds": round(seconds, 1),
        "final_loss": losses[-1] if losses else None,
        "command": cfg.command,
        "torch": torch.__version__,
        "subpixel": __version__,
    }
    save_weights(
        model_path,
        model.state_dict(),
        model="subpixel-faces",
        config={"init": cfg.init},
        card=card,
    )
    return FacesResult(
        model_path,
        step,
        seconds,
        losses[0] if losses else float("nan"),
        losses[-1] if losses else float("nan"),
        samples,
    )


def _has_run(run_dir: Path) -> bool:
    return (run_dir / "model.safetensors").exists() or bool(_checkpoints(run_dir))


def _write_samples(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    lr: torch.Tensor,
    hr: torch.Tensor,
    device: torch.device,
) -> Path:
    path = run_dir / "samples" / f"step-{step:07d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(path, _sample_grid(model, lr, hr, device))
    return path


def _save_checkpoint(
    run_dir: Path,
    cfg: FacesConfig,
    step: int,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    rng: random.Random,
    elapsed: float,
) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_tensors, opt_meta = _flatten_optimizer(opt)
    tensors.update(opt_tensors)
    save_weights(
        run_dir / "checkpoints" / f"step-{step:07d}.safetensors",
        tensors,
        model="subpixel-faces",
        config={"init": cfg.init},
        extra={
            "train.step": str(step),
            "train.elapsed": repr(elapsed),
            "train.optimizer": opt_meta,
            "train.rng": json.dumps(rng.getstate()),
            "train.identity": json.dumps(cfg.identity(), sort_keys=True),
        },
    )
    for _, old in _checkpoints(run_dir)[:-3]:
        old.unlink(missing_ok=True)


def _restore(
    run_dir: Path,
    cfg: FacesConfig,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    rng: random.Random,
) -> tuple[int, float, list[dict[str, Any]]]:
    """Load the newest readable checkpoint into ``model``/``opt``/``rng``."""
    for _, path in reversed(_checkpoints(run_dir)):
        try:
            tensors, meta = load_weights(path)
            extra = meta.extra
            identity = json.loads(extra["train.identity"])
            state = json.loads(extra["train.rng"])
            step, elapsed = int(extra["train.step"]), float(extra["train.elapsed"])
            optim = _unflatten_optimizer(tensors, extra["train.optimizer"])
        except (WeightsError, KeyError, ValueError) as exc:
            warnings.warn(
                f"{path}: unreadable checkpoint ({exc}); trying the previous one", stacklevel=2
            )
            continue
        if identity != cfg.identity():
            diff = sorted(k for k in cfg.identity() if cfg.identity()[k] != identity.get(k))
            raise ValueError(
                f"{path}: the run was started with different settings ({', '.join(diff)}); "
                "resume with the original command"
            )
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        opt.load_state_dict(optim)
        rng.setstate((state[0], tuple(state[1]), state[2]))
        rows: list[dict[str, Any]] = []
        log = run_dir / "log.csv"
        if log.exists():
            with log.open(newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= step]
        print(f"resuming {run_dir} at step {step}", file=sys.stderr)
        return step, elapsed, rows
    raise FileNotFoundError(f"{run_dir}: no readable checkpoint to resume from")
