"""OpenCV ``dnn_superres`` pre- and post-processing, reproduced bit for bit in numpy.

``cv2.dnn_superres.DnnSuperResImpl.upsample`` runs an ESPCN/FSRCNN graph like this
(``modules/dnn_superres/src/dnn_superres.cpp``, checked against OpenCV 5.0's wheel):

1. ``cvtColor(BGR2YCrCb)`` on the **uint8** image (integer arithmetic, 14-bit coefficients,
   full range: ``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cr = 0.713 (R - Y) + 128``,
   ``Cb = 0.564 (B - Y) + 128``), then ``convertTo(CV_32F, 1/255)``: each level times the
   float32 constant ``1/255``;
2. the network on the Y plane, ``(1, 1, H, W)`` in [0, 1];
3. Cr and Cb upscaled with ``cv::resize(..., scale, scale)`` whose default interpolation is
   **bilinear** (``INTER_LINEAR``: half-pixel centres, replicated border), in float32;
4. the three planes merged, ``convertTo(CV_8U, 255)``: times 255 in float32, rounded half
   to even, saturated to 0..255;
5. ``cvtColor(YCrCb2BGR)`` on uint8 (integer arithmetic again).

A single-channel (grey) uint8 image skips the colour steps: ``Y = level · (1/255)``, and
the output is ``round(255 · model(Y))``.

Every step here equals OpenCV's to the bit (the colour conversions were checked on all
2²⁴ colours, the resize on random images), so :func:`opencv_upsample` differs from
``DnnSuperResImpl.upsample`` only where the network's float32 output itself differs
between PyTorch and OpenCV's ``dnn`` (≈1e-6) and that flips a rounding: at most one grey
level, on a handful of pixels.

Example:
    >>> import numpy as np, torch
    >>> bgr = np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8)   # blue, red
    >>> bgr_to_ycrcb(bgr).tolist()
    [[[29, 107, 255], [76, 255, 85]]]
    >>> ycrcb_to_bgr(bgr_to_ycrcb(bgr)).tolist()
    [[[254, 0, 0], [0, 0, 254]]]
    >>> opencv_upsample(torch.nn.Upsample(scale_factor=2), bgr).shape
    (2, 4, 3)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from subpixel._opencv_steps import (  # the steps themselves, shared with the upscale pipeline
    bgr_to_ycrcb,
    from_unit,
    resize_linear,
    to_unit,
    ycrcb_to_bgr,
)

__all__ = [
    "bgr_to_ycrcb",
    "from_unit",
    "opencv_upsample",
    "resize_linear",
    "to_unit",
    "ycrcb_to_bgr",
]


@torch.no_grad()
def _run_y(model: nn.Module, y: np.ndarray, device: torch.device | str | None) -> np.ndarray:
    params = list(model.parameters())
    dev = torch.device(device) if device is not None else (params[0].device if params else "cpu")
    x = torch.from_numpy(np.ascontiguousarray(y))[None, None].to(dev)
    out = model(x)
    if out.dim() != 4 or out.shape[:2] != (1, 1):
        raise ValueError(
            f"the model must map (1, 1, H, W) to (1, 1, sH, sW), got {tuple(out.shape)}"
        )
    return out[0, 0].float().cpu().numpy()


def opencv_upsample(
    model: nn.Module,
    image: np.ndarray,
    *,
    order: str = "bgr",
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Upscale a uint8 image exactly as ``cv2.dnn_superres.DnnSuperResImpl.upsample`` does.

    Args:
        model: a Y-channel model, ``(1, 1, H, W)`` in [0, 1] to ``(1, 1, s·H, s·W)`` (e.g.
            from :func:`subpixel.interop.load_opencv`); it is run in its current mode.
        image: ``(H, W, 3)`` colour or ``(H, W)`` grey, uint8.
        order: ``"bgr"`` (OpenCV's) or ``"rgb"``: the channel order of ``image`` and of the
            result.
        device: where to run the model (default: where its parameters are).

    Returns:
        ``(s·H, s·W, 3)`` or ``(s·H, s·W)`` uint8, in ``order``.

    Raises:
        TypeError: ``image`` is not uint8. ValueError: bad shape, order or model output.

    Example:
        >>> import torch
        >>> grey = np.array([[0, 128], [255, 64]], np.uint8)
        >>> opencv_upsample(torch.nn.Upsample(scale_factor=2), grey)[0].tolist()
        [0, 0, 128, 128]
    """
    if order not in ("bgr", "rgb"):
        raise ValueError(f"order must be 'bgr' or 'rgb', got {order!r}")
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise TypeError(f"image must be a uint8 numpy array, got {getattr(image, 'dtype', image)}")
    if image.ndim == 2:
        return from_unit(_run_y(model, to_unit(image), device))
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) or (H, W), got shape {image.shape}")
    bgr = image if order == "bgr" else image[..., ::-1]
    ycc = to_unit(bgr_to_ycrcb(bgr))
    y_sr = _run_y(model, ycc[..., 0], device)
    scale = y_sr.shape[0] // image.shape[0]
    if y_sr.shape != (image.shape[0] * scale, image.shape[1] * scale):
        raise ValueError(
            f"the model output {y_sr.shape} is not an integer multiple of the input "
            f"{image.shape[:2]}"
        )
    chroma = resize_linear(ycc[..., 1:], scale)
    merged = from_unit(np.concatenate([y_sr[..., None], chroma], axis=-1))
    out = ycrcb_to_bgr(merged)
    return out if order == "bgr" else np.ascontiguousarray(out[..., ::-1])
