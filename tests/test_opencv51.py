"""OpenCV >= 5.1 runs our ONNX exports of the imported dnn_superres models like subpixel does.

OpenCV 5.1 has no TensorFlow importer: ``DnnSuperResImpl.readModel`` reads ONNX. The OpenCV
side runs in another interpreter, named by ``SUBPIXEL_OPENCV51_PYTHON`` (a Python with numpy
and ``opencv-contrib-python-headless>=5.1``), through ``tests/opencv51_runner.py``; these
tests skip when it is unset. Both routes are compared with
:func:`subpixel.interop.opencv_upsample` (OpenCV's pipeline in numpy around the PyTorch
model): ``DnnSuperResImpl`` on ``export --for dnn_superres`` files, and
``cv2.dnn.readNetFromONNX`` with the YCrCb steps written out on plain exports.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from subpixel.cli import main
from subpixel.interop import import_opencv, opencv_upsample, to_onnx
from subpixel.interop.onnx_export import check_onnx, export_bytes, onnx_ops
from subpixel.interop.opencv_onnx import METADATA_KEY, dnn_superres_scale, to_dnn_superres
from subpixel.models import get_model

onnx = pytest.importorskip("onnx")

RUNNER = Path(__file__).with_name("opencv51_runner.py")
ENV = "SUBPIXEL_OPENCV51_PYTHON"
MODELS = [
    ("opencv-espcn", "ESPCN_x2"),
    ("opencv-espcn", "ESPCN_x3"),
    ("opencv-espcn", "ESPCN_x4"),
    ("opencv-fsrcnn", "FSRCNN_x3"),
]


def _run(python: str, *args: str) -> str:
    done = subprocess.run(
        [python, str(RUNNER), *args], capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"{RUNNER.name} {' '.join(args[:4])} failed:\n{done.stderr[-3000:]}")
    return done.stdout


@pytest.fixture(scope="session")
def opencv51() -> str:
    """The interpreter with OpenCV >= 5.1; skips when ``SUBPIXEL_OPENCV51_PYTHON`` is unset."""
    python = os.environ.get(ENV)
    if not python:
        pytest.skip(f"{ENV} is not set (a Python with opencv-contrib-python-headless>=5.1)")
    try:
        version = _run(python, "--version").strip()
    except (OSError, AssertionError) as exc:
        pytest.fail(f"{ENV}={python} cannot run {RUNNER.name}: {exc}")
    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) < (5, 1):
        pytest.fail(f"{ENV}={python} has OpenCV {version}, these tests need >= 5.1")
    return python


@pytest.fixture(scope="module")
def images(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A 60×70 Set5 crop (BGR), a random colour image and a grey crop, as .npy files."""
    image_module = pytest.importorskip("PIL.Image")
    path = sorted((data_dir / "sr" / "Set5").glob("*.png"))[0]
    rgb = np.asarray(image_module.open(path).convert("RGB"))
    natural = np.ascontiguousarray(rgb[40:100, 50:120, ::-1])
    noise = np.random.default_rng(0).integers(0, 256, (21, 34, 3), dtype=np.uint8)
    grey = np.ascontiguousarray(natural[..., 1])
    folder = tmp_path_factory.mktemp("images")
    files = []
    for name, image in (("natural", natural), ("noise", noise), ("grey", grey)):
        files.append(folder / f"{name}.npy")
        np.save(files[-1], image)
    return files


def _compare(ours: np.ndarray, got: np.ndarray, what: str) -> None:
    assert got.shape == ours.shape and got.dtype == np.uint8, f"{what}: {got.shape} {got.dtype}"
    diff = np.abs(ours.astype(int) - got.astype(int))
    assert diff.max() <= 1, f"{what}: {diff.max()} grey levels"
    assert (diff > 0).mean() < 1e-3, f"{what}: {(diff > 0).mean():.2e} of pixels differ"


@pytest.mark.data
@pytest.mark.parametrize(("folder", "name"), MODELS, ids=[name for _, name in MODELS])
def test_opencv51_runs_our_exports(
    opencv51: str, data_dir: Path, images: list[Path], tmp_path: Path, folder: str, name: str
) -> None:
    imported = import_opencv(data_dir / "models" / folder / f"{name}.pb")
    model, scale, algorithm = imported.model.eval(), imported.scale, imported.name
    info = to_dnn_superres(model, tmp_path / "sr.onnx", algorithm=algorithm)
    assert (info.scale, info.algorithm) == (scale, algorithm)
    plain = to_onnx(model, tmp_path / "plain.onnx")
    files = [str(f) for f in images]
    _run(opencv51, "superres", str(info.path), algorithm, str(scale), str(tmp_path / "sr"), *files)
    _run(opencv51, "net", str(plain), algorithm, str(scale), str(tmp_path / "net"), *files)
    for image in images:
        ours = opencv_upsample(model, np.load(image))
        for route in ("sr", "net"):
            got = np.load(tmp_path / route / image.name)
            _compare(ours, got, f"{name} {route} {image.stem}")


@pytest.mark.data
def test_opencv51_cli_export_and_non_native_scale(
    opencv51: str, data_dir: Path, images: list[Path], tmp_path: Path
) -> None:
    """``subpixel export --for dnn_superres`` on an imported file; a ×5 model (no
    ``DepthToSpace``: contrib's layer would take 25 channels for 3 colours × ×2)."""
    weights = tmp_path / "espcn_x3.safetensors"
    pb = data_dir / "models" / "opencv-espcn" / "ESPCN_x3.pb"
    assert main(["import-opencv", str(pb), "-o", str(weights)]) == 0
    onnx_file = tmp_path / "ESPCN_x3.onnx"
    args = ["export", "--weights", str(weights), "--for", "dnn_superres", "-o", str(onnx_file)]
    assert main(args) == 0
    torch.manual_seed(0)
    x5 = get_model("espcn", scale=5, features=(16, 8)).eval()
    info = to_dnn_superres(x5, tmp_path / "x5.onnx")
    assert "DepthToSpace" not in onnx_ops(info.path)
    files = [str(f) for f in images]
    _run(opencv51, "superres", str(onnx_file), "espcn", "3", str(tmp_path / "x3"), *files)
    _run(opencv51, "superres", str(info.path), "espcn", "5", str(tmp_path / "x5"), *files)
    x3 = get_model("espcn", weights=weights)
    for image in images:
        for model, out in ((x3, "x3"), (x5, "x5")):
            ours = opencv_upsample(model, np.load(image))
            _compare(ours, np.load(tmp_path / out / image.name), f"{out} {image.stem}")


# --- the export itself (no OpenCV needed) ----------------------------------------------------


def test_dnn_superres_layout_and_metadata(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = get_model("espcn", scale=3, features=(8, 4)).eval()
    info = to_dnn_superres(model, tmp_path / "m.onnx", algorithm="fsrcnn")
    proto = onnx.load(str(info.path))
    (inp,), (out,) = proto.graph.input, proto.graph.output
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert (inp.name, out.name, dims[3]) == ("input", "output", 1)
    assert all(isinstance(d, str) for d in dims[:3])  # batch, height and width dynamic
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta[METADATA_KEY]) == {"algorithm": "fsrcnn", "scale": 3}
    assert onnx_ops(info.path)[:2] == ["Transpose", "Conv"]
    assert "DepthToSpace" in onnx_ops(info.path)
    assert check_onnx(model, info.path, ((9, 13), (16, 5)), channels_last=True) < 1e-5
    y = np.random.default_rng(0).random((1, 7, 11, 1), dtype=np.float32)
    session = ort.InferenceSession(str(info.path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": y})
    with torch.no_grad():
        ref = model(torch.from_numpy(y).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5)
    static = to_dnn_superres(model, tmp_path / "s.onnx", size=(9, 13))
    dims = [
        d.dim_value for d in onnx.load(str(static.path)).graph.input[0].type.tensor_type.shape.dim
    ]
    assert dims == [1, 9, 13, 1]


def test_dnn_superres_refuses_other_models(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    rgb = get_model("espcn", scale=2, channels=3, features=(8, 4))
    with pytest.raises(ValueError, match="one channel"):
        to_dnn_superres(rgb, tmp_path / "rgb.onnx")
    with pytest.raises(ValueError, match="algorithm"):
        to_dnn_superres(get_model("espcn", scale=2), tmp_path / "a.onnx", algorithm="edsr")
    assert dnn_superres_scale(get_model("fsrcnn", scale=4)) == 4
    weights = tmp_path / "rgb.safetensors"
    from subpixel.serialization import save_weights

    save_weights(
        weights,
        rgb.state_dict(),
        model="espcn",
        config={"scale": 2, "channels": 3, "features": [8, 4]},
    )
    args = ["export", "--weights", str(weights), "--for", "dnn_superres", "-o", str(tmp_path / "r")]
    assert main(args) != 0


def test_transpose_perms_are_non_negative() -> None:
    """The tracer writes ``movedim(-1, 1)`` as ``perm=[0, -1, 1, 2]``; OpenCV refuses that."""

    class Moves(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.movedim(-1, 1) * 2

    proto = onnx.load_from_string(export_bytes(Moves(), (1, 4, 5, 3)))
    perms = [list(a.ints) for n in proto.graph.node for a in n.attribute if a.name == "perm"]
    assert perms and all(p >= 0 for perm in perms for p in perm)
