"""Face super-resolution measured on held-out people: ``subpixel experiment faces``.

The protocol (the issue's calibration, on the held-out people of :mod:`.faces_split`):

* ground truth: the 128×128 centre crop of each image (:func:`.faces_training.face_crop`;
  LFW's 150×150 images lose 11 pixels a side), 8-bit RGB;
* input: its 32×32 downscaling by the project's MATLAB bicubic
  (:func:`subpixel.resize.imresize`, antialiased), rounded to 8 bits;
* every method's output is rounded to 8 bits and scored with :func:`subpixel.metrics.psnr`
  and :func:`~subpixel.metrics.ssim` with 4 pixels shaved, in RGB (SSIM: the mean of the
  three channels') and on BT.601 luma Y; the tables give the mean over images.

Methods (:data:`METHOD_ORDER`): ``bicubic`` (``imresize`` ×4), ``default`` (the DEFAULT
general ×4 model through :class:`subpixel.upscale.Upscaler`, as ``subpixel.upscale(img,
scale=4)`` runs it on the RGB crop: Y through the model, chroma bicubic; exact fp32),
``original`` (a ``subpixel-faces`` weights file: the original project's model, in [-1, 1])
and ``ours`` (any other weights file, through ``Upscaler``: an RGB ``espcn`` face model is run
on the three channels).

:func:`run_faces_experiment` writes ``result.json`` (flat keys ``<method>_psnr_rgb``,
``<method>_ssim_rgb``, ``<method>_psnr_y``, ``<method>_ssim_y``, plus the counts, the split
rule and the command) and ``grid.png``: one row per sample face, columns input
(nearest-neighbour ×4) | bicubic | DEFAULT | original | ours | ground truth (the methods
run), like the original project's sample grids.

Example:
    >>> import torch
    >>> hr = torch.rand(2, 3, 128, 128).mul(255).round().div(255)
    >>> lr = torch.rand(2, 3, 32, 32)
    >>> scores = evaluate_faces(lr, hr, {"bicubic": bicubic_method()})
    >>> sorted(scores["bicubic"])
    ['psnr_rgb', 'psnr_y', 'ssim_rgb', 'ssim_y']
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from subpixel.applications.experiments import _environment, image_grid, save_png, write_json
from subpixel.applications.faces_split import SPLIT_RULES, describe_rule, face_split, person_of
from subpixel.applications.faces_training import (
    HR_SIZE,
    SCALE,
    _degrade,
    face_crop,
    face_forward,
    single_thread,
)
from subpixel.bundled import DEFAULT
from subpixel.metrics import psnr, quantize, ssim
from subpixel.resize import imresize

__all__ = [
    "METHOD_LABELS",
    "METHOD_ORDER",
    "FacesExperimentConfig",
    "Method",
    "bicubic_method",
    "default_faces_dir",
    "default_method",
    "evaluate_faces",
    "faces_grid",
    "load_face_pairs",
    "module_method",
    "run_faces_experiment",
    "score_face",
    "summary",
    "weights_method",
]

#: ``(N, 3, 32, 32)`` inputs in [0, 1] → ``(N, 3, 128, 128)`` outputs in [0, 1].
Method = Callable[[torch.Tensor], torch.Tensor]

#: The order of the methods in tables and grids.
METHOD_ORDER = ("bicubic", "default", "original", "ours", "model")
METHOD_LABELS = {
    "bicubic": "bicubic (MATLAB imresize)",
    "default": f"DEFAULT general ×4 ({DEFAULT}, Y)",
    "original": "original (subpixel-faces)",
    "ours": "face model",
    "model": "this model",
}
_SHAVE = SCALE


def default_faces_dir() -> Path:
    """``$SUBPIXEL_DATA/faces/lfw``.

    Raises:
        ValueError: ``SUBPIXEL_DATA`` is not set.
    """
    root = os.environ.get("SUBPIXEL_DATA")
    if not root:
        raise ValueError("no data folder: pass --data DIR (face images) or set SUBPIXEL_DATA")
    return Path(root) / "faces" / "lfw"


def load_face_pairs(
    paths: Sequence[str | os.PathLike[str]], crop: int = 128
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(N, 3, 32, 32)`` and targets ``(N, 3, 128, 128)``, float32 on 8-bit levels."""
    with single_thread():
        hr = torch.stack([face_crop(p, crop) for p in paths])
        return _degrade(hr), hr


def bicubic_method() -> Method:
    """MATLAB bicubic ×4 (:func:`~subpixel.resize.imresize`, in float64)."""

    def run(lr: torch.Tensor) -> torch.Tensor:
        return imresize(lr.double(), float(SCALE)).float()

    return run


def _upscaler_method(weights: Any) -> Method:
    from subpixel.upscale import Upscaler

    up = Upscaler(weights, SCALE, precision="fp32", tile=0)

    def run(lr: torch.Tensor) -> torch.Tensor:
        return up(lr.float().clamp(0, 1))

    return run


def default_method() -> Method:
    """The DEFAULT general ×4 model, as ``subpixel.upscale(img, scale=4)`` runs it (fp32)."""
    return _upscaler_method("DEFAULT")


def module_method(model: nn.Module, *, signed: bool = False) -> Method:
    """A face model called directly (``signed``: it works in [-1, 1], as ``subpixel-faces``)."""

    def run(lr: torch.Tensor) -> torch.Tensor:
        return face_forward(model, lr, signed=signed)

    return run


def weights_method(path: str | os.PathLike[str]) -> Method:
    """A weights file or bundled name: ``subpixel-faces`` run in [-1, 1], anything else
    through ``Upscaler``."""
    from subpixel.bundled import find, weights_path
    from subpixel.models import get_model
    from subpixel.serialization import read_weights_meta

    if find(path) is not None:
        path = weights_path(str(path), SCALE)
    if read_weights_meta(path).model == "subpixel-faces":
        return module_method(get_model("subpixel-faces", weights=path).eval(), signed=True)
    return _upscaler_method(path)


def score_face(sr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
    """PSNR/SSIM in RGB and Y of one 8-bit output, 4 pixels shaved (both quantised first).

    Example:
        >>> import torch
        >>> hr = torch.rand(3, 32, 32)
        >>> score_face(hr, hr)["psnr_rgb"]
        inf
    """
    a, b = quantize(sr.double()), quantize(hr.double())
    return {
        "psnr_rgb": psnr(a, b, shave=_SHAVE, y_only=False),
        "ssim_rgb": ssim(a, b, shave=_SHAVE, y_only=False),
        "psnr_y": psnr(a, b, shave=_SHAVE, y_only=True),
        "ssim_y": ssim(a, b, shave=_SHAVE, y_only=True),
    }


def _outputs(method: Method, lr: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([method(lr[i : i + batch]) for i in range(0, len(lr), batch)])


@torch.no_grad()
def evaluate_faces(
    lr: torch.Tensor,
    hr: torch.Tensor,
    methods: Mapping[str, Method],
    *,
    batch: int = 64,
    per_image: dict[str, list[dict[str, float]]] | None = None,
) -> dict[str, dict[str, float]]:
    """Mean PSNR/SSIM (RGB and Y, 4 pixels shaved) of each method over the face pairs.

    Args:
        lr: inputs ``(N, 3, 32, 32)`` in [0, 1].
        hr: targets ``(N, 3, 128, 128)`` in [0, 1].
        methods: name → :data:`Method`.
        batch: images per call of a method.
        per_image: filled with every image's scores per method when given.

    Returns:
        ``{method: {"psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y"}}``.
    """
    if lr.ndim != 4 or hr.ndim != 4 or len(lr) != len(hr) or len(lr) == 0:
        raise ValueError(f"expected N >= 1 pairs, got {tuple(lr.shape)} and {tuple(hr.shape)}")
    results: dict[str, dict[str, float]] = {}
    for name, method in methods.items():
        out = _outputs(method, lr, batch)
        if out.shape != hr.shape:
            raise ValueError(f"{name}: output {tuple(out.shape)}, expected {tuple(hr.shape)}")
        with single_thread():
            scores = [score_face(o, h) for o, h in zip(out, hr, strict=True)]
        if per_image is not None:
            per_image[name] = scores
        results[name] = {k: sum(s[k] for s in scores) / len(scores) for k in scores[0]}
    return results


@torch.no_grad()
def faces_grid(lr: torch.Tensor, hr: torch.Tensor, methods: Mapping[str, Method]) -> torch.Tensor:
    """Rows of input (nearest ×4) | each method | ground truth, as one ``(3, H, W)`` image."""
    columns = [F.interpolate(lr, scale_factor=SCALE, mode="nearest")]
    columns += [quantize(m(lr).float()) for m in methods.values()]
    columns.append(hr)
    tiles = torch.stack(columns, dim=1).reshape(-1, 3, HR_SIZE, HR_SIZE)
    return image_grid(tiles, len(columns))


@dataclass(frozen=True)
class FacesExperimentConfig:
    """One ``subpixel experiment faces`` run.

    Attributes:
        data: the face folder (default ``$SUBPIXEL_DATA/faces/lfw``).
        out: output folder (default ``subpixel-experiments/faces``).
        weights: the face model to measure (``ours``), a ``.safetensors`` file.
        original: a ``subpixel-faces`` weights file (the original project's model).
        split: ``"lfw"``: the held-out people of :mod:`.faces_split`; ``"none"``:
            every image of ``data`` (another face set, or the issue's calibration).
        crop: centre-crop size before resizing to 128×128.
        every: keep every N-th image (sorted by path) of the chosen ones.
        limit: keep at most this many (after ``every``).
        default: measure the DEFAULT general ×4 model too.
        grid: faces shown in ``grid.png`` (evenly spaced through the images; 0: no grid).
    """

    data: str | None = None
    out: str | None = None
    weights: str | None = None
    original: str | None = None
    split: str = "lfw"
    crop: int = 128
    every: int = 1
    limit: int | None = None
    default: bool = True
    grid: int = 8

    def __post_init__(self) -> None:
        if self.split not in (*SPLIT_RULES, "none"):
            raise ValueError(f"split must be one of {(*SPLIT_RULES, 'none')}, got {self.split!r}")
        if self.every < 1 or (self.limit is not None and self.limit < 1) or self.grid < 0:
            raise ValueError("every and limit must be >= 1, grid >= 0")


def run_faces_experiment(cfg: FacesExperimentConfig, *, command: str = "") -> dict[str, Any]:
    """Measure bicubic, DEFAULT, the original and a face model; write result.json, grid.png."""
    from subpixel.data import find_images

    start = time.perf_counter()
    data = Path(cfg.data) if cfg.data else default_faces_dir()
    if cfg.split == "none":
        paths = find_images([data])
    else:
        _, paths = face_split([data], cfg.split)
    paths = paths[:: cfg.every][: cfg.limit]
    lr, hr = load_face_pairs(paths, cfg.crop)
    methods: dict[str, Method] = {"bicubic": bicubic_method()}
    if cfg.default:
        methods["default"] = default_method()
    if cfg.original:
        methods["original"] = weights_method(cfg.original)
    if cfg.weights:
        methods["ours"] = weights_method(cfg.weights)
    scores = evaluate_faces(lr, hr, methods)
    out = Path(cfg.out or "subpixel-experiments/faces")
    out.mkdir(parents=True, exist_ok=True)
    shown: list[int] = []
    if cfg.grid:
        stride = max(len(paths) // cfg.grid, 1)
        shown = list(range(0, len(paths), stride))[: cfg.grid]
        save_png(out / "grid.png", faces_grid(lr[shown], hr[shown], methods))
    result: dict[str, Any] = {
        "experiment": "faces",
        "data": str(data),
        "split": cfg.split,
        "split_rule": describe_rule(cfg.split) if cfg.split != "none" else "every image",
        "every": cfg.every,
        "crop": cfg.crop,
        "images": len(paths),
        "people": len({person_of(p) for p in paths}),
        "protocol": "128x128 centre crops; 32x32 input by MATLAB bicubic (imresize), 8-bit; "
        "outputs rounded to 8 bits; PSNR/SSIM with 4 pixels shaved, RGB and BT.601 Y; "
        "mean over images",
        "methods": list(methods),
        "weights": {"ours": cfg.weights, "original": cfg.original},
    }
    for name, m in scores.items():
        result.update({f"{name}_{k}": v for k, v in m.items()})
    if "default" in scores:
        for name in ("original", "ours"):
            if name in scores:
                gain = scores[name]["psnr_rgb"] - scores["default"]["psnr_rgb"]
                result[f"{name}_gain_over_default_psnr_rgb"] = gain
    if shown:
        result["grid"] = "grid.png"
        result["grid_columns"] = ["input (nearest ×4)", *methods, "ground truth"]
        result["grid_images"] = [Path(paths[i]).name for i in shown]
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["command"] = command
    result.update(_environment())
    write_json(out / "result.json", result)
    return result


def summary(result: Mapping[str, Any]) -> str:
    """A Markdown table of a :func:`run_faces_experiment` result."""
    lines = [
        "| method | PSNR RGB | SSIM RGB | PSNR Y | SSIM Y |",
        "|---|---|---|---|---|",
    ]
    for name in result["methods"]:
        lines.append(
            f"| {METHOD_LABELS.get(name, name)} | {result[f'{name}_psnr_rgb']:.2f} | "
            f"{result[f'{name}_ssim_rgb']:.4f} | {result[f'{name}_psnr_y']:.2f} | "
            f"{result[f'{name}_ssim_y']:.4f} |"
        )
    return "\n".join(lines)
