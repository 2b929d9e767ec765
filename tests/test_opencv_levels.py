"""The fused OpenCV steps (``subpixel._opencv_levels``, :class:`subpixel.fast.OpenCVUpscaler`).

Compared with :func:`subpixel.interop.opencv_upsample`, the numpy reference that reproduces
``dnn_superres`` bit for bit around the model's own PyTorch layers (live OpenCV is compared
in tests/test_interop_opencv.py); and every entry point must refuse buffers that do not fit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from subpixel.fast import OpenCVUpscaler, opencv_kernel, optimize_for_inference
from subpixel.interop import opencv_upsample
from subpixel.models.espcn import ESPCN
from subpixel.upscale import Pipeline, Upscaler

pytestmark = pytest.mark.skipif(opencv_kernel() is None, reason="_opencv_levels not built")

_OPENCV = Pipeline(color="opencv-ycrcb", chroma="bilinear-opencv")


def _model(scale: int) -> ESPCN:
    """An ESPCN with OpenCV's imported shape: tanh inside and at the output."""
    m = ESPCN(scale, activation="tanh", output_activation="tanh").eval()
    g = torch.Generator().manual_seed(scale)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.08 if p.dim() > 1 else 0.05))
    return m


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = rng.integers(0, 256, (h // 4 + 2, w // 4 + 2, 3)).repeat(4, 0).repeat(4, 1)[:h, :w]
    return np.clip(smooth + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 1), (37, 53)])
def test_equals_the_numpy_reference(scale: int, size: tuple[int, int]) -> None:
    model = _model(scale)
    rgb = _rgb(*size, seed=scale)
    ours = OpenCVUpscaler(optimize_for_inference(model))(rgb)
    ref = opencv_upsample(model, rgb, order="rgb")
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert ours.shape == ref.shape and diff.max() <= 1  # a float network's last bit, rarely
    assert (diff > 0).mean() < 1e-3


@pytest.mark.parametrize("tile", [0, 16])
def test_upscaler_takes_the_fused_path_for_opencv_processing(tile: int) -> None:
    model = _model(3)
    up = Upscaler(model, pipeline=_OPENCV, tile=tile)
    assert up.backend.fused is None and up.engine.uses_rgb8(np.zeros((1, 2, 2, 3), np.uint8))
    assert "OpenCV's integer steps" in up.backend.describe()
    rgb = _rgb(40, 45, seed=1)
    ref = opencv_upsample(model, rgb, order="rgb")
    assert np.abs(up(rgb).astype(int) - ref.astype(int)).max() <= 1
    strided = rgb.transpose(1, 0, 2).copy().transpose(1, 0, 2)  # the same pixels, other strides
    assert np.array_equal(up(strided), up(rgb))
    # RGBA keeps OpenCV's steps in numpy (alpha resized like chroma): the same colours
    rgba = np.concatenate([rgb, np.full((40, 45, 1), 200, np.uint8)], axis=-1)
    assert np.abs(up(rgba)[..., :3].astype(int) - ref.astype(int)).max() <= 1


def _buffers(h: int = 4, w: int = 5, s: int = 2) -> dict[str, np.ndarray]:
    return {
        "rgb": np.zeros((h, w, 3), np.uint8),
        "y": np.zeros((h, w), np.float32),
        "cr": np.zeros((h, w), np.uint8),
        "cb": np.zeros((h, w), np.uint8),
        "phases": np.zeros((h * w, s * s), np.float32),
        "out": np.zeros((s * h, s * w, 3), np.uint8),
    }


def test_pre_and_post_accept_fitting_buffers() -> None:
    k, b = opencv_kernel(), _buffers()
    assert k is not None
    b["rgb"][:] = 255
    k.pre(b["rgb"], b["y"], b["cr"], b["cb"], 2)
    assert np.all(b["y"] == np.float32(255) * np.float32(1 / 255)) and np.all(b["cr"] == 128)
    b["phases"][:] = 1.0
    k.post(b["phases"].T.copy().T, 1.0, 0.0, b["cr"], b["cb"], 2, b["out"], 2)  # any strides
    assert np.all(b["out"] == 255)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("pre", "rgb"),  # each entry: a buffer replaced by one that does not fit
        ("pre", "y"),
        ("pre", "cr"),
        ("post", "phases"),
        ("post", "cb"),
        ("post", "out"),
    ],
)
@pytest.mark.parametrize("wrong", ["shape", "stride", "dtype", "ndim"])
def test_every_entry_point_refuses_buffers_that_do_not_fit(
    call: str, message: str, wrong: str
) -> None:
    k, b = opencv_kernel(), _buffers()
    assert k is not None
    good = b[message]
    if wrong == "shape":
        bad = np.zeros(tuple(n + 1 for n in good.shape), good.dtype)
    elif wrong == "stride":  # a view that skips elements: the same shape, wrong strides
        wide = np.zeros((good.shape[0], 2 * good.shape[1], *good.shape[2:]), good.dtype)
        bad = wide[:, ::2]
        if message == "phases":  # a column stride is fine there; a shape-changing view is not
            bad = np.zeros((good.shape[0] + 3, good.shape[1]), good.dtype)[::2]
    elif wrong == "dtype":
        bad = good.astype(np.float64 if good.dtype == np.float32 else np.int16)
    else:
        bad = good[..., None]
    b[message] = bad
    with pytest.raises(ValueError, match=message):
        if call == "pre":
            k.pre(b["rgb"], b["y"], b["cr"], b["cb"], 2)
        else:
            k.post(b["phases"], 1.0, 0.0, b["cr"], b["cb"], 2, b["out"], 2)


def test_read_only_outputs_and_bad_scales_are_refused() -> None:
    k, b = opencv_kernel(), _buffers()
    assert k is not None
    b["out"].flags.writeable = False
    with pytest.raises((ValueError, BufferError, TypeError)):
        k.post(b["phases"], 1.0, 0.0, b["cr"], b["cb"], 2, b["out"], 2)
    b = _buffers()
    with pytest.raises(ValueError, match=r"out|phases"):
        k.post(b["phases"], 1.0, 0.0, b["cr"], b["cb"], 3, b["out"], 2)
    with pytest.raises(ValueError, match="scale"):
        k.post(b["phases"], 1.0, 0.0, b["cr"], b["cb"], 0, b["out"], 2)


@pytest.mark.parametrize("scale", [2, 3, 4, 5])
def test_every_isa_copy_of_post_equals_the_numpy_steps_bit_for_bit(scale: int) -> None:
    """``pre`` + ``post`` against :func:`subpixel._upscale.pipeline.opencv_levels` (OpenCV's
    steps in numpy) with the same Y values, for each copy of the loops the CPU runs (plain
    C, AVX2, AVX-512): the phases go straight in, so no float network can flip a bit."""
    from subpixel._upscale.pipeline import opencv_levels

    k = opencv_kernel()
    assert k is not None
    h, w = 23, 41  # odd sizes: loop tails and borders on both axes
    rgb = _rgb(h, w, seed=scale)
    rng = np.random.default_rng(scale)
    # values around and beyond [0, 1] (saturation), and some near ties of 255·v
    phases = rng.uniform(-0.1, 1.1, (h * w, scale * scale)).astype(np.float32)
    phases[1, : scale * scale] = (np.arange(scale * scale, dtype=np.float32) + 100.5) / 255

    def y_model(y: np.ndarray) -> np.ndarray:  # the phases, shuffled into the output grid
        grid = phases.reshape(h, w, scale, scale).transpose(0, 2, 1, 3)
        return grid.reshape(1, 1, h * scale, w * scale)

    ref = opencv_levels(rgb[None], y_model, scale)[0]
    y, cr, cb = (np.empty((h, w), t) for t in (np.float32, np.uint8, np.uint8))
    k.pre(rgb, y, cr, cb, 2)
    limit = k.set_isa(2)
    try:
        for isa in range(limit + 1):
            k.set_isa(isa)
            if k.isa() != isa:
                continue  # this CPU lacks that level
            out = np.empty((h * scale, w * scale, 3), np.uint8)
            k.post(phases, 1.0, 0.0, cr, cb, scale, out, 2)
            np.testing.assert_array_equal(out, ref, err_msg=f"isa {isa}")
    finally:
        k.set_isa(limit)
