"""ONNX export: every shuffle order and the models, run in onnxruntime against PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from subpixel.cli import main
from subpixel.interop import to_onnx
from subpixel.interop.onnx_export import check_onnx, onnx_ops
from subpixel.layers import PixelShuffle, PixelUnshuffle
from subpixel.models import get_model
from subpixel.serialization import save_weights

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ORDERS = ["chw", "hwc", "cwh", "whc"]
FACTORS = [2, 3, (2, 3)]


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": x})
    return np.asarray(out)


def _shuffle_nodes(path: Path) -> list[tuple[str, str]]:
    """(op type, mode) of the DepthToSpace/SpaceToDepth nodes."""
    found = []
    for node in onnx.load(str(path)).graph.node:
        if node.op_type in ("DepthToSpace", "SpaceToDepth"):
            mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "")
            found.append((node.op_type, mode))
    return found


def _expected_nodes(order: str, factor: int | tuple[int, int], inverse: bool) -> list:
    if not isinstance(factor, int):
        return []
    if order == "hwc":
        return [("SpaceToDepth", "")] if inverse else [("DepthToSpace", "DCR")]
    if order == "chw" and not inverse:
        return [("DepthToSpace", "CRD")]
    return []


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("factor", FACTORS, ids=str)
@pytest.mark.parametrize("order", ORDERS)
def test_shuffle_every_order(tmp_path: Path, order: str, factor: int, channels: int) -> None:
    rh, rw = (factor, factor) if isinstance(factor, int) else factor
    module = PixelShuffle(factor, order=order)
    path = to_onnx(module, tmp_path / "s.onnx", input_shape=(1, channels * rh * rw, 4, 5))
    assert _shuffle_nodes(path) == _expected_nodes(order, factor, inverse=False)
    for h, w in [(4, 5), (7, 3), (1, 1)]:
        x = torch.randn(2, channels * rh * rw, h, w)
        got = _run(path, x.numpy())
        np.testing.assert_array_equal(got, module(x).numpy())
        if order == "chw" and rh == rw:  # PyTorch's own operator is the reference
            np.testing.assert_array_equal(got, F.pixel_shuffle(x, rh).numpy())


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("factor", FACTORS, ids=str)
@pytest.mark.parametrize("order", ORDERS)
def test_unshuffle_every_order(tmp_path: Path, order: str, factor: int, channels: int) -> None:
    rh, rw = (factor, factor) if isinstance(factor, int) else factor
    module = PixelUnshuffle(factor, order=order)
    path = to_onnx(module, tmp_path / "u.onnx", input_shape=(1, channels, 4 * rh, 3 * rw))
    assert _shuffle_nodes(path) == _expected_nodes(order, factor, inverse=True)
    for h, w in [(4, 3), (5, 7), (1, 1)]:
        x = torch.randn(2, channels, h * rh, w * rw)
        got = _run(path, x.numpy())
        np.testing.assert_array_equal(got, module(x).numpy())
        if order == "chw" and rh == rw:  # the order the stock SpaceToDepth would get wrong
            np.testing.assert_array_equal(got, F.pixel_unshuffle(x, rh).numpy())


def test_channels_last_and_3d_shuffles(tmp_path: Path) -> None:
    for module, shape in [
        (PixelShuffle(2, order="hwc", data_format="channels_last"), (1, 3, 5, 12)),
        (PixelShuffle((1, 2, 2), order="cdhw"), (1, 8, 2, 3, 4)),
        (PixelUnshuffle(3, order="cwh"), (1, 2, 6, 9)),
    ]:
        path = to_onnx(module, tmp_path / "m.onnx", input_shape=shape, dynamic=False)
        x = torch.randn(*shape)
        np.testing.assert_array_equal(_run(path, x.numpy()), module(x).numpy())


MODELS = [
    ("espcn", {"scale": 3}),
    ("espcn", {"scale": 2, "channels": 3, "order": "hwc"}),
    ("espcn", {"scale": 4, "activation": "relu", "output_activation": "tanh"}),
    ("fsrcnn", {"scale": 3}),
    ("fsrcnn", {"scale": 2, "upsampler": "subpixel"}),
    ("fsrcnn", {"scale": 4, "deconv_kernel": 4, "upsampler": "subpixel"}),
]


@pytest.mark.parametrize(("name", "config"), MODELS, ids=[f"{n}-{c}" for n, c in MODELS])
def test_models_match_pytorch(tmp_path: Path, name: str, config: dict) -> None:
    model = get_model(name, **config).eval()
    with torch.no_grad():  # a non-trivial upsampler (the default init is tiny)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = to_onnx(model, tmp_path / "m.onnx")
    assert check_onnx(model, path, ((16, 16), (17, 23), (5, 9), (1, 1))) < 1e-5
    ops = onnx_ops(path)
    assert ops[0] == "Conv" and "SpaceToDepth" not in ops
    graph_input = onnx.load(str(path)).graph.input[0]
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert dims == ["batch", model.channels, "height", "width"]


def test_static_export_and_validation(tmp_path: Path) -> None:
    model = get_model("espcn", scale=2)
    path = to_onnx(model, tmp_path / "s.onnx", dynamic=False, input_shape=(1, 1, 8, 6))
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 8, 6]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.onnx"]  # no temporary left
    with pytest.raises(ValueError, match="opset"):
        to_onnx(model, tmp_path / "x.onnx", opset=9)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        to_onnx("espcn", tmp_path / "x.onnx")  # type: ignore[arg-type]
    assert model.training  # the caller's model is left in its mode


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = get_model("fsrcnn", scale=2, upsampler="subpixel")
    weights = tmp_path / "f.safetensors"
    save_weights(
        weights,
        model.state_dict(),
        model="fsrcnn",
        config={"scale": 2, "upsampler": "subpixel"},
    )
    out = tmp_path / "f.onnx"
    assert main(["export", "--weights", str(weights), "--format", "onnx", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "DepthToSpace" in printed and "max abs difference" in printed
    x = np.random.default_rng(0).random((1, 1, 7, 9), dtype=np.float32)
    with torch.no_grad():
        ref = get_model("fsrcnn", weights=weights)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_run(out, x), ref, atol=1e-5)
    # Errors: one line, exit status 1.
    assert main(["export", "--weights", str(tmp_path / "none.safetensors"), "-o", str(out)]) == 1
    assert main(["export", "--weights", str(weights), "-o", str(tmp_path / "no" / "x.onnx")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("subpixel export: error:") for line in err)


def test_cli_export_refuses_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Options of the other format, an existing output, a model TFLite export does not
    take: one line, status 1, nothing written or replaced (no Keras imported for these)."""
    weights = tmp_path / "f.safetensors"
    save_weights(weights, get_model("fsrcnn", scale=2).state_dict(), model="fsrcnn",
                 config={"scale": 2})  # fmt: skip
    existing = tmp_path / "old.onnx"
    existing.write_bytes(b"keep me")
    calls = [
        (["-o", str(tmp_path / "a.tflite"), "--opset", "13"], "--opset: for --format onnx"),
        (["-o", str(tmp_path / "a.onnx"), "--int8"], "--int8: for --format tflite"),
        (["-o", str(tmp_path / "a.tflite"), "--int8"], "--int8 needs --calibration"),
        (["-o", str(tmp_path / "a.tflite"), "--calibration", "x"], "is for --int8"),
        (["-o", str(tmp_path / "a.tflite"), "--for", "dnn_superres"], "--for: for --format onnx"),
        (["-o", str(tmp_path / "a.bin"), "--format", "tflite"], "ESPCN-architecture weights"),
        (["-o", str(existing)], "exists (use --overwrite"),
    ]
    for extra, message in calls:
        assert main(["export", "--weights", str(weights), *extra]) == 1, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (extra, err)
    assert existing.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.safetensors", "old.onnx"]
    assert main(["export", "--weights", str(weights), "-o", str(existing), "--overwrite"]) == 0
    assert existing.read_bytes() != b"keep me"
