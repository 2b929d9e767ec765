"""The fast inference path equals the plain model path (fp32) or stays close to it (int8).

References are independent of :mod:`subpixel.fast`: the model's own ``forward`` in float64,
:mod:`subpixel.color` (MATLAB's rgb2ycbcr), :func:`subpixel.resize.imresize` (MATLAB
bicubic), ``F.interpolate`` (OpenCV/PyTorch bicubic) and OpenCV's documented YCrCb
formulas. No timing is asserted here (see ``benchmarks/bench_espcn.py``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from subpixel.color import rgb_to_ycbcr, ycbcr_to_rgb
from subpixel.fast import FastUpscaler, optimize_for_inference, polyphase_taps
from subpixel.fast._kernels import conv3x3 as k_conv3x3
from subpixel.fast._kernels import pipeline as k_pipeline
from subpixel.fast._kernels import winograd as k_winograd
from subpixel.models.espcn import ESPCN
from subpixel.resize import imresize


def _model(scale: int, activation: str = "tanh", **kw: object) -> ESPCN:
    m = ESPCN(scale, activation=activation, **kw).eval()  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(scale)
    with torch.no_grad():
        for p in m.parameters():  # weights of trained-network magnitude, all layers active
            p.copy_(torch.randn(p.shape, generator=g) * (0.08 if p.dim() > 1 else 0.05))
    return m


def _smooth_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """An image-like (1, 1, h, w) Y in [0, 1]: blurred noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, h + 6, w + 6, generator=g)
    return F.avg_pool2d(x, 7, stride=1).clamp(0, 1)


def _reference(model: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """The module's own forward, in float64 (the module is restored to float32)."""
    with torch.no_grad():
        out: torch.Tensor = model.double()(y.double())
    model.float()
    return out


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_fp32_equals_model(scale: int, activation: str) -> None:
    model = _model(scale, activation)
    y = torch.cat([_smooth_image(19, 23, seed=1), _smooth_image(19, 23, seed=2)])
    fast = optimize_for_inference(model)
    assert fast.precision == "fp32" and fast.scale == scale
    out = fast(y)
    assert out.shape == (2, 1, 19 * scale, 23 * scale) and out.dtype == torch.float32
    assert (out.double() - _reference(model, y)).abs().max().item() < 1e-5


@pytest.mark.skipif(not k_winograd.simd(), reason="no SIMD copy of subpixel._winograd")
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("kind", ["tanh", "relu", "relu+bicubic"])
def test_fp32_compiled_kernels_and_fallback_both_equal_model(scale: int, kind: str) -> None:
    """The compiled path (Winograd, first-layer and direct kernels, residual fused) and the
    PyTorch/NNPACK path it replaces (taken where the Winograd kernel has no SIMD copy)."""
    from subpixel import _winograd  # type: ignore[attr-defined]

    activation, _, residual = kind.partition("+")
    model = _model(scale, activation, residual=residual or None)
    y = _smooth_image(61, 75, seed=scale)  # several bands, tiles cut at both borders
    ref = _reference(model, y)
    compiled = optimize_for_inference(model)
    assert compiled.backend == "cpu-winograd-f4x4"
    limit = _winograd.set_isa(0)
    try:
        fallback = optimize_for_inference(model)
    finally:
        _winograd.set_isa(limit)
    assert fallback.backend != compiled.backend
    for fast in (compiled, fallback):
        assert (fast(y).double() - ref).abs().max().item() < 1e-5, fast.backend


@pytest.mark.skipif(not k_winograd.simd(), reason="no SIMD copy of subpixel._winograd")
@pytest.mark.parametrize("scale", [2, 3])
def test_fp32_compiled_path_with_the_avx2_copies(scale: int) -> None:
    """The copies AVX2-only CPUs run (8-float transforms, 256-bit products), end to end."""
    from subpixel import _conv3x3, _conv_first, _winograd  # type: ignore[attr-defined]

    model = _model(scale, "relu", residual="bicubic")
    y = _smooth_image(45, 70, seed=scale)
    modules = (_winograd, _conv_first, _conv3x3)
    limits = [m.set_isa(1) for m in modules]
    try:
        assert all(m.isa() == 1 for m in modules)
        fast = optimize_for_inference(model)
        assert fast.backend == "cpu-winograd-f4x4"
        out = fast(y)
    finally:
        for m, limit in zip(modules, limits, strict=True):
            m.set_isa(limit)
    assert (out.double() - _reference(model, y)).abs().max().item() < 1e-5


@pytest.mark.parametrize("order", ["hwc", "cwh"])
@pytest.mark.parametrize("output_activation", ["tanh", "relu"])
def test_fp32_any_order_and_output_activation(order: str, output_activation: str) -> None:
    model = _model(3, "relu", order=order, output_activation=output_activation)
    y = _smooth_image(11, 9)
    diff = optimize_for_inference(model)(y).double() - _reference(model, y)
    assert diff.abs().max().item() < 1e-5


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_fp32_and_int8_bicubic_residual(scale: int, activation: str) -> None:
    """``residual="bicubic"`` adds F.interpolate's bicubic upscaling of the input."""
    model = _model(scale, activation, residual="bicubic")
    y = _smooth_image(13, 17, seed=scale)
    ref = _reference(model, y)
    assert (optimize_for_inference(model)(y).double() - ref).abs().max().item() < 1e-5
    int8 = optimize_for_inference(model, precision="int8")(y)
    assert _psnr(int8.clamp(0, 1), ref.clamp(0, 1)) > 40.0
    rgb = _rgb(11, 14, seed=scale)
    out = FastUpscaler(model)(rgb)
    assert _max_level_diff(out, _plain_bt601(model, rgb, scale)) <= 1


@pytest.mark.parametrize("size", [(1, 1), (1, 5), (2, 2), (3, 1), (2, 40)])
def test_fp32_tiny_images_border_correction(size: tuple[int, int]) -> None:
    """tanh → sigmoid folding needs an exact correction where the border is within reach."""
    model = _model(2, "tanh")
    y = torch.rand(1, 1, *size)
    diff = optimize_for_inference(model)(y).double() - _reference(model, y)
    assert diff.abs().max().item() < 1e-5


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_fp32_bands_on_threads_equal_model_and_each_other(activation: str) -> None:
    """The fp32 network runs in row bands (with halos) on worker threads: a tall image
    spans many bands, the top and bottom border bands included; 1 and 2 threads agree
    bit for bit (the bands depend on the image size only)."""
    model = _model(3, activation)
    y = _smooth_image(301, 173, seed=5)
    fast = optimize_for_inference(model)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fast(y)
        torch.set_num_threads(2)
        two = fast(y)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
    assert (one.double() - _reference(model, y)).abs().max().item() < 1e-5


def _run_fast_net() -> None:
    model = _model(2)
    y = _smooth_image(40, 30)
    out = optimize_for_inference(model)(y)
    assert (out.double() - _reference(model, y)).abs().max().item() < 1e-5


def _forked_child() -> None:
    from subpixel.fast._bands import _band_pool

    # OpenMP's threads do not survive a fork either: children run one thread (as
    # DataLoader's workers do); the band pool must not wait on the parent's threads
    torch.set_num_threads(1)
    assert _band_pool(2).submit(lambda: 42).result(timeout=60) == 42
    _run_fast_net()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fp32_bands_after_fork() -> None:
    """A forked child (DataLoader workers, multiprocessing) starts its own band threads."""
    import multiprocessing

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _run_fast_net()  # the parent's pool exists
        child = multiprocessing.get_context("fork").Process(target=_forked_child)
        child.start()
        child.join(120)
        alive = child.is_alive()
        if alive:
            child.kill()
    finally:
        torch.set_num_threads(threads)
    assert not alive and child.exitcode == 0


def test_fp32_bands_leave_the_thread_setting_alone() -> None:
    """More threads than bands: the worker pool is smaller; the caller's setting stays."""
    model = _model(2)
    y = _smooth_image(9, 9)  # 4 bands
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(6)
        out = optimize_for_inference(model)(y)
        assert torch.get_num_threads() == 6
    finally:
        torch.set_num_threads(threads)
    assert (out.double() - _reference(model, y)).abs().max().item() < 1e-5


def test_fp32_does_not_modify_the_model() -> None:
    model = _model(2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimize_for_inference(model)
    optimize_for_inference(model, precision="int8")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return 10 * math.log10(1.0 / max(mse, 1e-20))


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_int8_close_to_fp32(scale: int, activation: str) -> None:
    model = _model(scale, activation, output_activation="tanh" if activation == "relu" else None)
    y = _smooth_image(24, 20, seed=scale)
    fast = optimize_for_inference(model, precision="int8")
    assert fast.precision == "int8"
    ref = _reference(model, y)
    out = fast(y)
    assert out.shape == ref.shape
    # 8-bit activations and weights: far below visible, far above float rounding
    assert _psnr(out.clamp(0, 1), ref.clamp(0, 1)) > 40.0


def test_int8_weight_rounding_beats_nearest_on_correlated_inputs() -> None:
    """GPTQ-style rounding: integer codes in [-127, 127] whose output error on inputs with
    the given correlations is below that of rounding each weight to its nearest code."""
    from subpixel.fast._int8 import _gptq

    g = torch.Generator().manual_seed(0)
    # smooth 5×5 patches (strongly correlated taps), like those of photographs
    x = F.avg_pool2d(torch.rand(64, 1, 40, 40, generator=g, dtype=torch.float64), 5, 1)
    cols = F.unfold(x, 5).transpose(1, 2).reshape(-1, 25)
    moments = cols.T @ cols / cols.shape[0]
    w = torch.randn(16, 25, generator=g, dtype=torch.float64)
    step = w.abs().amax(1) / 127.0
    codes = _gptq(w, moments, step)
    assert torch.equal(codes, codes.round()) and codes.abs().max() <= 127
    nearest = torch.round(w / step[:, None])

    def err(c: torch.Tensor) -> float:
        return float(((cols @ (w - c * step[:, None]).T) ** 2).mean())

    assert err(codes) < 0.5 * err(nearest)


def test_int8_custom_calibration() -> None:
    model = _model(2, "relu")
    y = _smooth_image(16, 16)
    fast = optimize_for_inference(model, precision="int8", calibration=_smooth_image(32, 32, 5))
    assert _psnr(fast(y).clamp(0, 1), _reference(model, y).clamp(0, 1)) > 40.0


# -- the fused uint8 pipeline ------------------------------------------------------------


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(torch.rand(1, 3, h + 2, w + 2, generator=g), 3, stride=1)
    noise = torch.rand(1, 3, h, w, generator=g) * 0.3
    return ((x + noise).clamp(0, 1)[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


def _levels(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) floats → (H, W, 3) uint8 as the plain pipeline rounds (half up)."""
    u = torch.floor(x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return u[0].permute(1, 2, 0).numpy()


def _plain_bt601(model: nn.Module, rgb: np.ndarray, scale: int) -> np.ndarray:
    x = torch.from_numpy(rgb).double().permute(2, 0, 1)[None] / 255
    ycc = rgb_to_ycbcr(x, channel_dim=1)
    y_sr = _reference(model, ycc[:, :1]).clamp(0, 1)
    chroma = imresize(ycc[:, 1:], float(scale))
    return _levels(ycbcr_to_rgb(torch.cat([y_sr, chroma], 1), channel_dim=1))


def _plain_opencv(model: nn.Module, rgb: np.ndarray, scale: int) -> np.ndarray:
    """OpenCV's COLOR_RGB2YCrCb / COLOR_YCrCb2RGB float formulas, bicubic a = -0.75."""
    x = torch.from_numpy(rgb).double().permute(2, 0, 1)[None] / 255
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cr, cb = (r - y) * 0.713 + 0.5, (b - y) * 0.564 + 0.5
    y_sr = _reference(model, y).clamp(0, 1)
    up = F.interpolate(torch.cat([cr, cb], 1), scale_factor=scale, mode="bicubic")
    cr, cb = up[:, :1] - 0.5, up[:, 1:] - 0.5
    rgb_sr = torch.cat([y_sr + 1.403 * cr, y_sr - 0.714 * cr - 0.344 * cb, y_sr + 1.773 * cb], 1)
    return _levels(rgb_sr)


class _OpenCVPipeline:
    color = "opencv-ycrcb"
    chroma = "bicubic-opencv"


def _max_level_diff(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_pipeline_bt601_matlab_equals_plain(scale: int) -> None:
    model = _model(scale)
    rgb = _rgb(17, 22, seed=scale)
    out = FastUpscaler(model)(rgb)
    assert out.shape == (17 * scale, 22 * scale, 3) and out.dtype == np.uint8
    assert _max_level_diff(out, _plain_bt601(model, rgb, scale)) <= 1


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_pipeline_opencv_equals_plain(scale: int) -> None:
    model = _model(scale, "relu", output_activation="tanh")
    rgb = _rgb(13, 9, seed=scale)
    out = FastUpscaler(model, pipeline=_OpenCVPipeline())(rgb)
    assert _max_level_diff(out, _plain_opencv(model, rgb, scale)) <= 1


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (3, 2), (5, 1)])
def test_pipeline_tiny_images(size: tuple[int, int]) -> None:
    """Symmetric chroma padding of 1- and 2-pixel images is MATLAB's (imresize)."""
    model = _model(2)
    rgb = _rgb(*size, seed=3)
    assert _max_level_diff(FastUpscaler(model)(rgb), _plain_bt601(model, rgb, 2)) <= 1


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_pipeline_writes_into_out(precision: str) -> None:
    model = _model(3)
    rgb = _rgb(10, 12)
    out = np.zeros((30, 36, 3), np.uint8)
    res = FastUpscaler(model, precision=precision)(rgb, out)
    assert res is out and out.any()


def test_pipeline_int8_close() -> None:
    model = _model(3)
    rgb = _rgb(30, 28)
    a = FastUpscaler(model)(rgb).astype(np.float64)
    b = FastUpscaler(model, precision="int8")(rgb).astype(np.float64)
    mse = ((a - b) ** 2).mean()
    assert 10 * math.log10(255**2 / max(mse, 1e-12)) > 40.0


def test_polyphase_taps_reproduce_matlab_and_torch_bicubic() -> None:
    """An impulse through the taps equals imresize (a = -0.5) and F.interpolate (-0.75)."""
    x = torch.zeros(1, 1, 1, 9, dtype=torch.float64)
    x[..., 4] = 1.0
    for scale in (2, 3, 4):
        for a, ref in (
            (-0.5, imresize(x, float(scale))),
            (-0.75, F.interpolate(x, scale_factor=scale, mode="bicubic")),
        ):
            taps = polyphase_taps(scale, a)  # output s·x + i reads x - 2 .. x + 2
            out = np.zeros(9 * scale)
            for px in range(2, 7):  # away from the borders
                for i in range(scale):
                    out[px * scale + i] = taps[i, 4 - px + 2] if abs(4 - px) <= 2 else 0.0
            got = ref[0, 0, 0].numpy()[2 * scale : 7 * scale]
            assert np.allclose(out[2 * scale : 7 * scale], got, atol=1e-12)


# -- validation -------------------------------------------------------------------------


def test_rejects_bad_arguments() -> None:
    model = _model(2)
    with pytest.raises(ValueError, match="precision"):
        optimize_for_inference(model, precision="fp16")
    with pytest.raises(ValueError, match="CPU only"):
        optimize_for_inference(model, device="meta", precision="int8")
    with pytest.raises(ValueError, match="expected conv, activation"):
        optimize_for_inference(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="tanh or all ReLU"):
        optimize_for_inference(ESPCN(2, activation="prelu"))
    with pytest.raises(ValueError, match="1 input channel"):
        optimize_for_inference(ESPCN(2, channels=3))
    fast = optimize_for_inference(model)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        fast(torch.rand(1, 3, 4, 4))
    up = FastUpscaler(fast)
    with pytest.raises(ValueError, match="uint8"):
        up(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        up(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="out must be"):
        up(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="color"):

        class Bad:
            color = "xyz"
            chroma = "bicubic-matlab"

        FastUpscaler(fast, pipeline=Bad())


@pytest.mark.data
def test_opencv_weights_fp32_equal_and_int8_close(data_dir: Path) -> None:
    from subpixel.interop.opencv import load_opencv

    y = _smooth_image(40, 36)
    for scale in (2, 3, 4):
        model = load_opencv(data_dir / "models" / "opencv-espcn" / f"ESPCN_x{scale}.pb")
        ref = _reference(model, y)
        assert (optimize_for_inference(model)(y).double() - ref).abs().max().item() < 1e-5
        int8 = optimize_for_inference(model, precision="int8")(y)
        assert _psnr(int8.clamp(0, 1), ref.clamp(0, 1)) > 40.0


# -- wired into the upscaling tool -------------------------------------------------------


def test_upscaler_uses_fast_path_and_equals_plain_pipeline() -> None:
    from subpixel.upscale import Upscaler

    model = _model(3)
    rgb = _rgb(40, 50, seed=7)
    up = Upscaler(model, tile=16)  # several tiles: seams must not show
    assert up.engine.fast is not None
    assert _max_level_diff(up(rgb), _plain_bt601(model, rgb, 3)) <= 1


def test_upscaler_int8_and_unsupported_models() -> None:
    from subpixel.upscale import Upscaler

    model = _model(2)
    rgb = _rgb(20, 20)
    a, b = Upscaler(model)(rgb), Upscaler(model, precision="int8")(rgb)
    assert Upscaler(model, precision="int8").engine.fast is not None
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
    assert 10 * math.log10(255**2 / max(mse, 1e-12)) > 40.0
    from subpixel.backends import INT8_SLOWER_SCALES, CpuCaps

    rgb_model = ESPCN(2, channels=3).eval()  # no fast network: the plain path
    assert Upscaler(rgb_model).engine.fast is None
    prelu = ESPCN(2, activation="prelu").eval()  # a chain: the cpu-layers backend, exact
    assert Upscaler(prelu).backend.name == "cpu-layers"
    for other in (rgb_model, prelu):
        if 2 in INT8_SLOWER_SCALES[CpuCaps.detect().kind]:  # int8 runs fp32 here anyway
            assert Upscaler(other, precision="int8").backend.exact
        else:
            with pytest.raises(ValueError, match="int8"):
                Upscaler(other, precision="int8")


def test_cli_precision_option(tmp_path: Path) -> None:
    from PIL import Image

    from subpixel.cli import main
    from subpixel.serialization import save_weights

    weights = tmp_path / "w.safetensors"
    save_weights(weights, _model(2).state_dict(), model="espcn", config={"scale": 2})
    src = tmp_path / "in.png"
    Image.fromarray(_rgb(12, 10)).save(src)
    outs = {}
    for prec in ("fp32", "int8"):
        dst = tmp_path / f"{prec}.png"
        args = ["upscale", str(src), "-o", str(dst), "--weights", str(weights), "--no-progress"]
        assert main([*args, "--precision", prec]) == 0
        with Image.open(dst) as im:
            outs[prec] = np.asarray(im)
    assert outs["fp32"].shape == outs["int8"].shape == (24, 20, 3)
    assert main(["upscale", str(src), "-o", str(tmp_path / "x.png"), "--precision", "fp16"]) == 2


# -- the compiled colour/chroma kernel (fast._kernels.pipeline, _csrc/pipeline.c) --------

needs_kernel = pytest.mark.skipif(
    not k_pipeline.available(), reason="subpixel._pipeline was not built"
)


def _plain_from_y(
    net: object, rgb: np.ndarray, scale: int, opencv: bool
) -> tuple[np.ndarray, torch.Tensor]:
    """Float64 reference around any Y network ``net`` ((1, 1, h, w) → (1, 1, sh, sw)).

    Returns the uint8 image (rounded half up) and the float RGB in [0, 1] (1, 3, sH, sW).
    Colour: :mod:`subpixel.color` (BT.601, MATLAB) or OpenCV's YCrCb formulas; chroma:
    :func:`imresize` (MATLAB bicubic) or ``F.interpolate`` (a = -0.75, replicated edges).
    """
    x = torch.from_numpy(rgb).double().permute(2, 0, 1)[None] / 255
    if opencv:
        r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        chroma = torch.cat([(r - y) * 0.713 + 0.5, (b - y) * 0.564 + 0.5], 1)
    else:
        ycc = rgb_to_ycbcr(x, channel_dim=1)
        y, chroma = ycc[:, :1], ycc[:, 1:]
    y_sr = net(y).double().clamp(0, 1)  # type: ignore[operator]
    if opencv:
        up = F.interpolate(chroma, scale_factor=scale, mode="bicubic") - 0.5
        cr, cb = up[:, :1], up[:, 1:]
        out = torch.cat([y_sr + 1.403 * cr, y_sr - 0.714 * cr - 0.344 * cb, y_sr + 1.773 * cb], 1)
    else:
        out = ycbcr_to_rgb(torch.cat([y_sr, imresize(chroma, float(scale))], 1), channel_dim=1)
    return _levels(out), out.clamp(0, 1)


def _fallback(up: FastUpscaler, rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """The same upscaler's PyTorch path (the compiled kernel hidden)."""
    with monkeypatch.context() as m:
        m.setattr(k_pipeline, "kernel", lambda: None)
        return up(rgb)


def _exact_fraction(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())


@needs_kernel
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("opencv", [False, True], ids=["bt601-matlab", "opencv"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("size", [(17, 22), (13, 9), (1, 1), (2, 3), (3, 2), (5, 1), (1, 7)])
def test_native_pipeline_equals_torch_path_and_float64(
    scale: int,
    opencv: bool,
    precision: str,
    size: tuple[int, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The C kernel against the PyTorch fallback and an independent float64 pipeline."""
    model = _model(scale, "relu", output_activation="tanh") if opencv else _model(scale)
    up = FastUpscaler(model, pipeline=_OpenCVPipeline() if opencv else None, precision=precision)
    rgb = _rgb(*size, seed=scale + 10 * size[0] + size[1])
    got = up(rgb)
    assert got.shape == (size[0] * scale, size[1] * scale, 3) and got.dtype == np.uint8
    torch_path = _fallback(up, rgb, monkeypatch)
    assert _max_level_diff(got, torch_path) <= 1
    # an int8 first layer rounds Y to 8 bits: a 1-ulp difference of Y can flip one code,
    # which moves the levels of a whole 5×5·s² neighbourhood by one
    assert _exact_fraction(got, torch_path) > (0.98 if precision == "int8" else 0.995)
    # the reference runs the same network (int8 too) on float64-computed Y; all the rest is
    # float64 and independent of subpixel.fast
    if precision == "fp32":
        ref, _ = _plain_from_y(lambda y: _reference(model, y), rgb, scale, opencv)
    else:
        ref, _ = _plain_from_y(lambda y: up.net(y.float()), rgb, scale, opencv)
    assert _max_level_diff(got, ref) <= 1
    assert _exact_fraction(got, ref) > (0.98 if precision == "int8" else 0.99)


@needs_kernel
@pytest.mark.parametrize("opencv", [False, True], ids=["bt601-matlab", "opencv"])
def test_native_block_float_output(opencv: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """``block`` (float RGB in and out, used by the upscaling tool) through the kernel."""
    model = _model(3, "relu", output_activation="tanh") if opencv else _model(3)
    up = FastUpscaler(model, pipeline=_OpenCVPipeline() if opencv else None)
    rgb = np.stack([_rgb(9, 14, seed=1), _rgb(9, 14, seed=2)])
    x = torch.from_numpy(rgb).float().permute(0, 3, 1, 2) / 255
    got = up.block(x)
    assert got.shape == (2, 3, 27, 42)
    with monkeypatch.context() as m:
        m.setattr(k_pipeline, "kernel", lambda: None)
        torch_path = up.block(x)
    assert (got - torch_path).abs().max().item() < 1e-5
    for i in range(2):
        _, ref = _plain_from_y(lambda y: _reference(model, y), rgb[i], 3, opencv)
        assert (got[i : i + 1].double() - ref).abs().max().item() < 1e-5


@needs_kernel
def test_native_strided_input_and_output_views(monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-contiguous source and an output view with a longer row stride."""
    model = _model(2)
    up = FastUpscaler(model)
    big = torch.from_numpy(_rgb(15, 30, seed=4))
    src = big[:, ::2]  # (15, 15, 3), pixel stride 6
    canvas = torch.zeros(40, 50, 3, dtype=torch.uint8)
    dst = canvas[5:35, 10:40]
    res = up.upscale_tensor(src, dst)
    assert res is dst
    assert canvas[:5].eq(0).all() and canvas[:, :10].eq(0).all() and canvas[:, 40:].eq(0).all()
    expected = _fallback(up, np.ascontiguousarray(src.numpy()), monkeypatch)
    assert _max_level_diff(dst.numpy(), expected) <= 1


@needs_kernel
@pytest.mark.parametrize("scale", [2, 3])
def test_native_threads_and_instruction_sets_agree(scale: int) -> None:
    """1 or 2 threads: bit-identical; SSE2, AVX2+FMA and AVX-512 kernels: within float
    rounding (FMA), so within one level and almost always equal."""
    from subpixel import _pipeline  # type: ignore[attr-defined]

    model = _model(scale)
    up = FastUpscaler(model)
    rgb = _rgb(70, 90, seed=scale)
    threads = torch.get_num_threads()
    limit = _pipeline.set_isa(2)
    try:
        torch.set_num_threads(1)
        one = up(rgb)
        torch.set_num_threads(2)
        two = up(rgb)
        assert np.array_equal(one, two)
        for isa in (0, 1):
            _pipeline.set_isa(isa)
            assert _pipeline.isa() <= isa
            other = up(rgb)
            assert _max_level_diff(one, other) <= 1
            assert _exact_fraction(one, other) > 0.999
    finally:
        torch.set_num_threads(threads)
        _pipeline.set_isa(limit)


@needs_kernel
def test_native_wrappers_decline_what_they_cannot_run() -> None:
    """The wrappers return None/False (the caller then uses PyTorch) instead of failing."""
    coef = [0.0] * 12
    assert k_pipeline.rgb_to_ycc(torch.zeros(4, 4, 3, dtype=torch.int16), coef, False) is None
    assert k_pipeline.rgb_to_ycc(torch.zeros(0, 4, 3, dtype=torch.uint8), coef, False) is None
    y, c = k_pipeline.rgb_to_ycc(torch.zeros(4, 5, 3, dtype=torch.uint8), coef, False) or (
        None,
        None,
    )
    assert y is not None and c is not None and y.shape == (4, 5) and c.shape == (2, 4, 9)
    taps = polyphase_taps(2, -0.5).ravel().tolist()
    out = torch.empty(8, 10, 3, dtype=torch.uint8)
    args = (taps, [0.0] * 12, (0.0, 1.0), False)
    assert k_pipeline.ycc_to_rgb(torch.zeros(20, 4), c, *args, out, 255.0)
    assert not k_pipeline.ycc_to_rgb(torch.zeros(20, 4, dtype=torch.float64), c, *args, out, 255.0)
    assert not k_pipeline.ycc_to_rgb(torch.zeros(20, 9), c, *args, out, 255.0)  # wrong scale
    assert not k_pipeline.ycc_to_rgb(torch.zeros(20, 4), c, *args, out[:, :8], 255.0)
    assert not k_pipeline.ycc_to_rgb(torch.zeros(20, 4), c, *args, out.to(torch.int32), 255.0)
    overlapping = out.view(-1)[: 10 * 3].as_strided((8, 10, 3), (3, 3, 1))
    assert not k_pipeline.ycc_to_rgb(torch.zeros(20, 4), c, *args, overlapping, 255.0)


@needs_kernel
def test_native_generic_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    """A factor without a specialised kernel (5) against the PyTorch path and float64."""
    model = _model(5)
    up = FastUpscaler(model)
    rgb = _rgb(7, 6, seed=5)
    got = up(rgb)
    assert _max_level_diff(got, _fallback(up, rgb, monkeypatch)) <= 1
    ref, _ = _plain_from_y(lambda y: _reference(model, y), rgb, 5, False)
    assert _max_level_diff(got, ref) <= 1


@needs_kernel
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_native_any_phase_layout(scale: int) -> None:
    """Phases pixel-major, phase-major, padded rows or any strides: the same output."""
    h, w = 9, 11
    _, c = k_pipeline.rgb_to_ycc(torch.from_numpy(_rgb(h, w)), [0.3] * 12, False) or (None, None)
    assert c is not None
    taps = polyphase_taps(scale, -0.5).ravel().tolist()
    args = (taps, [90.0, 80.0, -70.0, 0.5] * 3, (0.1, 0.9), False)
    g = torch.Generator().manual_seed(scale)
    dense = torch.rand(h * w, scale * scale, generator=g)
    padded = torch.zeros(h * w, scale * scale + 3)
    padded[:, 1 : 1 + scale * scale] = dense
    planes = torch.zeros(scale * scale, 2, h * w)
    planes[:, 1] = dense.t()
    odd = torch.zeros(h * w, scale * scale, 2)
    odd[..., 1] = dense
    outs = []
    for phases in (
        dense,
        dense.t().contiguous().t(),
        padded[:, 1 : 1 + scale * scale],
        planes[:, 1].t(),
        odd[..., 1],
    ):
        out = torch.empty(h * scale, w * scale, 3, dtype=torch.uint8)
        assert k_pipeline.ycc_to_rgb(phases, c, *args, out, 255.0)
        outs.append(out)
    assert all(torch.equal(outs[0], o) for o in outs[1:])


# -- the compiled 3x3 convolution (fast._kernels.conv3x3, _csrc/conv3x3.c) ----------------

needs_conv3x3 = pytest.mark.skipif(
    not k_conv3x3.available(), reason="subpixel._conv3x3 was not built"
)


def _conv3x3_reference(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``F.conv2d`` in float64 as (h·w, c_out) pixel rows."""
    z = F.conv2d(x.double(), w.double(), b.double(), padding=1)[0]
    return z.permute(1, 2, 0).reshape(-1, w.shape[0])


@needs_conv3x3
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("isa", [0, 1, 2, 3])
@pytest.mark.parametrize(
    ("c_in", "c_out", "h", "w"),
    [(32, 4, 17, 45), (32, 4, 1, 1), (32, 4, 2, 3), (1, 1, 1, 1), (3, 5, 2, 3), (7, 16, 9, 33),
     (8, 3, 5, 8), (16, 9, 31, 17), (12, 4, 4, 70), (32, 1, 3, 100), (5, 12, 40, 7)],
)  # fmt: skip
def test_conv3x3_equals_conv2d_float64(
    dtype: torch.dtype, isa: int, c_in: int, c_out: int, h: int, w: int
) -> None:
    """Every instruction-set copy (on CPUs that have it; 3: AVX512-BF16 for bfloat16 input),
    channels last or planar input, 1 or 2 threads: F.conv2d's values within float32
    rounding of the sums (bfloat16 input: weights rounded to bfloat16, products exact)."""
    from subpixel import _conv3x3  # type: ignore[attr-defined]

    g = torch.Generator().manual_seed(c_in * 100 + c_out + h + w)
    x = torch.randn(1, c_in, h, w, generator=g).to(dtype)
    wt = torch.randn(c_out, c_in, 3, 3, generator=g)
    b = torch.randn(c_out, generator=g)
    wr = wt.to(dtype).float()  # the weights the kernel uses
    ref = _conv3x3_reference(x, wr, b)
    # scale of the terms summed, for the float32 rounding bound
    mag = _conv3x3_reference(x.abs(), wr.abs(), b.abs())
    threads = torch.get_num_threads()
    limit = _conv3x3.set_isa(isa)
    try:
        assert _conv3x3.isa() <= isa
        for layout in (torch.channels_last, torch.contiguous_format):
            for n in (1, 2):
                torch.set_num_threads(n)
                out = k_conv3x3.pixels(x.contiguous(memory_format=layout), wt, b)
                if dtype == torch.bfloat16:  # the same from pre-rounded weights
                    again = k_conv3x3.pixels(x.contiguous(memory_format=layout), wr, b)
                    assert again is not None and torch.equal(out, again)
                assert out is not None and out.shape == (h * w, c_out)
                assert out.dtype == torch.float32 and out.is_contiguous()
                assert bool(((out.double() - ref).abs() <= 1e-5 * mag + 1e-6).all())
    finally:
        torch.set_num_threads(threads)
        _conv3x3.set_isa(limit)


@needs_conv3x3
def test_conv3x3_strided_input_and_declined_arguments() -> None:
    g = torch.Generator().manual_seed(3)
    big = torch.randn(1, 40, 21, 50, generator=g)
    x = big[:, 3:35, 1:20, 2:47]  # no dense layout: (channel, row, pixel) strides as they come
    wt = torch.randn(4, 32, 3, 3, generator=g)
    b = torch.randn(4, generator=g)
    out = k_conv3x3.pixels(x, wt, b)
    assert out is not None
    ref = _conv3x3_reference(x, wt, b)
    assert torch.allclose(out.double(), ref, rtol=1e-5, atol=1e-4)
    # not taken (the caller uses F.conv2d): too many outputs, 5x5, float64, batch, mismatch
    assert k_conv3x3.pixels(x, torch.randn(17, 32, 3, 3), torch.randn(17)) is None
    assert k_conv3x3.pixels(x, torch.randn(4, 32, 5, 5), b) is None
    assert k_conv3x3.pixels(x.double(), wt.double(), b.double()) is None
    assert k_conv3x3.pixels(torch.randn(2, 32, 4, 4), wt, b) is None
    assert k_conv3x3.pixels(x, torch.randn(4, 31, 3, 3), b) is None
    assert k_conv3x3.pixels(torch.randn(1, 32, 0, 4), wt, b) is None


@needs_conv3x3
@pytest.mark.parametrize("isa", [0, 1, 2])
@pytest.mark.parametrize("c_out", [1, 4, 5, 16])
def test_conv3x3_rows_valid_rows_and_accumulate(c_out: int, isa: int) -> None:
    """The fp32 ×2 last layer's form: rows above and below given, added onto ``out``."""
    from subpixel import _conv3x3  # type: ignore[attr-defined]

    g = torch.Generator().manual_seed(c_out * 10 + isa)
    wt, b = torch.randn(c_out, 32, 3, 3, generator=g), torch.randn(c_out, generator=g)
    big = torch.randn(30, 60, 40, generator=g)
    x = big[2:16, 3:40, 4:36]  # (14, 37, 32): a window of a larger tensor
    ref = F.conv2d(x.double().permute(2, 0, 1)[None], wt.double(), b.double(), padding=(0, 1))
    ref = ref[0].permute(1, 2, 0)
    limit = _conv3x3.set_isa(isa)
    try:
        for accumulate in (False, True):
            canvas = torch.full((16, 40, 20), 5.0)
            out = canvas[1:13, 2:39, 3 : 3 + c_out]
            assert k_conv3x3.rows(x, wt, b, out, accumulate=accumulate)
            want = ref + (5.0 if accumulate else 0.0)
            assert torch.allclose(out.double(), want, rtol=1e-5, atol=1e-4)
            canvas[1:13, 2:39, 3 : 3 + c_out] = 5.0  # everything else untouched
            assert torch.equal(canvas, torch.full_like(canvas, 5.0))
    finally:
        _conv3x3.set_isa(limit)
    out = torch.empty(12, 37, c_out)
    assert not k_conv3x3.rows(x, wt, b, torch.empty(14, 37, c_out))  # rows
    assert not k_conv3x3.rows(x.double(), wt, b, out)  # dtype
    assert not k_conv3x3.rows(x[:2], wt, b, out[:0])  # < 3 rows
    assert not k_conv3x3.rows(x, torch.randn(17, 32, 3, 3), torch.randn(17), out)


@needs_conv3x3
@pytest.mark.parametrize("output_activation", [None, "tanh"])
def test_int8_x2_last_layer_kernel_equals_conv2d_path(
    output_activation: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """×2 ReLU int8 (last layer on bfloat16 activations and weights, float32 sums): the
    compiled kernel gives F.conv2d's phases."""
    model = _model(2, "relu", output_activation=output_activation)
    fast = optimize_for_inference(model, precision="int8")
    assert "last layer bf16" in fast.backend
    y = torch.cat([_smooth_image(37, 29, seed=5), _smooth_image(37, 29, seed=6)])
    calls = []
    kernel = k_conv3x3.pixels
    with monkeypatch.context() as m:
        m.setattr(k_conv3x3, "pixels", lambda *a: calls.append(1) or kernel(*a))
        out = fast(y)
    assert calls  # the kernel was used
    with monkeypatch.context() as m:
        m.setattr(k_conv3x3, "kernel", lambda: None)
        ref = fast(y)
    assert out.shape == ref.shape == (2, 1, 74, 58)
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert _psnr(out.clamp(0, 1), _reference(model, y).clamp(0, 1)) > 40.0


# -- the network CUDA runs (_Torch), on the CPU -------------------------------------------
# optimize_for_inference(device="cuda") builds this class; its code is device-agnostic, so
# running it on the CPU tests everything but cuDNN itself.


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("kind", ["tanh", "relu+bicubic", "relu/cwh"])
def test_torch_network_for_other_devices_equals_model(scale: int, kind: str) -> None:
    from subpixel.fast._net import _parse
    from subpixel.fast._torch import _Torch

    arch, _, order = kind.partition("/")
    activation, _, residual = arch.partition("+")
    model = _model(scale, activation, residual=residual or None, order=order or "chw")
    y = torch.cat([_smooth_image(17, 23, seed=scale), _smooth_image(17, 23, seed=9)])
    net = _Torch(model, _parse(model), torch.device("cpu"), torch.float32)
    assert net.backend == "cpu-torch-channels-last" and net.precision == "fp32"
    assert (net(y).double() - _reference(model, y)).abs().max().item() < 1e-5
    half = _Torch(model, _parse(model), torch.device("cpu"), torch.bfloat16)
    assert half.precision == "bfloat16"
    assert _psnr(half(y).clamp(0, 1), _reference(model, y).clamp(0, 1)) > 35.0


def test_upscaler_as_on_cuda_equals_plain_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    """FastUpscaler with the _Torch network and the PyTorch colour/chroma pass (the compiled
    one is CPU-only): what `subpixel upscale --device cuda` runs."""
    from subpixel.fast._net import _parse
    from subpixel.fast._torch import _Torch

    model = _model(3, "relu", residual="bicubic")
    up = FastUpscaler(_Torch(model, _parse(model), torch.device("cpu"), torch.float32))
    rgb = _rgb(13, 17, seed=4)
    with monkeypatch.context() as m:
        m.setattr(k_pipeline, "kernel", lambda: None)
        out = up(rgb)
    assert _max_level_diff(out, _plain_bt601(model, rgb, 3)) <= 1
