"""Sub-pixel versus transposed convolution, measured: the autoencoder and DCGAN experiments.

Each runner trains one configuration on MNIST-format data (see :mod:`.idx`), seeded, and
writes into its output folder:

* ``result.json``: flat keys (``params``, ``seconds_per_epoch``, ``checkerboard_init``,
  ``checkerboard_final``, ``test_mse``, ``test_psnr``, ...), written atomically;
* PNG grids (``reconstructions.png`` or ``samples_init.png`` / ``samples_final.png``);
* the trained weights as ``.safetensors``.

The checkerboard score (:mod:`.checkerboard`) is measured on the model's outputs for
the test images (autoencoder) or for a fixed batch of noise vectors (DCGAN), at the period of
the last upsampler (``checkerboard_*``, factor 2) and of the whole decoder
(``checkerboard4_*``, factor 4); ``checkerboard_data`` is the score of the real test images,
what a perfect model would get. The command line is ``subpixel experiment``.

Example:
    >>> cfg = AutoencoderConfig(dataset="mnist", decoder="transposed", epochs=1, limit=2000)
    >>> cfg.name
    'autoencoder-mnist-transposed-seed0'
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from subpixel import __version__
from subpixel._files import atomic_write_bytes
from subpixel._progress import progress_bar
from subpixel.applications.checkerboard import checkerboard_score
from subpixel.applications.idx import load_mnist
from subpixel.models import get_model
from subpixel.models.autoencoder import UPSAMPLERS
from subpixel.serialization import save_weights

__all__ = [
    "DATASETS",
    "AutoencoderConfig",
    "DCGANConfig",
    "default_data_dir",
    "image_grid",
    "load_images",
    "run_autoencoder",
    "run_dcgan",
    "save_png",
    "sliced_wasserstein",
    "summary_table",
    "write_json",
]

#: Datasets the experiments know, each a folder of the four MNIST-format idx files.
DATASETS = ("mnist", "fashion-mnist")


# --------------------------------------------------------------------------- data and files


def default_data_dir(dataset: str) -> Path:
    """``$SUBPIXEL_DATA/<dataset>``, the shared data layout.

    Raises:
        ValueError: unknown dataset, or ``SUBPIXEL_DATA`` is not set.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    root = os.environ.get("SUBPIXEL_DATA")
    if not root:
        raise ValueError(
            f"no data folder: pass --data DIR (the {dataset} idx files) or set SUBPIXEL_DATA"
        )
    return Path(root) / dataset


def load_images(root: str | os.PathLike[str], split: str, limit: int | None = None) -> torch.Tensor:
    """MNIST-format images as float32 ``(N, 1, H, W)`` in [0, 1] (``uint8 / 255``)."""
    images, _ = load_mnist(root, "train" if split == "train" else "test", limit=limit)
    return torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)


def image_grid(
    images: torch.Tensor, nrow: int, *, pad: int = 2, pad_value: float = 1.0
) -> torch.Tensor:
    """Tile ``(N, C, H, W)`` images, ``nrow`` per row, into one ``(C, H', W')`` image.

    Example:
        >>> image_grid(torch.zeros(5, 1, 4, 4), 3, pad=1).shape
        torch.Size([1, 11, 16])
    """
    if images.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {tuple(images.shape)}")
    n, c, h, w = images.shape
    rows = math.ceil(n / nrow)
    grid = torch.full(
        (c, rows * (h + pad) + pad, nrow * (w + pad) + pad), pad_value, dtype=images.dtype
    )
    for i in range(n):
        y, x = pad + (i // nrow) * (h + pad), pad + (i % nrow) * (w + pad)
        grid[:, y : y + h, x : x + w] = images[i]
    return grid


def save_png(path: str | os.PathLike[str], image: torch.Tensor, *, zoom: int = 1) -> None:
    """Write a ``(1|3, H, W)`` image in [0, 1] as an 8-bit PNG, atomically.

    ``zoom`` enlarges by pixel repetition, so a checkerboard stays visible when a page
    scales the figure.
    """
    from PIL import Image

    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected a (1|3, H, W) image, got shape {tuple(image.shape)}")
    if zoom > 1:
        image = image.repeat_interleave(zoom, -1).repeat_interleave(zoom, -2)
    arr = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    pil = Image.fromarray(arr[0]) if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0))
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    atomic_write_bytes(path, buf.getvalue())


def write_json(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(dict(data), indent=2) + "\n").encode())


def sliced_wasserstein(
    a: torch.Tensor, b: torch.Tensor, *, projections: int = 256, seed: int = 0
) -> float:
    """Sliced Wasserstein-1 distance between two equal-sized sets of images (pixel space).

    Both sets are flattened to vectors; for each of ``projections`` random unit directions
    ``u`` (seeded) the 1-D Wasserstein-1 distance between the projections ``a·u`` and ``b·u``
    is the mean absolute difference of the sorted values; the result is the mean over
    directions. Lower is closer; it needs no trained network, so it is a rough
    distribution-level measure, not a perceptual one.

    Example:
        >>> x = torch.rand(100, 1, 8, 8, generator=torch.Generator().manual_seed(1))
        >>> sliced_wasserstein(x, x)
        0.0
    """
    if a.shape != b.shape:
        raise ValueError(
            f"sets must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    fa = a.reshape(a.shape[0], -1).double()
    fb = b.reshape(b.shape[0], -1).double()
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(fa.shape[1], projections, generator=gen, dtype=torch.float64)
    u = u / u.norm(dim=0, keepdim=True)
    pa, _ = (fa @ u).sort(dim=0)
    pb, _ = (fb @ u).sort(dim=0)
    return float((pa - pb).abs().mean())


def _environment() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "subpixel": __version__,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _check_common(dataset: str, variant: str, epochs: int, limit: int | None) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if variant not in UPSAMPLERS:
        raise ValueError(f"upsampling must be one of {UPSAMPLERS}, got {variant!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")


# ----------------------------------------------------------------------------- autoencoder


@dataclass(frozen=True)
class AutoencoderConfig:
    """One autoencoder run: dataset, decoder and training settings.

    Attributes:
        dataset: ``"mnist"`` or ``"fashion-mnist"``.
        decoder: ``"subpixel"`` or ``"transposed"``.
        epochs: passes over the (limited) training set.
        seed: seeds the initialisation and the batch order.
        out: output folder (default ``subpixel-experiments/<name>``).
        data: the idx folder (default ``$SUBPIXEL_DATA/<dataset>``).
        limit: train on the first ``limit`` training images only.
        test_limit: score on the first ``test_limit`` test images only (default: all 10,000).
        batch_size: images per step.
        lr: Adam learning rate.
        latent: size of the code.
        progress: show a progress bar per epoch.
    """

    dataset: str = "mnist"
    decoder: str = "subpixel"
    epochs: int = 3
    seed: int = 0
    out: str | None = None
    data: str | None = None
    limit: int | None = None
    test_limit: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    latent: int = 64
    progress: bool = True

    def __post_init__(self) -> None:
        _check_common(self.dataset, self.decoder, self.epochs, self.limit)
        _check_common(self.dataset, self.decoder, self.epochs, self.test_limit)

    @property
    def name(self) -> str:
        """``autoencoder-<dataset>-<decoder>-seed<seed>``."""
        return f"autoencoder-{self.dataset}-{self.decoder}-seed{self.seed}"


@torch.no_grad()
def _reconstruct(model: nn.Module, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    model.eval()
    out = torch.cat([model(images[i : i + batch]) for i in range(0, len(images), batch)])
    model.train()
    return out


def _reconstruction_scores(pred: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Mean MSE and mean per-image PSNR (peak 1) over the set, in float64."""
    mse = (pred.double() - target.double()).square().mean(dim=(1, 2, 3))
    psnr = 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))
    return float(mse.mean()), float(psnr.mean())


def run_autoencoder(cfg: AutoencoderConfig, *, command: str = "") -> dict[str, Any]:
    """Train the autoencoder of ``cfg`` and write its results (see the module docstring).

    Returns:
        The flat dictionary also written to ``<out>/result.json``.
    """
    root = Path(cfg.data) if cfg.data else default_data_dir(cfg.dataset)
    out = Path(cfg.out or Path("subpixel-experiments") / cfg.name)
    train_x = load_images(root, "train", cfg.limit)
    test_x = load_images(root, "test", cfg.test_limit)
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)
    model = get_model("autoencoder", decoder=cfg.decoder, latent=cfg.latent)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    order_gen = torch.Generator().manual_seed(cfg.seed)

    init_pred = _reconstruct(model, test_x)
    init_mse, _ = _reconstruction_scores(init_pred, test_x)
    result: dict[str, Any] = {
        "experiment": "autoencoder",
        "dataset": cfg.dataset,
        "decoder": cfg.decoder,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "limit": cfg.limit,
        "train_images": len(train_x),
        "test_images": len(test_x),
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "latent": cfg.latent,
        "params": _params(model),
        "test_mse_init": init_mse,
        "checkerboard_init": checkerboard_score(init_pred, 2),
        "checkerboard4_init": checkerboard_score(init_pred, 4),
        "checkerboard_data": checkerboard_score(test_x, 2),
        "checkerboard4_data": checkerboard_score(test_x, 4),
    }

    epoch_seconds: list[float] = []
    epoch_losses: list[float] = []
    batches = math.ceil(len(train_x) / cfg.batch_size)
    model.train()
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(train_x), generator=order_gen)
        bar = progress_bar(
            batches,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            unit="batch",
            enabled=cfg.progress,
            leave=False,
        )
        total, start = 0.0, time.perf_counter()
        for b in range(batches):
            x = train_x[perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            loss = F.mse_loss(model(x), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(x)
            if bar is not None:
                bar.update(1)
                if b % 20 == 0:
                    bar.set_postfix(loss=f"{float(loss):.4f}")
        epoch_seconds.append(time.perf_counter() - start)
        if bar is not None:
            bar.close()
        epoch_losses.append(total / len(train_x))

    pred = _reconstruct(model, test_x)
    mse, psnr = _reconstruction_scores(pred, test_x)
    result.update(
        {
            "seconds_per_epoch": sum(epoch_seconds) / len(epoch_seconds),
            "train_loss_final": epoch_losses[-1],
            "train_loss_epochs": epoch_losses,
            "test_mse": mse,
            "test_psnr": psnr,
            "checkerboard_final": checkerboard_score(pred, 2),
            "checkerboard4_final": checkerboard_score(pred, 4),
            "command": command,
            **_environment(),
        }
    )
    shown = 16
    rows = torch.cat([test_x[:shown], init_pred[:shown], pred[:shown]])
    save_png(out / "reconstructions.png", image_grid(rows, shown), zoom=2)
    save_weights(
        out / "model.safetensors",
        model.state_dict(),
        model="autoencoder",
        config={"decoder": cfg.decoder, "latent": cfg.latent},
        card={"experiment": asdict(cfg), "result": {k: v for k, v in result.items()}},
    )
    write_json(out / "result.json", result)
    return result


# ----------------------------------------------------------------------------------- DCGAN


@dataclass(frozen=True)
class DCGANConfig:
    """One DCGAN run on 28×28 images.

    Attributes:
        dataset: ``"mnist"`` or ``"fashion-mnist"``.
        upsampler: the generator's upsampling, ``"subpixel"`` or ``"transposed"``.
        epochs: passes over the (limited) training set.
        seed: seeds the initialisation, the batch order and the noise.
        out: output folder (default ``subpixel-experiments/<name>``).
        data: the idx folder (default ``$SUBPIXEL_DATA/<dataset>``).
        limit: train on the first ``limit`` training images only.
        test_limit: compare with the first ``test_limit`` test images only.
        batch_size: images per step.
        lr: Adam learning rate of both networks (DCGAN: 2e-4).
        beta1: Adam's first-moment decay (DCGAN: 0.5).
        latent_dim: size of the noise vector.
        features: generator / discriminator width.
        samples: how many fixed-noise samples are scored.
        progress: show a progress bar per epoch.
    """

    dataset: str = "fashion-mnist"
    upsampler: str = "subpixel"
    epochs: int = 2
    seed: int = 0
    out: str | None = None
    data: str | None = None
    limit: int | None = None
    test_limit: int | None = None
    batch_size: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    latent_dim: int = 100
    features: int = 64
    samples: int = 2000
    progress: bool = True

    def __post_init__(self) -> None:
        _check_common(self.dataset, self.upsampler, self.epochs, self.limit)
        _check_common(self.dataset, self.upsampler, self.epochs, self.test_limit)
        if self.samples < 64:
            raise ValueError(f"samples must be >= 64, got {self.samples}")

    @property
    def name(self) -> str:
        """``dcgan-<dataset>-<upsampler>-seed<seed>``."""
        return f"dcgan-{self.dataset}-{self.upsampler}-seed{self.seed}"


@torch.no_grad()
def _generate(gen: nn.Module, noise: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Generator samples in [0, 1] (eval mode: batch norm uses its running statistics)."""
    gen.eval()
    out = torch.cat([gen(noise[i : i + batch]) for i in range(0, len(noise), batch)])
    gen.train()
    return (out + 1) / 2


def run_dcgan(cfg: DCGANConfig, *, command: str = "") -> dict[str, Any]:
    """Train the DCGAN of ``cfg`` (non-saturating loss) and write its results.

    Returns:
        The flat dictionary also written to ``<out>/result.json``; besides the checkerboard
        scores it holds the final epoch's mean losses and the sliced Wasserstein distance
        (:func:`sliced_wasserstein`) between ``samples`` generated and as many test images,
        next to the same distance between training and test images (``swd_data``).
    """
    root = Path(cfg.data) if cfg.data else default_data_dir(cfg.dataset)
    out = Path(cfg.out or Path("subpixel-experiments") / cfg.name)
    train_x = load_images(root, "train", cfg.limit) * 2 - 1
    test_x = load_images(root, "test", cfg.test_limit)
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)
    gen = get_model(
        "dcgan", upsampler=cfg.upsampler, latent_dim=cfg.latent_dim, features=cfg.features
    )
    disc = get_model("dcgan", part="discriminator", features=cfg.features)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    rng = torch.Generator().manual_seed(cfg.seed)
    fixed = torch.randn(cfg.samples, cfg.latent_dim, generator=rng)
    n_ref = min(cfg.samples, len(test_x), len(train_x))
    reference = test_x[:n_ref]

    init = _generate(gen, fixed)
    result: dict[str, Any] = {
        "experiment": "dcgan",
        "dataset": cfg.dataset,
        "upsampler": cfg.upsampler,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "limit": cfg.limit,
        "train_images": len(train_x),
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "beta1": cfg.beta1,
        "params": _params(gen),
        "params_discriminator": _params(disc),
        "checkerboard_init": checkerboard_score(init, 2),
        "checkerboard4_init": checkerboard_score(init, 4),
        "checkerboard_data": checkerboard_score(test_x, 2),
        "checkerboard4_data": checkerboard_score(test_x, 4),
        "swd_init": sliced_wasserstein(init[:n_ref], reference),
        "swd_data": sliced_wasserstein((train_x[:n_ref] + 1) / 2, reference),
    }
    save_png(out / "samples_init.png", image_grid(init[:64], 8), zoom=2)

    bce = nn.BCEWithLogitsLoss()
    epoch_seconds: list[float] = []
    d_losses: list[float] = []
    g_losses: list[float] = []
    batches = len(train_x) // cfg.batch_size
    if batches < 1:
        raise ValueError(f"{len(train_x)} training images are fewer than one batch")
    for epoch in range(cfg.epochs):
        perm = torch.randperm(len(train_x), generator=rng)
        bar = progress_bar(
            batches,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            unit="batch",
            enabled=cfg.progress,
            leave=False,
        )
        d_sum = g_sum = 0.0
        start = time.perf_counter()
        for b in range(batches):
            real = train_x[perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            n = len(real)
            ones, zeros = torch.ones(n, 1), torch.zeros(n, 1)
            fake = gen(torch.randn(n, cfg.latent_dim, generator=rng))
            d_loss = bce(disc(real), ones) + bce(disc(fake.detach()), zeros)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_loss = bce(disc(fake), ones)
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            d_sum += float(d_loss.detach())
            g_sum += float(g_loss.detach())
            if bar is not None:
                bar.update(1)
                if b % 20 == 0:
                    bar.set_postfix(d=f"{float(d_loss):.3f}", g=f"{float(g_loss):.3f}")
        epoch_seconds.append(time.perf_counter() - start)
        if bar is not None:
            bar.close()
        d_losses.append(d_sum / batches)
        g_losses.append(g_sum / batches)

    final = _generate(gen, fixed)
    result.update(
        {
            "seconds_per_epoch": sum(epoch_seconds) / len(epoch_seconds),
            "d_loss_final": d_losses[-1],
            "g_loss_final": g_losses[-1],
            "d_loss_epochs": d_losses,
            "g_loss_epochs": g_losses,
            "checkerboard_final": checkerboard_score(final, 2),
            "checkerboard4_final": checkerboard_score(final, 4),
            "swd_final": sliced_wasserstein(final[:n_ref], reference),
            "command": command,
            **_environment(),
        }
    )
    save_png(out / "samples_final.png", image_grid(final[:64], 8), zoom=2)
    card = {"experiment": asdict(cfg), "result": dict(result)}
    save_weights(
        out / "generator.safetensors",
        gen.state_dict(),
        model="dcgan",
        config={
            "part": "generator",
            "upsampler": cfg.upsampler,
            "latent_dim": cfg.latent_dim,
            "features": cfg.features,
        },
        card=card,
    )
    save_weights(
        out / "discriminator.safetensors",
        disc.state_dict(),
        model="dcgan",
        config={"part": "discriminator", "features": cfg.features},
        card=card,
    )
    write_json(out / "result.json", result)
    return result


# ----------------------------------------------------------------------------- tables


def summary_table(results: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> str:
    """A Markdown table: one row per group of runs that differ only in ``seed``.

    Numeric columns show ``mean ± std`` over the seeds (sample standard deviation; just the
    value for a single seed).

    Example:
        >>> rows = [{"decoder": "a", "seed": s, "x": v} for s, v in ((0, 1.0), (1, 3.0))]
        >>> print(summary_table(rows, ["x"]))
        | run | seeds | x |
        |---|---|---|
        | a | 2 | 2 ± 1.4 |
    """
    label_keys = ("experiment", "dataset", "decoder", "upsampler")
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in results:
        label = " ".join(str(r[k]) for k in label_keys if k in r)
        groups.setdefault(label, []).append(r)
    lines = [
        "| run | seeds | " + " | ".join(keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for label, runs in groups.items():
        cells = []
        for key in keys:
            values = [float(r[key]) for r in runs if key in r]
            cells.append(_mean_std(values))
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_std(values: Sequence[float]) -> str:
    if not values:
        return "–"
    if all(v == values[0] for v in values):
        v = values[0]
        return f"{int(v):,}" if v == int(v) and abs(v) >= 1 else f"{v:.4g}"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.4g}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.4g} ± {std:.2g}"
