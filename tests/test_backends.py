"""Backends (:mod:`subpixel.backends`): every one against the plain reference, and the choice.

The suite is parametrised over the backends: each that can run here must give the model's
own PyTorch output (exact ones to float rounding, approximate ones within a stated PSNR),
alone and inside the whole 8-bit RGB pipeline. The choice is tested with injected CPU
capabilities, since this machine has no AMX.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from subpixel.backends import BACKENDS, INT8_SLOWER_SCALES, Backend, CpuCaps, Request, choose
from subpixel.models.espcn import ESPCN
from subpixel.upscale import Upscaler

_AMX = CpuCaps(avx512=True, vnni=True, bf16=True, amx=True)
_ZEN4 = CpuCaps(avx512=True, vnni=True, bf16=True, amx=False)  # an AMD EPYC Zen 4
_AVX2 = CpuCaps()  # an AVX2 CPU without VNNI or BF16 (an older AMD EPYC)

#: Least PSNR (dB) of each approximate backend against the reference, on Y in [0, 1].
_MIN_PSNR = {"cpu-bf16": 45.0, "cpu-int8": 40.0}
#: The backends' precisions, as a caller asks for them.
_PRECISION = {
    "cpu-bf16": "bf16",
    "cpu-int8": "int8",
    "cpu-fp32": "fp32",
    "cpu-layers": "fp32",
    "reference": "fp32",
}


def _model(scale: int, activation: str = "tanh", **kw: object) -> ESPCN:
    m = ESPCN(scale, activation=activation, **kw).eval()  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(scale)
    with torch.no_grad():
        for p in m.parameters():  # trained-network magnitudes, every layer active
            p.copy_(torch.randn(p.shape, generator=g) * (0.08 if p.dim() > 1 else 0.05))
    return m


def _smooth(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.avg_pool2d(torch.rand(1, 1, h + 6, w + 6, generator=g), 7, stride=1).clamp(0, 1)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return 10 * math.log10(1 / max(mse, 1e-20))


def _available(backend: Backend) -> bool:
    return backend.name != "device" or torch.cuda.is_available()


_HERE = [b for b in BACKENDS if _available(b)]
_MODELS = [(2, "tanh", None), (3, "relu", None), (4, "tanh", "tanh"), (3, "relu", "relu")]


@pytest.mark.parametrize("backend", _HERE, ids=lambda b: b.name)
@pytest.mark.parametrize(("scale", "activation", "out"), _MODELS)
def test_every_backend_equals_the_reference_network(
    backend: Backend, scale: int, activation: str, out: str | None
) -> None:
    model = _model(scale, activation, output_activation=out)
    device = torch.device("cuda" if backend.name == "device" else "cpu")
    req = Request(model, device=device, precision=_PRECISION.get(backend.name, "auto"), caps=_ZEN4)
    assert backend.declines(req) is None
    net = backend.build(req)
    y = _smooth(23, 31, seed=scale)
    with torch.no_grad():
        ref = model.double()(y.double()).float()
        model.float()
    got = ref if net is None else net(y.to(device)).cpu()
    assert got.shape == ref.shape
    if backend.exact:
        assert float((got - ref).abs().max()) < 1e-4
    else:
        assert _psnr(got, ref) >= _MIN_PSNR[backend.name]


def _rgb8(h: int, w: int, seed: int = 0) -> np.ndarray:
    """An image-like 8-bit RGB: smooth colour fields with edges."""
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(torch.rand(1, 3, h + 4, w + 4, generator=g), 5, stride=1)[0]
    x[:, h // 3 : h // 2] = x[:, h // 3 : h // 2].flip(0)  # a hard edge
    return (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


@pytest.mark.parametrize("name", ["cpu-bf16", "cpu-int8", "cpu-fp32"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_cpu_backend_in_the_rgb_pipeline_against_fp32(name: str, scale: int) -> None:
    """The bundled weights on 8-bit RGB: exact within a level, bf16 ≥ 45 dB, int8 ≥ 40 dB."""
    rgb = _rgb8(48, 40, seed=scale)
    ref = Upscaler(scale=scale, precision="fp32", tile=0)
    assert ref.backend.name == "cpu-fp32"
    up = Upscaler(scale=scale, precision=_PRECISION[name], tile=16)  # tiles: no seams
    if up.backend.name != name:  # int8 where it is measured slower runs fp32 instead
        assert name == "cpu-int8" and scale in INT8_SLOWER_SCALES[_caps().kind]
        return
    a, b = ref(rgb).astype(np.float64), up(rgb).astype(np.float64)
    if up.backend.exact:
        assert np.abs(a - b).max() <= 1
    else:
        mse = ((a - b) ** 2).mean()
        assert 10 * math.log10(255**2 / max(mse, 1e-12)) >= _MIN_PSNR[name]


def _caps() -> CpuCaps:
    return CpuCaps.detect()


# -- the choice ---------------------------------------------------------------------------


def test_auto_takes_bf16_only_with_amx() -> None:
    m = _model(3)
    assert choose(Request(m, caps=_AMX)).name == "cpu-bf16"
    choice = choose(Request(m, caps=_ZEN4))
    assert choice.name == "cpu-fp32" and choice.exact
    assert "AMX" in dict(choice.declined)["cpu-bf16"]


def test_fp32_refuses_bf16_and_bf16_can_be_forced() -> None:
    m = _model(3)
    choice = choose(Request(m, precision="fp32", caps=_AMX))
    assert choice.name == "cpu-fp32" and "precision='fp32'" in dict(choice.declined)["cpu-bf16"]
    assert choose(Request(m, precision="bf16", caps=_ZEN4)).name == "cpu-bf16"


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("caps", [_AMX, _ZEN4, _AVX2], ids=["amx", "zen4", "avx2"])
def test_int8_never_where_measured_slower(scale: int, caps: CpuCaps) -> None:
    choice = choose(Request(_model(scale), precision="int8", caps=caps))
    slower = scale in INT8_SLOWER_SCALES[caps.kind]
    assert choice.name == ("cpu-fp32" if slower else "cpu-int8")
    if slower:
        assert "slower" in dict(choice.declined)["cpu-int8"]
    # the measurements are recorded: AMX loses at ×2, VNNI wins everywhere, plain AVX2 loses
    expected = {"amx": scale == 2, "vnni": False, "plain": True}[caps.kind]
    assert slower == expected


def test_int8_is_never_chosen_unasked() -> None:
    for caps in (_AMX, _ZEN4):
        assert choose(Request(_model(3), caps=caps)).name != "cpu-int8"


def test_models_the_fast_backends_cannot_run_go_to_the_reference() -> None:
    rgb_model = ESPCN(2, channels=3).eval()
    choice = choose(Request(rgb_model, caps=_ZEN4))
    assert choice.name == "reference" and choice.net is None
    assert "not ESPCN-like" in dict(choice.declined)["cpu-fp32"]
    assert "1-channel" in dict(choice.declined)["cpu-layers"]
    assert choice.fused is not None  # float blocks around the model's own layers
    for precision in ("int8", "bf16"):
        with pytest.raises(ValueError, match=precision):
            choose(Request(rgb_model, precision=precision, caps=_ZEN4))


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("kind", ["fsrcnn", "fsrcnn-subpixel", "espcn-prelu"])
def test_chains_the_compiled_kernels_cannot_run_go_to_cpu_layers(scale: int, kind: str) -> None:
    """FSRCNN (PReLU, 1×1 layers, transposed or sub-pixel upsampler) and PReLU ESPCNs: the
    model's layers in bands, exact: on 8-bit RGB within a level of OpenCV's steps in numpy
    around the model itself."""
    from subpixel.models.fsrcnn import FSRCNN

    if kind == "espcn-prelu":
        model: torch.nn.Module = ESPCN(scale, activation="prelu").eval()
    else:
        model = FSRCNN(scale, upsampler="subpixel" if kind.endswith("subpixel") else "transposed")
    g = torch.Generator().manual_seed(scale)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.1 if p.dim() > 1 else 0.05))
    choice = choose(Request(model.eval(), caps=_ZEN4))
    assert choice.name == "cpu-layers" and choice.exact and choice.fused is None
    assert "not ESPCN-like" in dict(choice.declined)["cpu-fp32"]
    # OpenCV's steps in numpy around the model's own layers: the independent reference
    from subpixel.interop import opencv_upsample
    from subpixel.upscale import Pipeline

    up = Upscaler(model, pipeline=Pipeline(color="opencv-ycrcb", chroma="bilinear-opencv"))
    assert up.backend.name == "cpu-layers" and up.backend.fused is None
    rgb = _rgb8(37, 29, seed=scale)
    diff = np.abs(up(rgb).astype(int) - opencv_upsample(model, rgb, order="rgb").astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_approximate_precisions_refused_off_the_cpu() -> None:
    req = Request(_model(2), device=torch.device("cuda"), precision="int8", caps=_ZEN4)
    with pytest.raises(ValueError, match="CPU only"):
        choose(req)  # declined everywhere before anything is built
    assert BACKENDS[0].declines(Request(_model(2), device=torch.device("cuda"))) is None


def test_unknown_precision() -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        choose(Request(_model(2), precision="fp16"))


def test_cpu_flags() -> None:
    zen4 = {"avx512f", "avx512_vnni", "avx512_bf16", "avx2"}
    assert CpuCaps.from_flags(zen4) == _ZEN4
    assert CpuCaps.from_flags(zen4 | {"amx_bf16", "amx_tile", "amx_int8"}) == _AMX
    assert CpuCaps.from_flags(set()) == CpuCaps()


def test_upscaler_reports_its_backend(tmp_path: Path) -> None:
    up = Upscaler(_model(2))
    text = up.backend.describe()
    assert text.splitlines()[0].startswith(f"backend: {up.backend.name} (")
    assert "colour: fused uint8 RGB kernel" in text
    if not _caps().amx:
        assert up.backend.name == "cpu-fp32" and "declined: cpu-bf16:" in text


def test_one_decision_for_the_pipeline() -> None:
    """A pipeline the fused kernel does not know runs the chosen network in float blocks."""
    from subpixel.upscale import Pipeline

    up = Upscaler(_model(2), pipeline=Pipeline(chroma="bilinear-opencv"))
    assert up.backend.name in ("cpu-fp32", "cpu-bf16") and up.backend.fused is not None
    assert up.engine.fast is not None  # the network still runs on the fast kernels


def test_a_backend_list_can_be_injected() -> None:
    class Never:
        name = "never"
        exact = True

        def declines(self, req: Request) -> str | None:
            return "never runs"

        def build(self, req: Request) -> None:
            raise AssertionError("not built")

    choice = choose(Request(_model(2)), backends=(Never(), BACKENDS[-1]))
    assert choice.name == "reference" and choice.declined == (("never", "never runs"),)


def test_the_compiled_kernels_are_part_of_the_one_decision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no compiled kernel in ``Request.kernels``, none runs and the choice says so;
    with them (where built), the network and colour path use them."""
    from subpixel._upscale.engine import Engine
    from subpixel.backends import Built
    from subpixel.fast._kernels import conv3x3, conv_first, pipeline, winograd

    model = _model(2, "relu")
    img = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    ref = np.empty((40, 48, 3), np.uint8)
    Engine(model, tile=0, caps=_ZEN4).rgb8(img, ref)
    got = np.empty_like(ref)

    def untouchable() -> None:
        raise AssertionError("a compiled kernel was used although the choice excluded it")

    with monkeypatch.context() as m:
        for module in (conv3x3, conv_first, pipeline, winograd):
            m.setattr(module, "kernel", untouchable)
        none = Engine(model, tile=0, caps=_ZEN4, kernels=Built())
        assert none.backend.name == "cpu-fp32" and none.backend.kernels != "cpu-winograd-f4x4"
        text = none.backend.describe()
        assert "colour: fused uint8 RGB steps in PyTorch" in text
        assert "subpixel._pipeline was not built" in text
        none.rgb8(img, got)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    built = Built.detect()
    if built.fp32_declines() is None and built.pipeline:
        assert Engine(model, tile=0, caps=_ZEN4).backend.kernels == "cpu-winograd-f4x4"


def test_opencv_steps_obey_the_recorded_kernels() -> None:
    """OpenCV's fused uint8 steps only where Request.kernels has subpixel._opencv_levels."""
    from subpixel.backends import Built
    from subpixel.upscale import Pipeline

    pipe = Pipeline(color="opencv-ycrcb", chroma="bilinear-opencv")
    choice = choose(Request(_model(2), pipeline=pipe, caps=_ZEN4, kernels=Built()))
    assert choice.fused == "the compiled kernel subpixel._opencv_levels was not built"
    with_it = Built(opencv_levels=True)
    assert choose(Request(_model(2), pipeline=pipe, caps=_ZEN4, kernels=with_it)).fused is None
