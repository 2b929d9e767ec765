"""subpixel.upscale: the Python API, the processing pipeline, tiling and image files.

References are computed independently: the YCbCr formulas written out here, the model
called directly with PyTorch on the whole image, Pillow's bicubic resize for the chroma
(it matches MATLAB's away from the borders), Pillow and FFmpeg (PyAV) as PNG decoders.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms
from torch import nn

import subpixel
from subpixel.fast import opencv_kernel
from subpixel.models import get_model
from subpixel.serialization import WeightsError, save_weights
from subpixel.upscale import (
    PIPELINE_KEY,
    Pipeline,
    Upscaler,
    compare_path,
    read_pipeline,
    upscale,
    upscale_file,
)

# MATLAB rgb2ycbcr, written out independently of subpixel.color.
_M = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])
_OFF = np.array([16.0, 128.0, 128.0])


def _model(scale: int = 2, seed: int = 0) -> nn.Module:
    """A random ESPCN with weights large enough that its output is not flat."""
    torch.manual_seed(seed)
    m = get_model("espcn", scale=scale)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.08)
        m.upsample.bias.fill_(0.5)
    return m.eval()


def _pil_resize(plane: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic (a = -0.5) upscaling of a float plane with Pillow."""
    im = Image.fromarray(plane.astype(np.float32), mode="F")
    h, w = plane.shape
    return np.asarray(im.resize((w * scale, h * scale), Image.Resampling.BICUBIC), np.float64)


def _reference_rgb(img: np.ndarray, model: nn.Module, scale: int) -> np.ndarray:
    """The paper's processing of a uint8 RGB image, from scratch, in float64."""
    rgb = img.astype(np.float64) / 255
    ycc = (rgb @ _M.T + _OFF) / 255
    with torch.no_grad():
        y = model(torch.from_numpy(ycc[..., 0]).float()[None, None])[0, 0].clamp(0, 1).double()
    cb = _pil_resize(ycc[..., 1], scale)
    cr = _pil_resize(ycc[..., 2], scale)
    up = np.stack([y.numpy(), cb, cr], axis=-1) * 255
    out = (up - _OFF) @ np.linalg.inv(_M).T  # RGB in [0, 1]
    return np.floor(np.clip(out, 0, 1) * 255 + 0.5)


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(1)
    smooth = np.kron(rng.integers(0, 256, (8, 9, 3)), np.ones((5, 5, 1)))
    noisy = smooth + rng.normal(0, 12, smooth.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)  # 40×45


# -- the public surface ---------------------------------------------------------------------


def test_lazy_callable_module() -> None:
    code = textwrap.dedent(
        """
        import sys, subpixel
        heavy = {"PIL", "av", "subpixel.upscale"}
        assert not heavy & set(sys.modules)
        import numpy as np
        from subpixel.models import get_model
        out = subpixel.upscale(np.zeros((3, 4), np.uint8), weights=get_model("espcn", scale=2))
        assert out.shape == (6, 8)
        from subpixel.upscale import upscale, ImageError
        assert subpixel.upscale.upscale is upscale and issubclass(ImageError, ValueError)
        assert "av" not in sys.modules
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_signature_and_all() -> None:
    import inspect

    assert "upscale" in subpixel.__all__
    params = inspect.signature(subpixel.upscale).parameters
    assert list(params)[:3] == ["image", "scale", "weights"]


# -- the pipeline ---------------------------------------------------------------------------


def test_rgb_matches_independent_reference(rgb: np.ndarray) -> None:
    model = _model(3)
    out = upscale(rgb, weights=model)
    ref = _reference_rgb(rgb, model, 3)
    assert out.shape == (120, 135, 3) and out.dtype == np.uint8
    # Pillow and MATLAB differ only where the kernel leaves the image (2 LR pixels).
    inner = (slice(6, -6), slice(6, -6))
    diff = np.abs(out[inner].astype(int) - ref[inner])
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_grey_goes_through_model_directly() -> None:
    model = _model(2)
    img = np.random.default_rng(0).integers(0, 256, (12, 15), dtype=np.uint8)
    with torch.no_grad():
        ref = model(torch.from_numpy(img / 255).float()[None, None])[0, 0].clamp(0, 1).numpy()
    out = upscale(img, weights=model)
    assert out.shape == (24, 30)
    assert np.abs(out.astype(int) - np.floor(ref * 255 + 0.5)).max() <= 1


def test_alpha_is_bicubic(rgb: np.ndarray) -> None:
    alpha = np.random.default_rng(2).integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    rgba = np.dstack([rgb, alpha])
    model = _model(2)
    out = upscale(rgba, weights=model)
    ref = np.floor(np.clip(_pil_resize(alpha / 255, 2), 0, 1) * 255 + 0.5)
    inner = (slice(4, -4), slice(4, -4))
    assert np.abs(out[..., 3][inner].astype(int) - ref[inner]).max() <= 1
    assert (out[..., :3] == upscale(rgb, weights=model)).all()


def test_opencv_pipeline_formulas() -> None:
    p = Pipeline(color="opencv-ycrcb", chroma="bicubic-opencv")
    rgb = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    y, c = p.split(rgb)
    assert y.item() == pytest.approx(0.299)
    assert c[0, 0].item() == pytest.approx((1 - 0.299) * 0.713 + 0.5)  # Cr
    assert c[0, 1].item() == pytest.approx((0 - 0.299) * 0.564 + 0.5)  # Cb
    x = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    back = p.merge(*p.split(x))  # OpenCV's rounded constants: inverse to ~1e-3
    assert (back - x).abs().max() < 2e-3
    z = torch.rand(1, 2, 4, 5)
    expected = torch.nn.functional.interpolate(z, scale_factor=3, mode="bicubic")
    assert torch.equal(p.resample(z, 3), expected)


def test_pipeline_json_and_validation(tmp_path: Path) -> None:
    p = Pipeline(color="opencv-ycrcb", chroma="bicubic-opencv")
    assert json.loads(p.to_json()) == {
        "color": "opencv-ycrcb",
        "chroma": "bicubic-opencv",
        "model_range": "unit",
    }
    assert Pipeline.from_json(p.to_json()) == p and Pipeline.from_json("{}") == Pipeline()
    with pytest.raises(ValueError, match="color"):
        Pipeline(color="bt709")
    with pytest.raises(ValueError, match="unknown field"):
        Pipeline.from_json('{"gamma": 2}')
    m = _model(2)
    f = tmp_path / "cv.safetensors"
    save_weights(
        f, m.state_dict(), model="espcn", config={"scale": 2}, extra={PIPELINE_KEY: p.to_json()}
    )
    assert read_pipeline(f) == p
    assert Upscaler(f).pipeline == p
    plain = tmp_path / "plain.safetensors"
    save_weights(plain, m.state_dict(), model="espcn", config={"scale": 2})
    assert read_pipeline(plain) == Pipeline()
    bad = tmp_path / "bad.safetensors"
    save_weights(bad, m.state_dict(), model="espcn", config={"scale": 2}, extra={PIPELINE_KEY: "{"})
    with pytest.raises(WeightsError, match=r"bad\.safetensors"):
        Upscaler(bad)


def test_pipeline_keyword_overrides(rgb: np.ndarray) -> None:
    m = _model(2)
    a = upscale(rgb, weights=m)
    b = upscale(rgb, weights=m, pipeline=Pipeline(color="opencv-ycrcb", chroma="bicubic-opencv"))
    assert a.shape == b.shape and not np.array_equal(a, b)


# -- tiling ---------------------------------------------------------------------------------


def test_receptive_radius_of_espcn() -> None:
    from subpixel._upscale.tiling import receptive_radius

    assert receptive_radius(get_model("espcn", scale=3)) == 4
    assert receptive_radius(get_model("espcn", scale=3, kernels=(9, 5, 5), features=(64, 32))) == 8


@pytest.mark.parametrize("scale", [2, 3])
@pytest.mark.parametrize("chroma", ["bicubic-matlab", "bicubic-opencv"])
def test_tiled_equals_untiled(scale: int, chroma: str) -> None:
    rng = np.random.default_rng(scale)
    img = rng.integers(0, 256, (53, 71, 4), dtype=np.uint8)
    up = Upscaler(_model(scale), pipeline=Pipeline(chroma=chroma), tile=0)
    whole = up(img)
    up.engine.tile = 16
    tiled = up(img)
    diff = np.abs(whole.astype(int) - tiled.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_overlap_of_exactly_the_radius_suffices() -> None:
    img = np.random.default_rng(5).random((40, 40, 1)).astype(np.float32)
    up = Upscaler(_model(2), tile=0)
    whole = up(img)
    up.engine.overlap = 4  # ESPCN's receptive radius; grey needs no chroma margin
    up.engine.tile = 8
    assert np.abs(up(img) - whole).max() < 1e-5
    up.engine.overlap = 3  # one short: tile seams show
    assert np.abs(up(img) - whole).max() > 1e-3


def test_large_image_memory_is_bounded(tmp_path: Path) -> None:
    """3000×3000 RGB ×3 through the streaming path: peak RSS grows far less than the output."""
    src = tmp_path / "big.png"
    yy, xx = np.mgrid[0:3000, 0:3000]
    img = np.stack([(yy // 12) % 256, (xx // 12) % 256, ((yy + xx) // 24) % 256], -1).astype(
        np.uint8
    )
    Image.fromarray(img).save(src, compress_level=1)
    del img, yy, xx
    w = tmp_path / "tiny.safetensors"
    tiny = get_model("espcn", scale=3, features=(8, 4))
    save_weights(w, tiny.state_dict(), model="espcn", config={"scale": 3, "features": [8, 4]})
    code = textwrap.dedent(
        f"""
        import resource, torch
        torch.set_num_threads(1)
        from subpixel.upscale import Upscaler
        up = Upscaler({str(w)!r})
        import PIL.Image, PIL.PngImagePlugin
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        up.upscale_file({str(src)!r}, {str(tmp_path / "out.png")!r})
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    grown_mb = int(res.stdout.strip())
    with Image.open(tmp_path / "out.png") as out:
        assert out.size == (9000, 9000)
    # The output alone is 243 MB as uint8 (324 MB inside Pillow); input 27 MB.
    assert grown_mb < 200, f"peak RSS grew by {grown_mb} MB"


# -- in-memory types ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(9, 7), (9, 7, 1), (9, 7, 2), (9, 7, 3), (9, 7, 4)])
def test_numpy_kinds(dtype: type, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        img = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    else:
        img = rng.random(shape).astype(dtype)
    out = upscale(img, weights=_model(2))
    assert out.dtype == dtype and out.shape == (18, 14, *shape[2:])


def test_uint16_keeps_precision() -> None:
    img = np.random.default_rng(0).random((10, 12, 3))
    m = _model(2)
    out16 = upscale(np.floor(img * 65535 + 0.5).astype(np.uint16), weights=m)
    outf = upscale(img.astype(np.float32), weights=m)
    assert np.abs(out16 / 65535 - outf).max() < 3e-4  # 8-bit would be ~2e-3
    assert len(np.unique(out16)) > 256


def test_tensor_kinds() -> None:
    m = _model(3)
    chw = torch.rand(3, 6, 5, dtype=torch.float64)
    out = upscale(chw, weights=m)
    assert out.shape == (3, 18, 15) and out.dtype == torch.float64
    hw = torch.rand(6, 5)
    assert upscale(hw, weights=m).shape == (18, 15)
    batch = torch.rand(2, 3, 6, 5)
    assert torch.allclose(upscale(batch, weights=m)[1], upscale(batch[1], weights=m), atol=1e-6)
    # Same numbers as the numpy path.
    via_np = upscale(chw.permute(1, 2, 0).numpy(), weights=m)
    assert np.allclose(out.permute(1, 2, 0).numpy(), via_np, atol=1e-6)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16", "P", "1", "CMYK", "F", "I"])
def test_pil_modes(mode: str) -> None:
    base = Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 10, 3), dtype=np.uint8))
    im = (
        base.convert(mode)
        if mode != "I;16"
        else Image.fromarray(np.arange(80, dtype=np.uint16).reshape(8, 10) * 800)
    )
    im.info["dpi"] = (72, 72)
    out = upscale(im, weights=_model(2))
    assert out.size == (20, 16)
    expected = {"P": "RGB", "1": "L", "CMYK": "RGB"}.get(mode, mode)
    assert out.mode == expected
    assert out.info["dpi"] == (144, 144)


def test_rejects_bad_values() -> None:
    m = _model(2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        upscale(np.full((4, 4), 200.0), weights=m)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        upscale(torch.full((1, 4, 4), float("nan")), weights=m)
    with pytest.raises(TypeError, match="int32"):
        upscale(np.zeros((4, 4), np.int32), weights=m)
    with pytest.raises(ValueError, match=r"C in 1\.\.4"):
        upscale(np.zeros((4, 4, 5), np.uint8), weights=m)
    with pytest.raises(TypeError, match="list"):
        upscale([[0.0]], weights=m)  # type: ignore[arg-type]


def test_scale_rules(tmp_path: Path) -> None:
    m = _model(2)
    with pytest.raises(ValueError, match="×2"):
        Upscaler(m, 3)
    f = tmp_path / "x2.safetensors"
    save_weights(f, m.state_dict(), model="espcn", config={"scale": 2})
    assert Upscaler(f).scale == 2  # the file's factor by default
    with pytest.raises(WeightsError, match="scale=2"):
        Upscaler(f, 3)

    class Custom(nn.Module):  # no .scale attribute: found by a probe
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 16, 3, padding=1)
            self.shuffle = nn.PixelShuffle(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.shuffle(self.conv(x))

    assert Upscaler(Custom()).scale == 4


def test_default_weights_missing_or_present() -> None:
    from subpixel.bundled import weights_path

    if weights_path("espcn", 3).exists():
        assert upscale(np.zeros((4, 4), np.uint8)).shape == (12, 12)
    else:
        with pytest.raises(WeightsError, match="bundled"):
            upscale(np.zeros((4, 4), np.uint8))


# -- files ----------------------------------------------------------------------------------


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    f = tmp_path / "x2.safetensors"
    save_weights(f, _model(2).state_dict(), model="espcn", config={"scale": 2})
    return f


def test_file_roundtrip_equals_array_api(tmp_path: Path, weights: Path, rgb: np.ndarray) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(rgb).save(src)
    before = src.read_bytes()
    dst = upscale_file(src, tmp_path / "out" / "b.png", weights=weights, tile=16)
    with Image.open(dst) as im:
        assert np.array_equal(np.asarray(im), upscale(rgb, weights=weights, tile=16))
    assert src.read_bytes() == before
    assert sorted(p.name for p in dst.parent.iterdir()) == ["b.png"]  # no temp file left


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif", ".webp"])
def test_output_formats(tmp_path: Path, weights: Path, rgb: np.ndarray, ext: str) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])).save(src)
    dst = upscale_file(src, tmp_path / f"b{ext}", weights=weights)
    with Image.open(dst) as im:
        assert im.size == (90, 80)
        assert im.format == {".jpg": "JPEG", ".tif": "TIFF", ".webp": "WEBP"}.get(
            ext, ext[1:].upper()
        )
        # JPEG has no alpha; Pillow reads 32-bit BMP back as RGB.
        assert im.mode == ("RGBA" if ext in (".png", ".tif", ".webp") else "RGB")


def test_metadata_kept(tmp_path: Path, weights: Path, rgb: np.ndarray) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "subpixel-test-camera"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    src = tmp_path / "photo.jpg"
    Image.fromarray(rgb).save(src, quality=95, icc_profile=icc, dpi=(300, 300), exif=exif)
    for ext in (".png", ".jpg", ".tif"):
        dst = upscale_file(src, tmp_path / f"out{ext}", weights=weights)
        with Image.open(dst) as im:
            assert im.size == (80, 90)  # orientation applied: 40×45 → 45×40 → ×2
            assert im.info.get("icc_profile") == icc
            assert tuple(round(d) for d in im.info["dpi"]) == (600, 600)
            out_exif = im.getexif()
            assert out_exif.get(0x010F) == "subpixel-test-camera"
            assert out_exif.get(0x0112, 1) == 1
    with Image.open(src) as im:
        from PIL import ImageOps

        upright = np.asarray(ImageOps.exif_transpose(im))
    with Image.open(tmp_path / "out.png") as im:
        assert np.array_equal(np.asarray(im), upscale(upright, weights=weights))


def test_16bit_png_and_tiff(tmp_path: Path, weights: Path) -> None:
    av = pytest.importorskip("av")
    rng = np.random.default_rng(0)
    grey = (rng.random((20, 30)) * 65535).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g.png")
    out = upscale_file(tmp_path / "g.png", tmp_path / "g2.png", weights=weights)
    with Image.open(out) as im:
        assert im.mode == "I;16"
        got = np.asarray(im)
    assert np.array_equal(got, upscale(grey, weights=weights))
    upscale_file(tmp_path / "g.png", tmp_path / "g2.tif", weights=weights)
    with Image.open(tmp_path / "g2.tif") as im:
        assert im.mode == "I;16" and np.array_equal(np.asarray(im), got)
    # 16-bit RGB PNG, written with our encoder, checked with FFmpeg's decoder.
    from subpixel._upscale.png import PngWriter

    rgb16 = (rng.random((20, 30, 3)) * 65535).astype(np.uint16)
    with (
        (tmp_path / "c.png").open("wb") as fh,
        PngWriter(fh, width=30, height=20, channels=3, bit_depth=16) as png,
    ):
        png.write_rows(rgb16)
    upscale_file(tmp_path / "c.png", tmp_path / "c2.png", weights=weights)
    with av.open(str(tmp_path / "c2.png")) as c:
        decoded = next(c.decode(video=0)).to_ndarray(format="rgb48le")
    assert decoded.dtype == np.uint16 and np.array_equal(decoded, upscale(rgb16, weights=weights))


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("depth", [8, 16])
def test_png_writer_against_decoders(channels: int, depth: int) -> None:
    from subpixel._upscale.png import PngWriter

    dtype = np.uint8 if depth == 8 else np.uint16
    img = np.random.default_rng(channels).integers(0, 2**depth, (150, 37, channels)).astype(dtype)
    buf = io.BytesIO()
    with PngWriter(
        buf, width=37, height=150, channels=channels, bit_depth=depth, dpi=(96, 96)
    ) as w:
        w.write_rows(img[:70])
        w.write_rows(img[70:])
    im = Image.open(io.BytesIO(buf.getvalue()))
    assert round(im.info["dpi"][0]) == 96
    if depth == 8 or channels == 1:
        assert np.array_equal(np.asarray(im).reshape(img.shape), img)
    else:  # Pillow has no 16-bit colour modes; FFmpeg decodes it
        av = pytest.importorskip("av")
        fmt = {2: "ya16be", 3: "rgb48le", 4: "rgba64le"}[channels]
        with av.open(io.BytesIO(buf.getvalue())) as c:
            frame = next(c.decode(video=0))
            if channels == 2:
                arr = frame.reformat(format="rgba64le").to_ndarray()[..., [0, 3]]
            else:
                arr = frame.to_ndarray(format=fmt)
        assert np.array_equal(arr, img)


def test_compare_figure(tmp_path: Path, weights: Path, rgb: np.ndarray) -> None:
    src, ref = tmp_path / "lr.png", tmp_path / "hr.png"
    Image.fromarray(rgb).save(src)
    hr = np.kron(rgb, np.ones((2, 2, 1), np.uint8))
    Image.fromarray(hr).save(ref)
    dst = upscale_file(src, tmp_path / "sr.png", weights=weights, compare=True, reference=ref)
    fig_path = compare_path(dst)
    assert fig_path.name == "sr.compare.png"
    with Image.open(fig_path) as fig:
        assert fig.width >= 4 * 90 and fig.height >= 80
        arr = np.asarray(fig)
    # The third panel is the output itself (pad 4, label bar 16).
    x3 = 4 + 2 * (90 + 4)
    with Image.open(dst) as im:
        assert np.array_equal(arr[20 : 20 + 80, x3 : x3 + 90], np.asarray(im))
    with pytest.raises(ValueError, match="reference"):
        upscale_file(src, tmp_path / "x.png", weights=weights, compare=True, reference=src)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 2, 2, 1), (2, 1, 9, 14), (1, 1, 31, 5)])
def test_banded_matlab_bicubic_equals_imresize(scale: int, shape: tuple[int, ...]) -> None:
    from subpixel._upscale.pipeline import _matlab_upscale
    from subpixel.resize import imresize

    x = torch.rand(*shape, dtype=torch.float64)
    assert torch.allclose(_matlab_upscale(x, scale), imresize(x, float(scale)), atol=1e-12)


def test_rgb_model_runs_on_rgb_directly() -> None:
    torch.manual_seed(0)
    m = get_model("espcn", scale=2, channels=3)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.08)
        m.upsample.bias.fill_(0.5)
    img = np.random.default_rng(0).random((9, 11, 3)).astype(np.float32)
    with torch.no_grad():
        ref = m(torch.from_numpy(img).permute(2, 0, 1)[None]).clamp(0, 1)[0].permute(1, 2, 0)
    assert np.allclose(upscale(img, weights=m), ref.numpy(), atol=1e-6)
    grey = upscale(img[..., 0], weights=m)  # replicated to RGB, luma of the result
    assert grey.shape == (18, 22)


# -- the fused 8-bit RGB route ----------------------------------------------------------------


def _float_route(engine: object, img: np.ndarray, tile: int) -> np.ndarray:
    """The engine's float path (float blocks in [0, 1], rounded after): the reference."""
    from subpixel._upscale.tiling import iter_strips

    eng: Any = engine
    src = img[None]
    out = np.empty((1, img.shape[0] * eng.scale, img.shape[1] * eng.scale, 3), np.uint8)
    for row, strip in iter_strips(
        src,
        eng.block,
        scale=eng.scale,
        tile=tile,
        overlap=eng.overlap,
        out_dtype=np.dtype(np.uint8),
        device=eng.device,
    ):
        out[:, row : row + strip.shape[1]] = strip
    return out[0]


@pytest.mark.parametrize("native", [True, False], ids=["kernel", "torch"])
@pytest.mark.parametrize(("scale", "chroma"), [(2, "bicubic-matlab"), (3, "bicubic-opencv")])
def test_rgb8_route_agrees_with_float_route(
    scale: int, chroma: str, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uint8 RGB skips the float blocks; tiled or not, within one level of the float path."""
    from subpixel.fast._kernels import pipeline as k_pipeline

    if native and not k_pipeline.available():
        pytest.skip("subpixel._pipeline was not built")
    if not native:
        monkeypatch.setattr(k_pipeline, "kernel", lambda: None)
    rng = np.random.default_rng(10 + scale)
    smooth = np.kron(rng.integers(0, 256, (12, 15, 3)), np.ones((5, 5, 1)))
    img = np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)  # 60×75
    up = Upscaler(_model(scale), pipeline=Pipeline(chroma=chroma), tile=0)
    eng = up.engine
    refs = {tile: _float_route(eng, img, tile) for tile in (0, 16)}
    calls: list[tuple[int, ...]] = []
    rgb8 = eng.rgb8
    monkeypatch.setattr(eng, "rgb8", lambda lr, sr: (calls.append(lr.shape), rgb8(lr, sr)))

    def no_float(x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the float path was used for uint8 RGB")

    monkeypatch.setattr(eng, "block", no_float)
    assert eng.uses_rgb8(img[None])
    whole = up(img)
    assert calls == [img.shape]
    eng.tile = 8
    assert eng.rgb8_tile == 16  # the fused path in float32 on the CPU: tiles of twice the side
    tiled = up(img)
    assert len(calls) == 1 + 4 * 5  # 60×75 in 16-pixel tiles
    frozen = img.copy()
    frozen.flags.writeable = False  # e.g. an array that views a decoded file
    assert np.array_equal(up(frozen), tiled)
    for got, ref in ((whole, refs[0]), (tiled, refs[16]), (tiled, whole)):
        diff = np.abs(got.astype(int) - ref.astype(int))
        assert got.shape == (60 * scale, 75 * scale, 3) and got.dtype == np.uint8
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    # the strips that files are written from are the same pixels
    strips = list(eng.strips(img[None]))
    assert [r for r, _ in strips] == list(range(0, 60 * scale, 16 * scale))
    assert np.array_equal(np.concatenate([s[0] for _, s in strips]), tiled)


def test_rgb8_route_only_for_8bit_rgb_with_a_fused_model() -> None:
    img = np.zeros((1, 4, 5, 3), np.uint8)
    eng = Upscaler(_model(2)).engine
    assert eng.uses_rgb8(img) and eng.uses_rgb8(np.zeros((1, 4, 5, 4), np.uint8))  # RGBA colours
    assert not eng.uses_rgb8(img, out_dtype=np.dtype(np.float32))
    for other in (img.astype(np.uint16), img.astype(np.float32), img[..., :1], img[..., :2]):
        assert not eng.uses_rgb8(other)
    opencv = Pipeline(color="opencv-ycrcb", chroma="bilinear-opencv")  # OpenCV's uint8 steps
    cv_eng = Upscaler(_model(2), pipeline=opencv).engine
    # fused for RGB where the compiled kernel is built (tests/test_opencv_levels.py), never
    # for RGBA (whose alpha OpenCV's steps resize like chroma, in numpy)
    assert cv_eng.uses_rgb8(img) == (opencv_kernel() is not None)
    assert not cv_eng.uses_rgb8(np.zeros((1, 4, 5, 4), np.uint8))
    prelu = get_model("espcn", scale=2, activation="prelu")
    assert Upscaler(prelu).engine.uses_rgb8(img)  # a chain: the cpu-layers backend's phases
    rgb_model = get_model("espcn", scale=2, channels=3)
    assert not Upscaler(rgb_model).engine.uses_rgb8(img)  # no backend but the plain model


def test_rgb8_tile_doubles_only_for_the_banded_fp32_path() -> None:
    from subpixel._upscale.engine import Engine

    assert Engine(_model(2), tile=300).rgb8_tile == 600  # fp32 CPU: network in row bands
    int8 = Engine(_model(2), tile=300, precision="int8")
    # int8 holds whole tiles; where it is measured slower than fp32 (this CPU's kind) fp32 runs
    assert int8.rgb8_tile == (300 if int8.backend.name == "cpu-int8" else 600)
    assert Engine(_model(2), tile=0).rgb8_tile == 0  # untiled stays untiled


class _RecordingSink:
    """A sink whose second write fails; records what was called on it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def write(self, rows: np.ndarray) -> None:
        self.calls.append("write")
        if self.calls.count("write") == 2:
            raise OSError("disk full")

    def close(self) -> None:
        self.calls.append("close")

    def abort(self) -> None:
        self.calls.append("abort")


def test_threaded_sink_failure_aborts_the_inner_sink_at_close() -> None:
    """An encoding error in the sink's thread surfaces at close(), and the wrapped sink is
    aborted (its own threads and file stopped), never closed as if complete."""
    from subpixel._upscale.batch import ThreadedSink

    inner = _RecordingSink()
    sink = ThreadedSink(inner)
    for _ in range(3):
        try:
            sink.write(np.zeros((2, 3, 3), np.uint8))
        except OSError:
            break
    with pytest.raises(OSError, match="disk full"):
        sink.close()
    assert inner.calls.count("write") == 2
    assert "abort" in inner.calls and "close" not in inner.calls
