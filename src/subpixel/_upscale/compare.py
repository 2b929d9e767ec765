"""The comparison figure: input (nearest) | bicubic | model [| original], labelled.

Panels show the whole output when it is at most :data:`MAX_PANEL` pixels on each side,
else a central crop of that size (the title says so). With a reference (the original
high-resolution image) the bicubic and model panels carry their PSNR on the Y channel by
the SR protocol (:func:`subpixel.metrics.psnr`, ``scale`` pixels shaved), computed over the
panel's area.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from subpixel._upscale.pipeline import Pipeline
from subpixel._upscale.tiling import MIN_OVERLAP, from_unit, to_unit
from subpixel.metrics import psnr, quantize

__all__ = ["MAX_PANEL", "Window", "compare_path", "make_figure", "window_for"]

#: Largest panel side in output pixels.
MAX_PANEL = 1024


def compare_path(dst: str | os.PathLike[str]) -> Path:
    """Where the comparison figure of output ``dst`` goes: ``out/a.png`` → ``out/a.compare.png``."""
    p = Path(dst)
    return p.with_name(f"{p.stem}.compare.png")


@dataclass(frozen=True)
class Window:
    """An output-pixel rectangle aligned to the factor: rows ``y:y+h``, columns ``x:x+w``."""

    y: int
    x: int
    h: int
    w: int
    cropped: bool

    def take(self, row: int, rows: np.ndarray, out: np.ndarray) -> None:
        """Copy the part of output rows ``rows`` (starting at output row ``row``) into ``out``."""
        a, b = max(row, self.y), min(row + rows.shape[0], self.y + self.h)
        if a < b:
            out[a - self.y : b - self.y] = rows[a - row : b - row, self.x : self.x + self.w]


def window_for(height: int, width: int, scale: int, limit: int = MAX_PANEL) -> Window:
    """The panel window of a ``height × width`` output (central crop beyond ``limit``)."""
    h, w = min(height, limit), min(width, limit)
    h, w = max(scale, h - h % scale), max(scale, w - w % scale)
    y = ((height - h) // 2) // scale * scale
    x = ((width - w) // 2) // scale * scale
    return Window(y, x, min(h, height), min(w, width), (h, w) != (height, width))


def _rgb8(arr: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` any layout → RGB uint8 for display."""
    x = from_unit(torch.from_numpy(to_unit(arr)), np.dtype(np.uint8))
    c = x.shape[-1]
    if c in (1, 2):
        x = np.repeat(x[..., :1], 3, axis=-1)
    return np.ascontiguousarray(x[..., :3])


def _unit_chw(arr: np.ndarray) -> torch.Tensor:
    """Display layout → ``(C, H, W)`` float64 quantised to 8-bit levels (RGB or grey)."""
    t = torch.from_numpy(to_unit(arr)).double()
    c = t.shape[-1]
    t = t[..., :1] if c in (1, 2) else t[..., :3]
    return quantize(t.permute(2, 0, 1).contiguous())


def make_figure(
    lr: np.ndarray,
    sr: np.ndarray,
    window: Window,
    *,
    scale: int,
    pipeline: Pipeline,
    model_name: str = "ESPCN",
    reference: np.ndarray | None = None,
) -> Any:
    """Build the labelled comparison as a PIL RGB image.

    Args:
        lr: the whole input ``(H, W, C)``.
        sr: the model's output inside ``window`` ``(window.h, window.w, C)``.
        window: where ``sr`` lies in the output.
        scale: the factor.
        pipeline: gives the bicubic used for the bicubic panel (and alpha).
        model_name: the label of the model panel.
        reference: the original high-resolution image ``(H', W', C')``, about ``s·H × s·W``.

    Raises:
        ValueError: if ``reference`` does not have (about) the output's size.
    """
    from PIL import Image, ImageDraw, ImageFont

    s = scale
    hh, ww = lr.shape[0] * s, lr.shape[1] * s
    ly0, lx0 = window.y // s, window.x // s
    ly1, lx1 = -(-(window.y + window.h) // s), -(-(window.x + window.w) // s)
    ya, yb = max(0, ly0 - MIN_OVERLAP), min(lr.shape[0], ly1 + MIN_OVERLAP)
    xa, xb = max(0, lx0 - MIN_OVERLAP), min(lr.shape[1], lx1 + MIN_OVERLAP)
    block = torch.from_numpy(to_unit(lr[ya:yb, xa:xb])).permute(2, 0, 1)[None]
    bic = pipeline.resample(block, s)[0].permute(1, 2, 0)
    oy, ox = window.y - ya * s, window.x - xa * s
    bicubic = from_unit(bic[oy : oy + window.h, ox : ox + window.w], np.dtype(sr.dtype))
    nearest = np.repeat(np.repeat(lr[ly0:ly1], s, axis=0), s, axis=1)
    nearest = nearest[window.y - ly0 * s :][: window.h, window.x - lx0 * s :][:, : window.w]

    labels = ["input (nearest)", "bicubic", f"{model_name} x{s}"]
    panels = [nearest, bicubic, sr]
    if reference is not None:
        rh, rw = reference.shape[:2]
        if abs(rh - hh) >= s or abs(rw - ww) >= s:
            raise ValueError(
                f"reference is {rw}×{rh} but the output is {ww}×{hh}; give the original "
                "image the input was made from"
            )
        h = min(window.h, rh - window.y)
        w = min(window.w, rw - window.x)
        ref = reference[window.y : window.y + h, window.x : window.x + w]
        grey = all(a.shape[-1] in (1, 2) for a in (ref, sr))
        hr_t = _unit_chw(_rgb8(ref) if not grey else ref)
        for i in (1, 2):
            img = panels[i][:h, :w]
            sr_t = _unit_chw(_rgb8(img) if not grey else img)
            try:
                value = psnr(sr_t, hr_t, shave=s)
                labels[i] += f"  PSNR {value:.2f} dB"
            except ValueError:  # too small to shave
                pass
        labels.append("original")
        panels.append(ref)

    font = ImageFont.load_default()
    pad, bar = 4, 16
    width = sum(p.shape[1] for p in panels) + pad * (len(panels) + 1)
    height = max(p.shape[0] for p in panels) + bar + 2 * pad + (bar if window.cropped else 0)
    fig = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(fig)
    top = pad
    if window.cropped:
        draw.text(
            (pad, top),
            f"central crop {window.w}×{window.h} of {ww}×{hh} at ({window.x}, {window.y})",
            fill=(0, 0, 0),
            font=font,
        )
        top += bar
    x = pad
    for label, panel in zip(labels, panels, strict=True):
        draw.text((x, top), label, fill=(0, 0, 0), font=font)
        fig.paste(Image.fromarray(_rgb8(panel), "RGB"), (x, top + bar))
        x += panel.shape[1] + pad
    return fig
