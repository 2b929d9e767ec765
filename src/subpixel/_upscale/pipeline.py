"""Pre- and post-processing around a Y-channel model, as its weights file asks.

A weights file may carry the JSON metadata key ``subpixel.pipeline``; absent, the paper's
processing is used (BT.601 studio-range YCbCr as MATLAB, MATLAB bicubic chroma). Models
imported from OpenCV's ``dnn_superres`` (``subpixel import-opencv``) say ``{"color":
"opencv-ycrcb", "chroma": "bilinear-opencv"}``: 8-bit images then go through
:func:`opencv_levels`, OpenCV's own uint8 processing, so that the output reproduces
``cv2.dnn_superres.DnnSuperResImpl.upsample`` to within one grey level (the network's float
rounding); 16-bit and float images use the same formulas in floating point.

Example:
    >>> p = Pipeline(color="opencv-ycrcb", chroma="bilinear-opencv")
    >>> Pipeline.from_json(p.to_json()) == p, p.opencv_exact
    (True, True)
    >>> Pipeline().to_json()
    '{"chroma": "bicubic-matlab", "color": "bt601-studio", "model_range": "unit"}'
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from subpixel._opencv_steps import bgr_to_ycrcb, from_unit, resize_linear, to_unit, ycrcb_to_bgr
from subpixel.color import COLOR_TRANSFORMS, color_transform
from subpixel.resize import resize_matrix
from subpixel.serialization import WeightsError, WeightsMeta, read_weights_meta

__all__ = ["PIPELINE_KEY", "Pipeline", "opencv_levels", "pipeline_of", "read_pipeline"]

#: The safetensors metadata key holding the pipeline JSON.
PIPELINE_KEY = "subpixel.pipeline"

_COLORS = COLOR_TRANSFORMS
_CHROMAS = ("bicubic-matlab", "bicubic-opencv", "bilinear-opencv")
_RANGES = ("unit",)


@dataclass(frozen=True)
class Pipeline:
    """How RGB is split into the model's Y and the chroma, and how chroma is resampled.

    Attributes:
        color: ``"bt601-studio"`` (:mod:`subpixel.color`, MATLAB's ``rgb2ycbcr``: Y in
            16..235 levels) or ``"opencv-ycrcb"`` (OpenCV ``COLOR_RGB2YCrCb`` on float
            images: full-range ``Y = 0.299 R + 0.587 G + 0.114 B``, chroma centred on 0.5).
        chroma: ``"bicubic-matlab"`` (:func:`subpixel.resize.imresize`, Keys a = -0.5,
            mirrored borders), ``"bicubic-opencv"`` (a = -0.75, replicated borders, as
            ``cv2.INTER_CUBIC`` and ``torch.nn.functional.interpolate(mode="bicubic")``;
            a float pipeline of one's own, *not* what ``dnn_superres`` does) or
            ``"bilinear-opencv"`` (``cv::resize``'s default ``INTER_LINEAR``: half-pixel
            centres, replicated borders; what ``dnn_superres`` does). Alpha channels are
            resampled the same way.
        model_range: the model's input/output scale; only ``"unit"`` ([0, 1]) exists.

    Raises:
        ValueError: on an unknown value.
    """

    color: str = "bt601-studio"
    chroma: str = "bicubic-matlab"
    model_range: str = "unit"

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("color", self.color, _COLORS),
            ("chroma", self.chroma, _CHROMAS),
            ("model_range", self.model_range, _RANGES),
        ):
            if value not in allowed:
                raise ValueError(f"pipeline {name}={value!r} is unknown; expected one of {allowed}")

    @property
    def opencv_exact(self) -> bool:
        """Whether 8-bit images go through :func:`opencv_levels` (``dnn_superres``'s steps)."""
        return self.color == "opencv-ycrcb" and self.chroma == "bilinear-opencv"

    def to_json(self) -> str:
        """The metadata value to store under :data:`PIPELINE_KEY` (sorted keys)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Pipeline:
        """Parse :meth:`to_json` output; missing fields take their defaults.

        Raises:
            ValueError: on malformed JSON, unknown fields or values.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"pipeline metadata is not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError("pipeline metadata must be a JSON object")
        unknown = sorted(set(data) - {"color", "chroma", "model_range"})
        if unknown:
            raise ValueError(f"pipeline metadata has unknown field(s) {unknown}")
        return cls(**{k: str(v) for k, v in data.items()})

    # -- the transforms, on (N, C, H, W) float tensors ------------------------------------

    def split(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RGB ``(N, 3, H, W)`` in [0, 1] → (luma ``(N, 1, H, W)``, chroma ``(N, 2, H, W)``)."""
        weight, bias = _affine(self.color, forward=True, dtype=rgb.dtype, device=str(rgb.device))
        ycc = F.conv2d(rgb, weight, bias)
        return ycc[:, :1], ycc[:, 1:]

    def merge(self, y: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`split` (no clamping)."""
        weight, bias = _affine(self.color, forward=False, dtype=y.dtype, device=str(y.device))
        return F.conv2d(torch.cat([y, chroma], dim=1), weight, bias)

    def resample(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        """Upscaling of ``(N, C, H, W)`` by the integer ``scale`` (chroma, alpha)."""
        if self.chroma == "bicubic-matlab":
            return _matlab_upscale(x, scale)
        if self.chroma == "bilinear-opencv":  # = cv::resize INTER_LINEAR when upscaling
            return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


@lru_cache(maxsize=32)
def _affine(
    color: str, *, forward: bool, dtype: torch.dtype, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """1×1 convolution weights and bias of the colour transform (cached)."""
    fwd, off, inv = color_transform(color)
    m, b = (fwd, off) if forward else (inv, -inv @ off)
    weight = torch.tensor(m, dtype=dtype, device=torch.device(device))[:, :, None, None]
    return weight, torch.tensor(b, dtype=dtype, device=torch.device(device))


@lru_cache(maxsize=8)
def _phase_kernels(scale: int) -> tuple[np.ndarray, int]:
    """MATLAB's bicubic ×scale weights per output phase: ``(scale, L)`` and the first offset.

    For an integer factor, output pixel ``s·j + k`` is ``Σ_t K[k, t] · x[j + first + t]``
    (with MATLAB's mirrored indices outside the image): read off the interior rows of
    :func:`subpixel.resize.resize_matrix`, so the weights are MATLAB's by construction.
    """
    n = 32
    m = resize_matrix(n, n * scale, float(scale), antialias=False).numpy()
    j = n // 2
    rows = [m[scale * j + k] for k in range(scale)]
    nz = [np.flatnonzero(r) - j for r in rows]
    first = int(min(r.min() for r in nz))
    last = int(max(r.max() for r in nz))
    kernels = np.zeros((scale, last - first + 1))
    for k, r in enumerate(rows):
        kernels[k, nz[k] - first] = r[nz[k] + j]
    return kernels, first


def _matlab_axis(x: torch.Tensor, scale: int, dim: int) -> torch.Tensor:
    """Upscale ``(B, 1, H, W)`` along ``dim`` (2 or 3) as a phase convolution + interleave."""
    kernels, first = _phase_kernels(scale)
    n, length = x.shape[dim], kernels.shape[1]
    aux = np.concatenate([np.arange(n), np.arange(n)[::-1]])
    index = torch.from_numpy(aux[np.mod(np.arange(first, first + n + length - 1), 2 * n)])
    padded = torch.index_select(x, dim, index.to(x.device))
    shape = (scale, 1, length, 1) if dim == 2 else (scale, 1, 1, length)
    weight = torch.tensor(kernels, dtype=x.dtype, device=x.device).view(shape)
    out = F.conv2d(padded, weight)  # (B, scale, H, W): channel k is phase k
    b, _, h, w = out.shape
    if dim == 2:
        return out.permute(0, 2, 1, 3).reshape(b, 1, h * scale, w)
    return out.permute(0, 2, 3, 1).reshape(b, 1, h, w * scale)


def _matlab_upscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """:func:`subpixel.resize.imresize` for integer upscaling, with banded (4-tap) weights.

    Same weights as ``imresize(x, scale)`` (rows first, mirrored borders), applied as a
    convolution per output phase instead of a dense matrix product, so large tiles stay
    cheap.
    """
    n, c, h, w = x.shape
    flat = x.reshape(n * c, 1, h, w)
    out = _matlab_axis(_matlab_axis(flat, scale, 2), scale, 3)
    return out.reshape(n, c, h * scale, w * scale)


def opencv_levels(
    levels: np.ndarray,
    y_model: Callable[[np.ndarray], np.ndarray],
    scale: int,
) -> np.ndarray:
    """``dnn_superres``'s processing of 8-bit images around a Y-channel model, bit for bit.

    RGB: ``cvtColor(RGB2YCrCb)`` on uint8 (integer arithmetic), times float32 ``1/255``, the
    model on Y, Cr/Cb by ``cv::resize`` (bilinear), times 255 rounded half to even and
    saturated, ``cvtColor(YCrCb2RGB)`` on uint8 (:mod:`subpixel._opencv_steps`).
    Grey: ``round(255 · model(level · 1/255))``. Alpha is resized bilinearly like chroma.

    Args:
        levels: ``(N, h, w, C)`` uint8, C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA.
        y_model: ``(N, 1, h, w)`` float32 in [0, 1] → ``(N, 1, s·h, s·w)`` float32.
        scale: the model's factor ``s``.

    Returns:
        ``(N, s·h, s·w, C)`` uint8.

    Example:
        >>> px = np.array([[[[255, 0, 0], [0, 0, 255]]]], np.uint8)      # red, blue
        >>> near = lambda y: y.repeat(2, axis=2).repeat(2, axis=3)
        >>> opencv_levels(px, near, 2)[0, 0].tolist()    # chroma is bilinear: mixed inside
        [[254, 0, 0], [202, 12, 76], [51, 0, 178], [0, 0, 254]]
    """
    n, h, w, c = levels.shape
    k = 1 if c in (1, 2) else 3
    if k == 1:
        y_unit = to_unit(levels[..., 0])
    else:
        ycc = bgr_to_ycrcb(np.ascontiguousarray(levels[..., 2::-1]))  # RGB → BGR → YCrCb
        y_unit = to_unit(ycc[..., 0])
    y_sr = np.asarray(y_model(np.ascontiguousarray(y_unit[:, None])), dtype=np.float32)
    if y_sr.shape != (n, 1, h * scale, w * scale):
        raise ValueError(
            f"the model gave {y_sr.shape} for a {(n, 1, h, w)} input; expected ×{scale}"
        )
    out = np.empty((n, h * scale, w * scale, c), dtype=np.uint8)
    for i in range(n):
        if k == 1:
            out[i, ..., 0] = from_unit(y_sr[i, 0])
        else:
            chroma = resize_linear(to_unit(ycc[i, ..., 1:]), scale)
            merged = from_unit(np.concatenate([y_sr[i, 0][..., None], chroma], axis=-1))
            out[i, ..., :3] = ycrcb_to_bgr(merged)[..., ::-1]
        if c in (2, 4):
            out[i, ..., k] = from_unit(resize_linear(to_unit(levels[i, ..., k]), scale))
    return out


def read_pipeline(path: str | os.PathLike[str]) -> Pipeline:
    """The :class:`Pipeline` stored in a ``.safetensors`` file's metadata (default if absent).

    Only the header is read (never unpickles).

    Raises:
        WeightsError: not a safetensors file, or malformed pipeline metadata.

    Example:
        >>> import os, tempfile, torch
        >>> from subpixel.serialization import save_weights
        >>> f = os.path.join(tempfile.mkdtemp(), "m.safetensors")
        >>> cv = Pipeline(color="opencv-ycrcb", chroma="bilinear-opencv")
        >>> save_weights(f, {"w": torch.ones(1)}, extra={PIPELINE_KEY: cv.to_json()})
        >>> read_pipeline(f) == cv
        True
    """
    return pipeline_of(read_weights_meta(path), path)


def pipeline_of(meta: WeightsMeta, path: str | os.PathLike[str]) -> Pipeline:
    """The :class:`Pipeline` in a weights file's metadata, already read (default if absent).

    Raises:
        WeightsError: malformed pipeline metadata, naming ``path``.
    """
    text = meta.raw.get(PIPELINE_KEY)
    if text is None:
        return Pipeline()
    try:
        return Pipeline.from_json(text)
    except ValueError as exc:
        raise WeightsError(f"{Path(path)}: {exc}") from None
