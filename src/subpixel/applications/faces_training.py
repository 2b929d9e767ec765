"""Train a 4× colour face super-resolver (32×32 → 128×128 RGB) on a folder of face images.

**The original project's recipe** (the defaults, ``model="subpixel-faces"``): every image is
centre-cropped to ``crop×crop`` pixels (RGB), resized to 128×128 when ``crop`` is not 128,
and downscaled to 32×32 with :func:`subpixel.resize.imresize` (MATLAB bicubic, antialiased),
both rounded to 8-bit levels; inputs and targets are mapped to [-1, 1] to match the
generator's tanh. The loss is the mean squared error, the optimiser Adam (learning rate 2e-4,
β1 = 0.5, constant), batches of 64 whole crops drawn at random (seeded), no augmentation.

**The real-time family** (``model="repsr"``, or ``"espcn"``): the same whole 32×32 → 128×128
centre crops in [0, 1] (the face prior is positional, so no patches), RGB in and out
(``channels=3``, ×4, options from ``model_options``). Their defaults differ where the
original's would be a poor choice: Adam with β1 = 0.9, learning rate 1e-3 with a linear
warm-up of ``warmup_steps`` and a cosine decay to ``lr·min_lr_ratio`` over ``steps``, and
augmentation on (:func:`augmented_pair`: horizontal flips, half the crops zoomed out by up to
15 % and shifted by up to 6 pixels, small brightness/contrast/colour gains). Give ``loss="l1"``,
``finetune_mse_fraction=0.2`` and ``ema=0.999`` for L1 then MSE fine-tuning and an
exponential moving average of the weights (what is validated and saved). A RepSR is saved
collapsed, as the plain ``espcn`` it equals, so ``subpixel.upscale(img, weights=path)`` and
``get_model("espcn", weights=path)`` load it (RGB, ×4).

**Person split** (``split="lfw"``, :mod:`.faces_split`): only the training people
of ``data`` are trained on; every ``val_every`` steps the model is scored on the held-out
people (mean RGB and Y PSNR of 8-bit outputs, 4 pixels shaved: ``val_psnr_rgb`` and
``val_psnr_y`` in ``log.csv``), the sample grids show held-out people, and at the end the
model card gets the full evaluation of :func:`.faces_eval.evaluate_faces` (bicubic,
the DEFAULT general ×4 model and this model, PSNR/SSIM in RGB and Y).

A run folder holds ``samples/step-NNNNNNN.png`` (one row per fixed image: input
nearest-neighbour enlarged | output | ground truth), ``checkpoints/step-NNNNNNN.safetensors``
(model, EMA, optimiser and sampler state; the last 3 are kept), ``log.csv`` and, at the end,
``model.safetensors`` (with the card in its metadata) and ``model.md``. All files are written
atomically; ``resume=True`` continues from the newest checkpoint (same batches, same
schedule) and refuses a run started with other settings.

CelebA is not shipped: point ``data`` at a local copy, e.g. its ``img_align_celeba`` folder
(178×218 aligned faces; ``crop=128`` keeps the face, as the original did).

Example:
    >>> cfg = FacesConfig(data=("img_align_celeba",), out="runs/faces", steps=20000)
    >>> cfg.lr, cfg.beta1, cfg.crop, cfg.schedule, cfg.augment
    (0.0002, 0.5, 128, 'constant', False)
    >>> fast = FacesConfig(data=("lfw",), out="runs/f", steps=6000, model="repsr",
    ...                    model_options={"features": 32, "blocks": 8}, split="lfw")
    >>> fast.lr, fast.beta1, fast.schedule, fast.augment
    (0.001, 0.9, 'cosine', True)
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import math
import os
import platform
import random
import re
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from subpixel import __version__
from subpixel._files import atomic_write_bytes
from subpixel._progress import progress_bar
from subpixel.applications.experiments import image_grid, save_png
from subpixel.applications.faces_split import SPLIT_RULES, describe_rule, face_split, person_of
from subpixel.cards import command_lines, trained_as_lines
from subpixel.color import rgb_to_y
from subpixel.data import find_images, load_image, quantize
from subpixel.models import get_model
from subpixel.resize import imresize
from subpixel.serialization import WeightsError, load_weights, save_weights
from subpixel.train import _flatten_optimizer, _unflatten_optimizer, update_ema

__all__ = [
    "FACE_MODELS",
    "FacesConfig",
    "FacesResult",
    "augmented_pair",
    "face_crop",
    "face_forward",
    "face_pair",
    "faces_card_markdown",
    "train_faces",
]

HR_SIZE = 128
LR_SIZE = 32
SCALE = 4
#: Models the faces trainer builds (``subpixel-faces``: the original; the others: RGB ×4).
FACE_MODELS = ("subpixel-faces", "repsr", "espcn")
SCHEDULES = ("constant", "cosine")
#: Augmentation: half the crops are zoomed out by up to this factor...
MAX_ZOOM_OUT = 1.15
#: ... and shifted by up to this many pixels (at 128×128); the rest are the exact centre crop.
MAX_SHIFT = 6
_CKPT = re.compile(r"step-(\d+)\.safetensors$")
_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}
#: Per-model defaults of the fields left ``None``.
_DEFAULTS: dict[bool, dict[str, Any]] = {
    True: {"lr": 2e-4, "beta1": 0.5, "schedule": "constant", "augment": False},  # original
    False: {"lr": 1e-3, "beta1": 0.9, "schedule": "cosine", "augment": True},
}
#: Settings added after the first checkpoints, with the original recipe's values: recorded
#: in a checkpoint's identity only when they differ, so older runs still resume.
_LATER_IDENTITY: dict[str, Any] = {
    "model": "subpixel-faces",
    "model_options": {},
    "split": None,
    "schedule": "constant",
    "warmup_steps": 100,
    "min_lr_ratio": 0.01,
    "loss": "mse",
    "finetune_mse_fraction": 0.0,
    "ema": 0.0,
    "augment": False,
}


@dataclass(frozen=True)
class FacesConfig:
    """Everything that defines a faces training run.

    Attributes:
        data: image folders (searched recursively) or files.
        out: the run folder.
        crop: centre-crop size in pixels before resizing to 128×128.
        steps: number of steps (exactly one of ``steps``/``minutes``; default 10,000).
        minutes: train for about this long instead (constant schedule without fine-tuning).
        batch_size: images per step (the original: 64).
        lr: Adam learning rate (default: 2e-4 for ``subpixel-faces``, the original; 1e-3).
        beta1: Adam β1 (default: 0.5 for ``subpixel-faces``, the original; 0.9).
        sample_every: write a sample grid every N steps (and at the end).
        checkpoint_every: write a checkpoint every N steps (and at the end).
        samples: how many fixed images the grid shows.
        seed: seeds the initialisation, the batches and the augmentation.
        init: ``subpixel-faces``'s initialisation, ``"icnr"`` or ``"original"``.
        device: ``"cpu"`` or ``"cuda"``.
        cache_images: keep up to this many prepared images in memory.
        resume: continue the run in ``out``.
        progress: show a progress bar.
        command: the command line, recorded in the weights' card.
        model: one of :data:`FACE_MODELS`.
        model_options: the model's options (repsr: ``features``, ``blocks``, ``expand``;
            espcn: ``features``, ``kernels``, ``activation``, ``residual``); ``scale`` (4)
            and ``channels`` (3) are set by the trainer.
        split: ``None`` (train on every image) or ``"lfw"``: train on the training people of
            :mod:`subpixel.applications.faces_split`, validate on the held-out people.
        val_every: validate on the held-out people every N steps (and at the end).
        schedule: ``"constant"`` or ``"cosine"`` (warm-up, then cosine decay; needs ``steps``);
            default: constant for ``subpixel-faces``, cosine otherwise.
        warmup_steps: linear warm-up of the cosine schedule.
        min_lr_ratio: the cosine schedule ends at ``lr·min_lr_ratio``.
        loss: ``"mse"`` (the original) or ``"l1"``.
        finetune_mse_fraction: train the last fraction of the steps with MSE.
        ema: decay of the weights' moving average (0: off), validated and saved.
        augment: flips and scale/shift/colour jitter (:func:`augmented_pair`); default off
            for ``subpixel-faces``, on otherwise.
    """

    data: tuple[str, ...]
    out: str
    crop: int = 128
    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 64
    lr: float | None = None
    beta1: float | None = None
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
    model: str = "subpixel-faces"
    model_options: dict[str, Any] = field(default_factory=dict)
    split: str | None = None
    val_every: int = 1000
    schedule: str | None = None
    warmup_steps: int = 100
    min_lr_ratio: float = 0.01
    loss: str = "mse"
    finetune_mse_fraction: float = 0.0
    ema: float = 0.0
    augment: bool | None = None

    def __post_init__(self) -> None:
        if self.model not in FACE_MODELS:
            raise ValueError(f"model must be one of {FACE_MODELS}, got {self.model!r}")
        for name, value in _DEFAULTS[self.model == "subpixel-faces"].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
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
        for name in ("batch_size", "sample_every", "checkpoint_every", "samples", "val_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.data:
            raise ValueError("no training data given")
        if self.split is not None and self.split not in SPLIT_RULES:
            raise ValueError(f"split must be None or one of {SPLIT_RULES}, got {self.split!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.loss not in _LOSSES:
            raise ValueError(f"loss must be one of {sorted(_LOSSES)}, got {self.loss!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1) (0: off), got {self.ema}")
        if not 0.0 <= self.finetune_mse_fraction < 1.0:
            raise ValueError(
                f"finetune_mse_fraction must be in [0, 1), got {self.finetune_mse_fraction}"
            )
        if self.minutes is not None and (self.schedule == "cosine" or self.finetune_mse_fraction):
            raise ValueError(
                "the cosine schedule and MSE fine-tuning need the run's length: give steps"
            )
        if self.warmup_steps < 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError("warmup_steps must be >= 0 and min_lr_ratio in [0, 1]")
        fixed = {"scale": SCALE, "channels": 3}
        for key, value in fixed.items():
            if key in self.model_options and self.model_options[key] != value:
                raise ValueError(
                    f"model_options {key}={self.model_options[key]!r}: face models are "
                    f"{key}={value}"
                )

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the original."""
        keep = ("data", "crop", "batch_size", "lr", "beta1", "seed", "init", "samples")
        d = dataclasses.asdict(self)
        out = {k: d[k] for k in keep}
        out.update({k: d[k] for k, v in _LATER_IDENTITY.items() if d[k] != v})
        return json.loads(json.dumps(out))

    @property
    def signed(self) -> bool:
        """Whether the model works in [-1, 1] (``subpixel-faces``) rather than [0, 1]."""
        return self.model == "subpixel-faces"


@dataclass
class FacesResult:
    """What :func:`train_faces` returns."""

    model_path: Path
    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    samples: list[Path]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


# ----------------------------------------------------------------------------- data


def face_crop(path: str | os.PathLike[str], crop: int = 128) -> torch.Tensor:
    """The 128×128 RGB target of an image file, in [0, 1] on 8-bit levels.

    The image is loaded as RGB, centre-cropped to ``crop×crop`` (the offset is rounded down)
    and resized to 128×128 with :func:`~subpixel.resize.imresize` when ``crop != 128``.

    Raises:
        ValueError: the image is smaller than ``crop`` (the message names the file).
    """
    return _centre(load_image(path), crop, path)


def _centre(img: torch.Tensor, crop: int, path: Any) -> torch.Tensor:
    h, w = img.shape[-2:]
    if h < crop or w < crop:
        raise ValueError(f"{path}: image is {w}×{h}, smaller than the {crop}×{crop} crop")
    top, left = (h - crop) // 2, (w - crop) // 2
    hr = img[:, top : top + crop, left : left + crop]
    if crop != HR_SIZE:
        hr = quantize(imresize(hr, size=(HR_SIZE, HR_SIZE)))
    return hr


def _degrade(hr: torch.Tensor) -> torch.Tensor:
    """The project's 32×32 input: MATLAB bicubic (antialiased), rounded to 8-bit levels."""
    return quantize(imresize(hr, size=(LR_SIZE, LR_SIZE)))


def face_pair(path: str | os.PathLike[str], crop: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """One training pair from an image file: 32×32 input and 128×128 target, in [-1, 1].

    The target is :func:`face_crop`; the input its downscaling to 32×32 with ``imresize``,
    rounded to 8 bits.

    Raises:
        ValueError: the image is smaller than ``crop`` (the message names the file).
    """
    hr = face_crop(path, crop)
    return _degrade(hr) * 2 - 1, hr * 2 - 1


def augmented_pair(
    img: torch.Tensor, crop: int, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor]:
    """A jittered ``(32×32 input, 128×128 target)`` pair in [0, 1] from a whole image.

    With probability 1/2 the crop is zoomed out (side ``crop·U(1, 1.15)``, at most the
    image) and shifted by up to ±6 pixels (at 128×128 scale), then resized to 128×128 with
    ``imresize`` (a downscaling, so targets stay sharp); otherwise it is the exact centre
    crop. It is then flipped left-right with probability 1/2, its contrast scaled by
    ``U(0.9, 1.1)`` about its mean, its brightness by ``U(0.9, 1.1)`` and each colour
    channel by ``U(0.95, 1.05)``; rounded to 8 bits, and degraded as :func:`face_pair`.

    Example:
        >>> import random, torch
        >>> lr, hr = augmented_pair(torch.rand(3, 150, 150), 128, random.Random(0))
        >>> lr.shape, hr.shape
        (torch.Size([3, 32, 32]), torch.Size([3, 128, 128]))
    """
    h, w = img.shape[-2:]
    if h < crop or w < crop:
        raise ValueError(f"image is {w}×{h}, smaller than the {crop}×{crop} crop")
    side = crop
    top, left = (h - crop) // 2, (w - crop) // 2
    if rng.random() < 0.5:
        side = min(round(crop * rng.uniform(1.0, MAX_ZOOM_OUT)), h, w)
        shift = round(MAX_SHIFT * side / HR_SIZE)
        top = min(max((h - side) // 2 + rng.randint(-shift, shift), 0), h - side)
        left = min(max((w - side) // 2 + rng.randint(-shift, shift), 0), w - side)
    hr = img[:, top : top + side, left : left + side]
    if side != HR_SIZE:
        hr = quantize(imresize(hr, size=(HR_SIZE, HR_SIZE)))
    if rng.random() < 0.5:
        hr = hr.flip(-1)
    contrast, brightness = rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)
    gains = torch.tensor([brightness * rng.uniform(0.95, 1.05) for _ in range(3)])
    mean = hr.mean()
    hr = quantize(((hr - mean) * contrast + mean) * gains.to(hr.dtype)[:, None, None])
    return _degrade(hr), hr


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (the previous count is restored).

    Preparing images is a stream of small operations; on a busy machine several threads make
    each of them wait for the others (measured: 170× slower on 2 shared cores).
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _Faces:
    """Random batches of face pairs in [0, 1], with a bounded in-memory cache.

    Without augmentation the prepared pairs are cached; with it, the decoded images (8-bit).
    """

    def __init__(self, paths: Sequence[Path], crop: int, cache: int, augment: bool) -> None:
        self.paths = list(paths)
        self.crop = crop
        self.augment = augment
        self.cache_limit = cache
        self.cache: dict[int, Any] = {}

    def pair(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact centre-crop pair of image ``i``."""
        hit = self.cache.get(i) if not self.augment else None
        if hit is not None:
            return hit
        hr = face_crop(self.paths[i], self.crop)
        out = (_degrade(hr), hr)
        if not self.augment and len(self.cache) < self.cache_limit:
            self.cache[i] = out
        return out

    def _image(self, i: int) -> torch.Tensor:
        hit = self.cache.get(i)
        if hit is None:
            img = load_image(self.paths[i])
            hit = img.mul(255).round().to(torch.uint8)
            if len(self.cache) < self.cache_limit:
                self.cache[i] = hit
        return hit.float() / 255

    def batch(
        self, indices: Sequence[int], rng: random.Random
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with single_thread():
            return self._batch(indices, rng)

    def _batch(
        self, indices: Sequence[int], rng: random.Random
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.augment:
            pairs = []
            for i in indices:
                try:
                    pairs.append(augmented_pair(self._image(i), self.crop, rng))
                except ValueError as exc:
                    raise ValueError(f"{self.paths[i]}: {exc}") from None
        else:
            pairs = [self.pair(i) for i in indices]
        return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


# ----------------------------------------------------------------------------- model


def _build(cfg: FacesConfig) -> nn.Module:
    if cfg.model == "subpixel-faces":
        return get_model("subpixel-faces", init=cfg.init, **cfg.model_options)
    options = {k: v for k, v in cfg.model_options.items() if k not in ("scale", "channels")}
    return get_model(cfg.model, scale=SCALE, channels=3, **options)


def face_forward(model: nn.Module, lr: torch.Tensor, *, signed: bool = False) -> torch.Tensor:
    """``model`` on ``(N, 3, h, w)`` inputs in [0, 1]; outputs clamped to [0, 1].

    ``signed``: the model works in [-1, 1] (``subpixel-faces``, the original's tanh).

    Example:
        >>> import torch
        >>> from subpixel.models import get_model
        >>> out = face_forward(get_model("subpixel-faces"), torch.rand(1, 3, 8, 8), signed=True)
        >>> out.shape, bool(out.min() >= 0)
        (torch.Size([1, 3, 32, 32]), True)
    """
    device = next(model.parameters()).device
    with torch.no_grad():
        x = lr.to(device)
        out = (model(x * 2 - 1) + 1) / 2 if signed else model(x)
    return out.clamp(0, 1).to(lr.device)


def _inference_form(cfg: FacesConfig, model: nn.Module) -> tuple[nn.Module, str, dict[str, Any]]:
    """What ``model.safetensors`` holds: the model, its registry name and its config."""
    if cfg.model == "subpixel-faces":
        return model, "subpixel-faces", {"init": cfg.init, **cfg.model_options}
    collapse = getattr(model, "collapse", None)
    if callable(collapse):
        return collapse(), "espcn", dict(model.espcn_config())  # type: ignore[operator]
    options = {k: v for k, v in cfg.model_options.items() if k not in ("scale", "channels")}
    return model, cfg.model, {"scale": SCALE, "channels": 3, **options}


def _learning_rate(cfg: FacesConfig, step: int, total: int) -> float:
    """Constant, or linear warm-up then cosine decay to ``lr·min_lr_ratio`` at ``total``."""
    lr = float(cfg.lr)  # type: ignore[arg-type]
    if cfg.schedule == "constant":
        return lr
    if step < cfg.warmup_steps:
        return lr * (step + 1) / cfg.warmup_steps
    t = min((step - cfg.warmup_steps) / max(total - cfg.warmup_steps, 1), 1.0)
    return lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def _loss_name(cfg: FacesConfig, step: int, total: int) -> str:
    if cfg.finetune_mse_fraction and step >= total * (1 - cfg.finetune_mse_fraction):
        return "mse"
    return cfg.loss


# ----------------------------------------------------------------------------- validation


def _to_u8(x: torch.Tensor) -> torch.Tensor:
    return x.mul(255).round().to(torch.uint8)


@torch.no_grad()
def _validate(
    model: nn.Module, signed: bool, lr_u8: torch.Tensor, hr_u8: torch.Tensor, batch: int = 64
) -> tuple[float, float]:
    """Mean PSNR (RGB, Y) of 8-bit outputs over the validation images, 4 pixels shaved."""
    was_training = model.training
    model.eval()
    rgb, y = [], []
    s = SCALE
    for i in range(0, len(lr_u8), batch):
        out = quantize(face_forward(model, lr_u8[i : i + batch].float() / 255, signed=signed))
        sr = out.double()[..., s:-s, s:-s]
        hr = (hr_u8[i : i + batch].double() / 255)[..., s:-s, s:-s]
        rgb.append(10 * torch.log10(1 / (sr - hr).pow(2).mean((1, 2, 3))))
        y.append(10 * torch.log10(1 / (rgb_to_y(sr) - rgb_to_y(hr)).pow(2).mean((1, 2, 3))))
    model.train(was_training)
    return float(torch.cat(rgb).mean()), float(torch.cat(y).mean())


# ----------------------------------------------------------------------------- the loop


def train_faces(cfg: FacesConfig) -> FacesResult:
    """Train ``cfg.model`` on whole face crops by ``cfg`` (see the module docstring)."""
    run_dir = Path(cfg.out)
    if run_dir.exists() and not cfg.resume and _has_run(run_dir):
        raise FileExistsError(
            f"{run_dir}: already holds a training run; use --resume to continue it or choose "
            "another --out (nothing was overwritten)"
        )
    heldout: list[Path] = []
    if cfg.split is not None:
        paths, heldout = face_split(cfg.data, cfg.split)
    else:
        paths = find_images(cfg.data)
    device = torch.device(cfg.device)
    faces = _Faces(paths, cfg.crop, cfg.cache_images, bool(cfg.augment))
    if heldout:
        val = _Faces(heldout, cfg.crop, 0, False)
        val_pairs = [val.pair(i) for i in range(len(heldout))]
        val_lr = _to_u8(torch.stack([p[0] for p in val_pairs]))
        val_hr = _to_u8(torch.stack([p[1] for p in val_pairs]))
        del val_pairs
        step_ = max(len(heldout) // cfg.samples, 1)
        shown = list(range(0, len(heldout), step_))[: cfg.samples]
        fixed_lr, fixed_hr = val_lr[shown].float() / 255, val_hr[shown].float() / 255
    else:
        pairs = [faces.pair(i) for i in range(min(cfg.samples, len(paths)))]
        fixed_lr, fixed_hr = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    torch.manual_seed(cfg.seed)
    model = _build(cfg).to(device)
    opt = torch.optim.Adam(
        model.parameters(),
        lr=float(cfg.lr),  # type: ignore[arg-type]
        betas=(float(cfg.beta1), 0.999),  # type: ignore[arg-type]
    )
    ema = copy.deepcopy(model) if cfg.ema else None
    rng = random.Random(cfg.seed)
    step, elapsed_before = 0, 0.0
    rows: list[dict[str, Any]] = []
    commands = [cfg.command]
    if cfg.resume:
        step, elapsed_before, rows, commands = _restore(run_dir, cfg, model, opt, rng, ema)
        commands = [*commands, cfg.command]
    for sub in ("samples", "checkpoints"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    scored = ema if ema is not None else model  # what is validated, shown and saved
    total = cfg.steps or 0

    def checkpoint() -> None:
        _save_checkpoint(run_dir, cfg, step, model, opt, rng, elapsed(), ema, commands)
        _write_log(run_dir / "log.csv", rows)

    start = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - start

    def done() -> bool:
        if cfg.steps is not None:
            return step >= cfg.steps
        return elapsed() >= cfg.minutes * 60  # type: ignore[operator]

    def validate() -> None:
        psnr_rgb, psnr_y = _validate(scored, cfg.signed, val_lr, val_hr)
        if not rows or int(rows[-1]["step"]) != step:
            rows.append({"step": step})
        rows[-1].update(
            val_psnr_rgb=f"{psnr_rgb:.4f}", val_psnr_y=f"{psnr_y:.4f}", elapsed_s=f"{elapsed():.1f}"
        )
        if bar is not None:
            bar.set_postfix(loss=last_loss, val_rgb=f"{psnr_rgb:.2f}")

    def write_samples() -> Path:
        return _write_samples(run_dir, step, scored, fixed_lr, fixed_hr, cfg.signed)

    samples: list[Path] = []
    if step == 0:
        samples.append(write_samples())
    bar = progress_bar(cfg.steps, desc="faces", initial=step, enabled=cfg.progress)
    last_loss = ""
    model.train()
    window: list[float] = []
    while not done():
        lr_now = _learning_rate(cfg, step, total)
        for group in opt.param_groups:
            group["lr"] = lr_now
        lr_b, hr_b = faces.batch([rng.randrange(len(paths)) for _ in range(cfg.batch_size)], rng)
        if cfg.signed:
            lr_b, hr_b = lr_b * 2 - 1, hr_b * 2 - 1
        loss_fn = _LOSSES[_loss_name(cfg, step, total)]
        loss = loss_fn(model(lr_b.to(device)), hr_b.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            update_ema(ema, model, min(cfg.ema, (1 + step) / (10 + step)))
        step += 1
        window.append(float(loss.detach()))
        if step % 10 == 0 or done():
            row: dict[str, Any] = {
                "step": step,
                "loss": f"{sum(window) / len(window):.6g}",
                "elapsed_s": f"{elapsed():.1f}",
            }
            if cfg.schedule != "constant":
                row["lr"] = f"{lr_now:.4g}"
            rows.append(row)
            window = []
            last_loss = str(row["loss"])
            if bar is not None:
                bar.set_postfix(loss=last_loss)
        if bar is not None:
            bar.update(1)
        if heldout and step % cfg.val_every == 0 and not done():
            validate()
        if step % cfg.sample_every == 0 and not done():
            samples.append(write_samples())
        if step % cfg.checkpoint_every == 0 and not done():
            checkpoint()
    if heldout:
        validate()
    if bar is not None:
        bar.close()
    samples.append(write_samples())
    checkpoint()
    seconds = elapsed()
    losses = [float(r["loss"]) for r in rows if r.get("loss")]

    final, name, config = _inference_form(cfg, scored)
    metrics: dict[str, dict[str, float]] = {}
    if heldout:
        metrics = _final_metrics(cfg, final, name, config, heldout)
    card: dict[str, Any] = {
        "architecture": name,
        "config": config,
        "scale": SCALE,
        "channels": 3,
        "parameters": sum(p.numel() for p in final.parameters()),
        "task": "4× face super-resolution, trained on 32×32 → 128×128 RGB centre crops",
        "data": list(cfg.data),
        "images": len(paths),
        "crop": cfg.crop,
        "steps": step,
        "batch_size": cfg.batch_size,
        "recipe": {
            "model": cfg.model,
            "model_options": cfg.model_options,
            "init": cfg.init if cfg.model == "subpixel-faces" else None,
            "lr": cfg.lr,
            "beta1": cfg.beta1,
            "schedule": cfg.schedule,
            "warmup_steps": cfg.warmup_steps if cfg.schedule == "cosine" else None,
            "min_lr_ratio": cfg.min_lr_ratio if cfg.schedule == "cosine" else None,
            "loss": cfg.loss,
            "finetune_mse_fraction": cfg.finetune_mse_fraction,
            "ema": cfg.ema,
            "augment": cfg.augment,
            "seed": cfg.seed,
        },
        "seconds": round(seconds, 1),
        "final_loss": losses[-1] if losses else None,
        "command": commands[0] if commands else cfg.command,
        "commands": commands,
        "metrics": metrics,
        "device": cfg.device,
        "torch": torch.__version__,
        "subpixel": __version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }
    if cfg.split is not None:
        card["split"] = {
            "rule": cfg.split,
            "description": describe_rule(cfg.split),
            "train_images": len(paths),
            "train_people": len({person_of(p) for p in paths}),
            "heldout_images": len(heldout),
            "heldout_people": len({person_of(p) for p in heldout}),
        }
    if name != cfg.model:
        card["trained_as"] = {"model": cfg.model, "config": cfg.model_options}
    model_path = run_dir / "model.safetensors"
    save_weights(model_path, final.state_dict(), model=name, config=config, card=card)
    atomic_write_bytes(run_dir / "model.md", faces_card_markdown(card).encode())
    _write_log(run_dir / "log.csv", rows)
    return FacesResult(
        model_path,
        step,
        seconds,
        losses[0] if losses else float("nan"),
        losses[-1] if losses else float("nan"),
        samples,
        metrics,
    )


def _final_metrics(
    cfg: FacesConfig, final: nn.Module, name: str, config: dict[str, Any], heldout: list[Path]
) -> dict[str, dict[str, float]]:
    """The held-out evaluation of the saved form: bicubic, DEFAULT ×4 and this model."""
    from subpixel.applications.faces_eval import (
        bicubic_method,
        default_method,
        evaluate_faces,
        load_face_pairs,
        module_method,
    )

    lr, hr = load_face_pairs(heldout, cfg.crop)
    final = final.cpu().eval()
    methods = {
        "bicubic": bicubic_method(),
        "default": default_method(),
        "model": module_method(final, signed=name == "subpixel-faces"),
    }
    return evaluate_faces(lr, hr, methods)


def faces_card_markdown(card: dict[str, Any]) -> str:
    """The model card of a faces run as Markdown (what ``model.md`` holds)."""
    title = {"subpixel-faces": "the original project's face model"}.get(
        card["architecture"], "face model"
    )
    lines = [
        f"# {card['architecture']} ×{card['scale']} RGB: {title}",
        "",
        "Trained on 32×32 → 128×128 RGB centre crops of aligned faces: it expects a roughly "
        "centred face filling most of the frame, as a 128×128 centre crop of a deep-funneled "
        "LFW image does. It is fully convolutional and runs on any image size, but away from "
        "such faces (other framings, scales, non-face content) its face-specific prior is "
        "not what was measured below, and gains over a general model are not to be expected.",
        "",
        f"- parameters: {card['parameters']:,}",
        f"- config: `{json.dumps(card['config'], sort_keys=True)}`",
        *trained_as_lines(card),
    ]
    lines.append(f"- training data: {', '.join(card['data'])} ({card['images']} images)")
    split = card.get("split")
    if split:
        lines.append(
            f"- split `{split['rule']}`: trained on {split['train_images']} images of "
            f"{split['train_people']} people; held out {split['heldout_images']} images of "
            f"{split['heldout_people']} other people. Rule: {split['description']}"
        )
    recipe = card.get("recipe", {})
    if recipe:
        parts = [f"{k} {json.dumps(v)}" for k, v in recipe.items() if v not in (None, {})]
        lines.append(f"- recipe: {', '.join(parts)}")
    crop = f"{card['crop']}×{card['crop']}"
    resized = "" if card["crop"] == HR_SIZE else ", resized to 128×128"
    lines += [
        f"- inputs: {crop} centre crops{resized}, downscaled to 32×32 by MATLAB bicubic "
        "(`subpixel.resize.imresize`), 8-bit levels",
        f"- steps: {card['steps']} (batch {card['batch_size']}), {card['seconds'] / 60:.1f} min "
        f"on {card.get('device', 'cpu')} ({card.get('machine', '')})",
        f"- torch {card['torch']}, subpixel {card['subpixel']}",
        "",
        *command_lines(card),
    ]
    metrics = card.get("metrics") or {}
    if metrics:
        from subpixel.applications.faces_eval import METHOD_LABELS

        lines += [
            "## Evaluation: held-out people",
            "",
            "128×128 centre crops, 32×32 input by MATLAB bicubic, mean over images of PSNR "
            "(dB) and SSIM of 8-bit outputs, 4 pixels shaved; Y is BT.601 luma.",
            "",
            "| method | PSNR RGB | SSIM RGB | PSNR Y | SSIM Y |",
            "|---|---|---|---|---|",
        ]
        for key, m in metrics.items():
            lines.append(
                f"| {METHOD_LABELS.get(key, key)} | {m['psnr_rgb']:.2f} | {m['ssim_rgb']:.4f} | "
                f"{m['psnr_y']:.2f} | {m['ssim_y']:.4f} |"
            )
        data = card["data"][0] if card["data"] else "DIR"
        lines += [
            "",
            "Reproduce (with the original model beside it: `--original WEIGHTS`): "
            f"`subpixel experiment faces --data {data} --weights model.safetensors`",
            "",
        ]
    return "\n".join(lines)


def _has_run(run_dir: Path) -> bool:
    return (run_dir / "model.safetensors").exists() or bool(_checkpoints(run_dir))


def _checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := _CKPT.search(p.name)))


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    names = ["step", "loss", "elapsed_s"]
    for row in rows:
        names += [k for k in row if k not in names]
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=names)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())


def _sample_grid(
    model: nn.Module, lr: torch.Tensor, hr: torch.Tensor, signed: bool
) -> torch.Tensor:
    """Rows of input (nearest ×4) | output | ground truth, as one [0, 1] image."""
    was_training = model.training
    model.eval()
    out = face_forward(model, lr, signed=signed)
    model.train(was_training)
    big = F.interpolate(lr, scale_factor=SCALE, mode="nearest")
    tiles = torch.stack([big, out, hr], dim=1).reshape(-1, 3, HR_SIZE, HR_SIZE)
    return image_grid(tiles, 3)


def _write_samples(
    run_dir: Path,
    step: int,
    model: nn.Module,
    lr: torch.Tensor,
    hr: torch.Tensor,
    signed: bool,
) -> Path:
    path = run_dir / "samples" / f"step-{step:07d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(path, _sample_grid(model, lr, hr, signed))
    return path


def _save_checkpoint(
    run_dir: Path,
    cfg: FacesConfig,
    step: int,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    rng: random.Random,
    elapsed: float,
    ema: nn.Module | None,
    commands: list[str],
) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    opt_tensors, opt_meta = _flatten_optimizer(opt)
    tensors.update(opt_tensors)
    config = {"init": cfg.init} if cfg.signed else {"scale": SCALE, "channels": 3}
    save_weights(
        run_dir / "checkpoints" / f"step-{step:07d}.safetensors",
        tensors,
        model=cfg.model,
        config={**config, **cfg.model_options},
        extra={
            "train.step": str(step),
            "train.elapsed": repr(elapsed),
            "train.optimizer": opt_meta,
            "train.rng": json.dumps(rng.getstate()),
            "train.identity": json.dumps(cfg.identity(), sort_keys=True),
            "train.commands": json.dumps(commands),
        },
    )
    for _, old in _checkpoints(run_dir)[:-3]:
        old.unlink(missing_ok=True)


def _restore(
    run_dir: Path,
    cfg: FacesConfig,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    rng: random.Random,
    ema: nn.Module | None,
) -> tuple[int, float, list[dict[str, Any]], list[str]]:
    """Load the newest readable checkpoint into ``model``/``opt``/``rng``/``ema``."""
    for _, path in reversed(_checkpoints(run_dir)):
        try:
            tensors, meta = load_weights(path)
            extra = meta.extra
            identity = json.loads(extra["train.identity"])
            state = json.loads(extra["train.rng"])
            step, elapsed = int(extra["train.step"]), float(extra["train.elapsed"])
            optim = _unflatten_optimizer(tensors, extra["train.optimizer"])
            commands = json.loads(extra.get("train.commands", '["(not recorded)"]'))
        except (WeightsError, KeyError, ValueError) as exc:
            warnings.warn(
                f"{path}: unreadable checkpoint ({exc}); trying the previous one", stacklevel=2
            )
            continue
        if identity != cfg.identity():
            diff = sorted(
                k for k in {*cfg.identity(), *identity} if cfg.identity().get(k) != identity.get(k)
            )
            raise ValueError(
                f"{path}: the run was started with different settings ({', '.join(diff)}); "
                "resume with the original command"
            )
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict(weights)
        if ema is not None:
            averaged = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
            ema.load_state_dict(averaged or weights)
        opt.load_state_dict(optim)
        rng.setstate((state[0], tuple(state[1]), state[2]))
        rows: list[dict[str, Any]] = []
        log = run_dir / "log.csv"
        if log.exists():
            with log.open(newline="") as fh:
                rows = [
                    {k: v for k, v in r.items() if v not in ("", None)}
                    for r in csv.DictReader(fh)
                    if int(r["step"]) <= step
                ]
        print(f"resuming {run_dir} at step {step}", file=sys.stderr)
        return step, elapsed, rows, list(commands)
    raise FileNotFoundError(f"{run_dir}: no readable checkpoint to resume from")
