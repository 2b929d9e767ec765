"""OpenCV dnn_superres import: weights, network and whole pipeline against OpenCV itself.

OpenCV's answers come from :mod:`opencv_reference`: live where OpenCV still reads TensorFlow
graphs (≤ 5.0, the development lock's), stored where it does not (5.1+). Every parity test runs
twice, against live OpenCV (``[opencv]``; checked against the stored answers) and against the
stored answers alone (``[stored]``, what an OpenCV 5.1 machine does), so neither route is
skipped on any OpenCV.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from opencv_reference import RECORD, Reference
from subpixel.cli import main
from subpixel.convert import transposed_to_subpixel
from subpixel.interop import import_opencv, load_opencv, opencv_upsample
from subpixel.interop.graphdef import GraphDefError, encode_const_node, parse_graphdef
from subpixel.interop.opencv import PIPELINE
from subpixel.interop.opencv_pipeline import (
    bgr_to_ycrcb,
    from_unit,
    resize_linear,
    to_unit,
    ycrcb_to_bgr,
)
from subpixel.models import get_model
from subpixel.models.espcn import ESPCN
from subpixel.models.fsrcnn import FSRCNN
from subpixel.serialization import load_weights

cv2 = pytest.importorskip("cv2")

FILES = [("opencv-espcn", "ESPCN", s, "espcn") for s in (2, 3, 4)] + [
    ("opencv-fsrcnn", name, s, "fsrcnn") for name in ("FSRCNN", "FSRCNN-small") for s in (2, 3, 4)
]
IDS = [f"{name}_x{s}" for _, name, s, _ in FILES]


def _pb(data_dir: Path, folder: str, name: str, scale: int) -> Path:
    return data_dir / "models" / folder / f"{name}_x{scale}.pb"


@pytest.fixture(params=["opencv", "stored"])
def opencv(request: pytest.FixtureRequest) -> Reference:
    """OpenCV's answers: live (where it reads .pb graphs) or the stored ones."""
    if request.param == "stored" and RECORD:
        pytest.skip("recording OpenCV's answers (scripts/record_opencv_references.py)")
    return Reference(stored_only=request.param == "stored")


@pytest.fixture(scope="module")
def natural(data_dir: Path) -> np.ndarray:
    """A 60×70 BGR crop of a Set5 image."""
    path = sorted((data_dir / "sr" / "Set5").glob("*.png"))[0]
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(image[40:100, 50:120])


# --- the GraphDef reader -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype", [np.float32, np.float64, np.int32, np.int64, np.uint8, np.float16]
)
def test_graphdef_const_round_trip(dtype: type) -> None:
    value = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    data = encode_const_node("a", value) + encode_const_node("b/c", value[0], inputs=("a",))
    a, b = parse_graphdef(data)
    assert (a.name, a.op, b.name, b.inputs) == ("a", "Const", "b/c", ["a"])
    np.testing.assert_array_equal(a.attr["value"], value)
    assert a.attr["value"].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(b.attr["value"], value[0])


@pytest.mark.parametrize("data", [b"\x0a\xff", b"\x0a\x05ab", b"\x07", b"\x0a\x02\x12"])
def test_graphdef_malformed(data: bytes) -> None:
    with pytest.raises(GraphDefError):
        parse_graphdef(data)


def test_graphdef_file_errors_name_the_file(tmp_path: Path, data_dir: Path) -> None:
    empty = tmp_path / "empty.pb"
    empty.write_bytes(b"")
    cut = tmp_path / "cut.pb"
    cut.write_bytes(_pb(data_dir, "opencv-espcn", "ESPCN", 2).read_bytes()[:5000])
    consts = tmp_path / "consts.pb"
    consts.write_bytes(encode_const_node("w", np.ones(3, np.float32)))
    for path in (empty, cut, consts, tmp_path / "missing.pb"):
        with pytest.raises(GraphDefError, match=str(path.name)) as info:
            load_opencv(path)
        assert "\n" not in str(info.value)


# --- the import: weights and network against OpenCV -------------------------------------------


@pytest.mark.parametrize(("folder", "name", "scale", "algorithm"), FILES, ids=IDS)
def test_import_weights_equal_opencv_layers(
    data_dir: Path, opencv: Reference, folder: str, name: str, scale: int, algorithm: str
) -> None:
    """The first conv's OIHW kernel equals the one OpenCV's TensorFlow importer built."""
    path = _pb(data_dir, folder, name, scale)
    imported = import_opencv(path)
    cv_kernel = opencv.layer_blob(path, "conv1")
    first = imported.model.features[0] if algorithm == "espcn" else imported.model.feature[0]
    np.testing.assert_array_equal(first.weight.detach().numpy(), cv_kernel)
    assert imported.name == algorithm and imported.scale == scale
    if algorithm == "fsrcnn":
        d, s, m = (32, 5, 1) if "small" in name else (56, 12, 4)
        assert (imported.config["features"], imported.config["shrink"]) == (d, s)
        assert imported.config["mapping"] == m
        # PReLU slope: OpenCV's "mul" scale blob times the graph's 0.5 (Power layer) times 2.
        np.testing.assert_allclose(
            imported.model.feature[1].weight.detach().numpy(),
            opencv.layer_blob(path, "mul").reshape(-1),
            rtol=1e-6,
        )
    else:
        assert imported.config["activation"] == "relu"
        assert imported.config["output_activation"] == "tanh"


@pytest.mark.parametrize(("folder", "name", "scale", "algorithm"), FILES, ids=IDS)
def test_network_equals_opencv_dnn(
    data_dir: Path, opencv: Reference, folder: str, name: str, scale: int, algorithm: str
) -> None:
    path = _pb(data_dir, folder, name, scale)
    y = np.random.default_rng(scale).random((1, 1, 19, 26)).astype(np.float32)
    ref = opencv.forward(path, y)
    for upsampler in ("subpixel", "transposed"):
        model = load_opencv(path, upsampler=upsampler)
        with torch.no_grad():
            out = model(torch.from_numpy(y)).numpy()
        assert out.shape == ref.shape == (1, 1, 19 * scale, 26 * scale)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)  # float32 reassociation


# --- the whole pipeline against cv2.dnn_superres ----------------------------------------------


def _assert_within_a_level(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    """OpenCV parity: a float network's last bit may flip a rounding, rarely."""
    assert ours.shape == ref.shape and ours.dtype == np.uint8
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert diff.max() <= 1, f"{what}: {diff.max()} levels"
    assert (diff > 0).mean() < 1e-3


@pytest.mark.parametrize(("folder", "name", "scale", "algorithm"), FILES, ids=IDS)
def test_opencv_upsample_matches_dnn_superres(
    data_dir: Path,
    opencv: Reference,
    natural: np.ndarray,
    folder: str,
    name: str,
    scale: int,
    algorithm: str,
) -> None:
    path = _pb(data_dir, folder, name, scale)
    model = load_opencv(path)
    rng = np.random.default_rng(scale)
    images = [natural, rng.integers(0, 256, (21, 34, 3), dtype=np.uint8), natural[..., 1].copy()]
    for image in images:
        _assert_within_a_level(
            opencv_upsample(model, image), opencv.upsample(path, algorithm, scale, image), path.name
        )
    rgb = np.ascontiguousarray(natural[..., ::-1])
    ref_rgb = opencv.upsample(path, algorithm, scale, natural)[..., ::-1]
    assert np.abs(opencv_upsample(model, rgb, order="rgb").astype(int) - ref_rgb).max() <= 1


@pytest.mark.parametrize(("folder", "name", "scale", "algorithm"), FILES, ids=IDS)
def test_upscale_with_imported_weights_runs_fast_and_matches_dnn_superres(
    tmp_path: Path,
    data_dir: Path,
    opencv: Reference,
    natural: np.ndarray,
    folder: str,
    name: str,
    scale: int,
    algorithm: str,
) -> None:
    """``subpixel upscale`` with an imported ``.pb``: the fast backends, OpenCV's output."""
    import subpixel
    from subpixel.upscale import Upscaler

    path = _pb(data_dir, folder, name, scale)
    weights = tmp_path / f"{name}_x{scale}.safetensors"
    assert main(["import-opencv", str(path), "-o", str(weights)]) == 0
    up = Upscaler(weights, scale=scale)
    assert up.backend.name == ("cpu-fp32" if algorithm == "espcn" else "cpu-layers")
    assert "OpenCV's integer steps" in up.backend.describe()
    rgb = np.ascontiguousarray(natural[..., ::-1])
    ref = opencv.upsample(path, algorithm, scale, natural)[..., ::-1]
    for ours in (up(rgb), subpixel.upscale(rgb, scale=scale, weights=weights)):
        _assert_within_a_level(ours, ref, f"{name}_x{scale}")


def test_color_conversions_bit_exact() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (256, 1024, 3), dtype=np.uint8)
    corners = np.array(np.meshgrid(*[[0, 1, 127, 128, 254, 255]] * 3)).reshape(3, -1).T
    for img in (pixels, corners.astype(np.uint8)[None]):
        np.testing.assert_array_equal(bgr_to_ycrcb(img), cv2.cvtColor(img, cv2.COLOR_BGR2YCrCb))
        np.testing.assert_array_equal(ycrcb_to_bgr(img), cv2.cvtColor(img, cv2.COLOR_YCrCb2BGR))


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("shape", [(2, 2), (13, 17), (40, 31, 2)])
def test_resize_linear_bit_exact(scale: int, shape: tuple[int, ...]) -> None:
    x = to_unit(np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8))
    planes = x.reshape(*x.shape[:2], -1)
    ref = np.stack(
        [
            cv2.resize(np.ascontiguousarray(planes[..., i]), None, fx=scale, fy=scale)
            for i in range(planes.shape[2])
        ],
        axis=-1,
    ).reshape(x.shape[0] * scale, x.shape[1] * scale, *x.shape[2:])
    np.testing.assert_array_equal(resize_linear(x, scale), ref)


def test_unit_conversions_round_like_opencv() -> None:
    levels = np.arange(256, dtype=np.uint8)
    np.testing.assert_allclose(to_unit(levels), levels / 255.0, rtol=1e-7)
    # Exact halves, negatives and overflow: OpenCV's saturate_cast rounds half to even.
    x = (np.arange(-40, 600, dtype=np.float32) / 2) / np.float32(255)
    ref = cv2.multiply(x * np.float32(255), np.ones_like(x), dtype=cv2.CV_8U).reshape(-1)
    np.testing.assert_array_equal(from_unit(x), ref)


def test_opencv_upsample_rejects_bad_input() -> None:
    model = torch.nn.Upsample(scale_factor=2)
    with pytest.raises(TypeError, match="uint8"):
        opencv_upsample(model, np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        opencv_upsample(model, np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="order"):
        opencv_upsample(model, np.zeros((4, 4, 3), np.uint8), order="yuv")


# --- FSRCNN: both upsamplers, saving and loading ---------------------------------------------


@pytest.mark.parametrize(("scale", "kernel"), [(2, 9), (3, 9), (4, 9), (3, 3), (2, 6)])
def test_fsrcnn_transposed_and_subpixel_agree(scale: int, kernel: int) -> None:
    model = FSRCNN(scale, deconv_kernel=kernel).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.upsample.weight, 0, 0.1)
    x = torch.rand(2, 1, 9, 14)
    ref = model(x)
    assert ref.shape == (2, 1, 9 * scale, 14 * scale)
    converted = FSRCNN(scale, deconv_kernel=kernel, upsampler="subpixel").eval()
    state = model.state_dict()
    sub = transposed_to_subpixel(model.upsample)
    state.update({f"upsample.{k}": v for k, v in sub.state_dict().items()})
    del state["upsample.weight"], state["upsample.bias"]
    converted.load_state_dict(state)
    torch.testing.assert_close(converted(x), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["ESPCN_x3", "FSRCNN_x4", "FSRCNN-small_x2"])
@pytest.mark.parametrize("upsampler", ["subpixel", "transposed"])
def test_save_and_get_model_round_trip(
    data_dir: Path, tmp_path: Path, name: str, upsampler: str
) -> None:
    folder = "opencv-espcn" if name.startswith("ESPCN") else "opencv-fsrcnn"
    path = data_dir / "models" / folder / f"{name}.pb"
    imported = import_opencv(path, upsampler=upsampler)
    out = tmp_path / f"{name}.safetensors"
    imported.save(out)
    _, meta = load_weights(out)
    assert meta.model == imported.name and meta.config == json.loads(json.dumps(imported.config))
    assert meta.card["source_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    with safe_open(str(out), framework="pt") as fh:
        assert json.loads(fh.metadata()["subpixel.pipeline"]) == PIPELINE
    model = get_model(imported.name, weights=out)
    expected = ESPCN if imported.name == "espcn" else FSRCNN
    assert isinstance(model, expected)
    x = torch.rand(1, 1, 11, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), imported.model(x))


def test_espcn_output_activation_validated() -> None:
    with pytest.raises(ValueError, match="output_activation"):
        ESPCN(scale=2, output_activation="softmax")
    y = ESPCN(scale=2, output_activation="tanh")(torch.full((1, 1, 4, 4), 100.0))
    assert y.abs().max() <= 1


def test_fsrcnn_validates() -> None:
    with pytest.raises(ValueError, match="upsampler"):
        FSRCNN(2, upsampler="deconv")
    with pytest.raises(ValueError, match="kernel"):
        FSRCNN(4, deconv_kernel=3)


# --- the command line ---------------------------------------------------------------------------


def test_cli_import_eval_and_errors(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pb = data_dir / "models" / "opencv-fsrcnn" / "FSRCNN-small_x2.pb"
    out = tmp_path / "small.safetensors"
    assert main(["import-opencv", str(pb), "-o", str(out), "--verify"]) == 0
    printed = capsys.readouterr().out
    assert "fsrcnn x2" in printed and "vs cv2.dnn_superres" in printed
    assert isinstance(get_model("fsrcnn", weights=out), FSRCNN)
    # eval takes the model name from the file (no --model).
    folder = tmp_path / "hr"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.random.default_rng(0).integers(0, 256, (24, 30, 3)))
    assert (
        main(["eval", "--weights", str(out), "--scale", "2", "--data", str(folder), "--json"]) == 0
    )
    scores = json.loads(capsys.readouterr().out)
    assert scores["hr"]["images"] == 1
    # Errors are one line naming the file.
    assert main(["import-opencv", str(pb), "-o", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\x00" * 10)
    assert main(["import-opencv", str(bad), "-o", str(tmp_path / "x.safetensors")]) == 1
    err = capsys.readouterr().err.strip()
    assert "bad.pb" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(("folder", "name", "scale", "algorithm"), FILES, ids=IDS)
def test_upscale_command_matches_opencv(
    data_dir: Path,
    opencv: Reference,
    tmp_path: Path,
    natural: np.ndarray,
    folder: str,
    name: str,
    scale: int,
    algorithm: str,
) -> None:
    """`subpixel upscale` with an imported file reproduces cv2.dnn_superres within 1 level,
    whole (the image is smaller than a tile) and in 16-pixel tiles (overlapped chroma)."""
    pb = _pb(data_dir, folder, name, scale)
    weights = tmp_path / "model.safetensors"
    assert main(["import-opencv", str(pb), "-o", str(weights)]) == 0
    grey = np.ascontiguousarray(natural[5:40, 7:50, 1])
    for image, stem in ((natural, "colour"), (grey, "grey")):
        src = tmp_path / f"{stem}.png"
        cv2.imwrite(str(src), image)
        ref = opencv.upsample(pb, algorithm, scale, image).astype(int)
        for tile in ("0", "16"):
            dst = tmp_path / f"{stem}_{tile}.png"
            argv = ["upscale", str(src), "-o", str(dst), "--weights", str(weights)]
            assert main([*argv, "--tile", tile, "--no-progress"]) == 0
            out = cv2.imread(str(dst), cv2.IMREAD_UNCHANGED).astype(int)
            diff = np.abs(out - ref)
            assert out.shape == ref.shape and diff.max() <= 1, f"{stem}, tile {tile}"
            assert (diff > 0).mean() < 1e-3


@pytest.mark.parametrize("name", ["ESPCN_x3", "FSRCNN-small_x2"])
def test_upscale_reads_pb_graphs_directly(
    data_dir: Path, opencv: Reference, tmp_path: Path, natural: np.ndarray, name: str
) -> None:
    """`--weights X.pb` imports on the fly: the same output as import-opencv then upscale,
    and within one level of cv2.dnn_superres."""
    import subpixel

    folder = "opencv-espcn" if name.startswith("ESPCN") else "opencv-fsrcnn"
    pb = data_dir / "models" / folder / f"{name}.pb"
    algorithm, scale = name.split("_x")[0].split("-")[0].lower(), int(name[-1])
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), natural)
    weights = tmp_path / "imported.safetensors"
    assert main(["import-opencv", str(pb), "-o", str(weights)]) == 0
    outputs = {}
    for label, source in (("pb", pb), ("two-step", weights)):
        dst = tmp_path / f"{label}.png"
        assert main(["upscale", str(src), "-o", str(dst), "--weights", str(source)]) == 0
        outputs[label] = cv2.imread(str(dst), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(outputs["pb"], outputs["two-step"])
    ref = opencv.upsample(pb, algorithm, scale, natural).astype(int)
    assert np.abs(outputs["pb"].astype(int) - ref).max() <= 1
    rgb = np.ascontiguousarray(natural[..., ::-1])
    api = subpixel.upscale(rgb, weights=pb)
    np.testing.assert_array_equal(api, outputs["pb"][..., ::-1])
    with pytest.raises(ValueError, match=f"{name}.pb.*×{scale}"):
        subpixel.upscale(rgb, weights=pb, scale=scale + 1)
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\x00" * 10)
    assert main(["upscale", str(src), "-o", str(tmp_path / "x.png"), "--weights", str(bad)]) != 0
