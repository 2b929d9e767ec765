"""The weights shipped inside the package: cards agree with the models, the numbers on the cards
are reproduced, the quality bars hold, the fast path runs them, the files are in the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from subpixel.bundled import BUNDLES, DEFAULT, find, names, weights_path
from subpixel.data import find_images, load_image
from subpixel.evaluate import evaluate_folder
from subpixel.models import get_model
from subpixel.serialization import WeightsError, load_weights

#: Every shipped file: (bundle, scale).
SHIPPED = [(b.name, s) for b in BUNDLES.values() for s in b.scales]
#: The general (Y-channel, bicubic-protocol) bundles; faces has its own protocol.
GENERAL = [(name, s) for name, s in SHIPPED if name != "faces"]

#: Quality bars, (Set5, Set14) PSNR in dB, MATLAB bicubic protocol (issue 16's table).
#: espcn: the first release's bar; fast: ECBSR-M4C16 in our protocol (the issue's floor);
#: photo: within 0.5 dB of fast on clean inputs (issue 17).
ECBSR_M4C16 = {2: (36.91, 32.58), 3: (32.87, 29.43), 4: (30.70, 27.68)}
QUALITY_BAR: dict[str, dict[int, tuple[float, float]]] = {
    "espcn": {2: (36.5, 32.2), 3: (32.65, 29.20), 4: (30.4, 27.4)},
    "fast": ECBSR_M4C16,
}
#: int8's loss on Set5 (dB): issue 16 asks for at most 0.05. Exceptions, measured and reported
#: short of it in docs/results.md: the 9-layer ×2 networks (all layers but the last in 8 bits).
INT8_LOSS = {("fast", 2): 0.1, ("photo", 2): 0.1}
#: photo: its clean-input loss to fast on Set5/Set14, dB: issue 17's 0.5 at every scale.
PHOTO_CLEAN_LOSS = {2: 0.5, 3: 0.5, 4: 0.5}


def _card(name: str, scale: int) -> dict:
    return load_weights(weights_path(name, scale))[1].card


@pytest.mark.parametrize(("name", "scale"), SHIPPED)
def test_card_matches_model(name: str, scale: int) -> None:
    path = weights_path(name, scale)
    assert path.exists(), f"bundled weights missing: {path}"
    _, meta = load_weights(path)
    model = get_model(meta.model or "espcn", scale=scale, weights=name)
    card = meta.card
    assert card["architecture"] == meta.model
    assert card["scale"] == scale == model.scale
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    commands = card.get("commands") or [card["command"]]
    assert all(c.startswith("subpixel train ") for c in commands)
    assert all(f"--scale {scale}" in c for c in commands) or name == "faces"
    markdown = path.with_suffix(".md").read_text()
    assert all(c in markdown for c in commands), "the card lists every command"
    earlier = [c for stage in card.get("lineage", []) for c in stage["commands"]]
    assert all(c in markdown for c in earlier), "the card lists the runs it started from"
    channels = getattr(model, "channels", 1)
    out = model(torch.rand(1, channels, 5, 6))
    assert out.shape == (1, channels, 5 * scale, 6 * scale)


def test_names_resolve_and_bad_names_are_refused() -> None:
    assert names()[0] == "DEFAULT" and find("Default") is BUNDLES[DEFAULT]
    assert weights_path("DEFAULT", 3) == weights_path(DEFAULT, 3)
    with pytest.raises(WeightsError, match="bundled: DEFAULT"):
        weights_path("nonesuch", 3)
    with pytest.raises(WeightsError, match="not ×7"):
        weights_path("espcn", 7)


@pytest.mark.data
@pytest.mark.parametrize(("name", "scale"), GENERAL)
def test_bundled_quality_and_card_numbers(name: str, scale: int, data_dir: Path) -> None:
    model = get_model("espcn", scale=scale, weights=name)
    card = _card(name, scale)
    bars = QUALITY_BAR.get(name, {}).get(scale)
    if name == "photo":
        # Issue 17: at most 0.5 dB below DEFAULT (fast) on clean inputs, at every scale.
        fast = _card("fast", scale)["metrics"]
        bars = tuple(fast[s]["psnr"] - PHOTO_CLEAN_LOSS[scale] for s in ("Set5", "Set14"))
    assert bars is not None, f"no quality bar for {name} ×{scale}"
    for set_name, bar in zip(("Set5", "Set14"), bars, strict=True):
        got = evaluate_folder(model, data_dir / "sr" / set_name, scale=scale)
        # The card's figure was measured when the model was trained; other releases of the
        # numeric libraries move its last digits (7e-6 dB with the first locked environment).
        assert got["psnr"] == pytest.approx(card["metrics"][set_name]["psnr"], abs=1e-4)
        assert got["psnr"] >= bar, f"{name} ×{scale} {set_name}: {got['psnr']:.2f} dB < {bar}"


@pytest.mark.data
@pytest.mark.parametrize(("name", "scale"), [(n, s) for n, s in GENERAL if n != "espcn"])
def test_fast_path_runs_the_bundled_models(name: str, scale: int, data_dir: Path) -> None:
    """fp32 within 1e-5 of the model; int8 loses at most 0.05 dB on Set5 (issue 16)."""
    from subpixel.color import rgb_to_y
    from subpixel.data import degrade, mod_crop
    from subpixel.fast import optimize_for_inference
    from subpixel.metrics import psnr, quantize

    model = get_model("espcn", scale=scale, weights=name)
    fp32 = optimize_for_inference(model, precision="fp32")
    int8 = optimize_for_inference(model, precision="int8")
    assert int8.precision == "int8"
    exact, approx = [], []
    for path in find_images([data_dir / "sr" / "Set5"]):
        hr = mod_crop(load_image(path), scale).double()
        y_hr, y_lr = rgb_to_y(hr), rgb_to_y(degrade(hr, scale)).float()[None]
        with torch.no_grad():
            ref = model(y_lr)
        assert (fp32(y_lr) - ref).abs().max() <= 1e-5, path.name
        for out, scores in ((ref, exact), (int8(y_lr), approx)):
            scores.append(psnr(quantize(out[0].clamp(0, 1).double()), y_hr, shave=scale))
    loss = sum(exact) / len(exact) - sum(approx) / len(approx)
    bound = INT8_LOSS.get((name, scale), 0.05)
    assert loss <= bound, f"{name} ×{scale}: int8 loses {loss:.3f} dB on Set5"


@pytest.mark.slow
def test_weights_are_inside_the_built_wheel(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("subpixel-*.whl")
    listed = set(zipfile.ZipFile(wheel).namelist())
    for name, scale in SHIPPED:
        assert f"subpixel/weights/{name}_x{scale}.safetensors" in listed
        assert f"subpixel/weights/{name}_x{scale}.md" in listed
    assert "subpixel/py.typed" in listed


@pytest.mark.data
@pytest.mark.parametrize("scale", BUNDLES["photo"].scales if "photo" in BUNDLES else ())
def test_photo_beats_fast_on_jpeg(scale: int, data_dir: Path) -> None:
    """Issue 17's point: on JPEG q70 inputs the photo model gains >= 0.5 dB on Set5 (Y)."""
    from subpixel.color import rgb_to_y
    from subpixel.data import degrade, mod_crop
    from subpixel.degrade import jpeg
    from subpixel.metrics import psnr
    from subpixel.upscale import Upscaler

    models = {name: Upscaler(name, scale, precision="fp32") for name in ("fast", "photo")}
    scores: dict[str, list[float]] = {name: [] for name in models}
    for path in find_images([data_dir / "sr" / "Set5"]):
        hr = mod_crop(load_image(path), scale).double()
        lr = jpeg(degrade(hr, scale).float(), 70)
        for name, up in models.items():
            sr = up(lr).double()
            scores[name].append(psnr(rgb_to_y(sr), rgb_to_y(hr), shave=scale))
    gain = (sum(scores["photo"]) - sum(scores["fast"])) / len(scores["fast"])
    assert gain >= 0.5, f"×{scale}: photo gains {gain:.2f} dB over fast on JPEG q70"
