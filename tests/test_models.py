"""Model registry, ESPCN architecture and weights files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from subpixel.models import get_model, list_models
from subpixel.models.espcn import ESPCN
from subpixel.serialization import WeightsError, load_weights, save_weights


def espcn_params(scale: int, c: int = 1, f1: int = 64, f2: int = 32) -> int:
    """The paper's parameter count: (5·5·c·f1 + f1) + (3·3·f1·f2 + f2) + (3·3·f2·c·s² + c·s²)."""
    return (25 * c * f1 + f1) + (9 * f1 * f2 + f2) + (9 * f2 * c * scale**2 + c * scale**2)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_espcn_matches_paper_architecture(scale: int) -> None:
    m = get_model("espcn", scale=scale)
    assert sum(p.numel() for p in m.parameters()) == espcn_params(scale)
    kernels = [mod.kernel_size for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert kernels == [(5, 5), (3, 3), (3, 3)]
    assert any(isinstance(mod, torch.nn.Tanh) for mod in m.modules())
    assert m(torch.rand(2, 1, 7, 9)).shape == (2, 1, 7 * scale, 9 * scale)


def test_espcn_equals_conv_stack_then_pixel_shuffle() -> None:
    m = ESPCN(scale=3)
    x = torch.rand(1, 1, 6, 6)
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    h = torch.tanh(torch.nn.functional.conv2d(x, convs[0].weight, convs[0].bias, padding=2))
    h = torch.tanh(torch.nn.functional.conv2d(h, convs[1].weight, convs[1].bias, padding=1))
    h = torch.nn.functional.conv2d(h, convs[2].weight, convs[2].bias, padding=1)
    torch.testing.assert_close(m(x), torch.nn.functional.pixel_shuffle(h, 3))


def test_espcn_options() -> None:
    m = get_model("espcn", scale=2, channels=3, features=(16, 8), activation="relu")
    assert m(torch.rand(1, 3, 5, 5)).shape == (1, 3, 10, 10)
    assert sum(p.numel() for p in m.parameters()) == espcn_params(2, 3, 16, 8)


def test_registry_errors() -> None:
    assert "espcn" in list_models()
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        get_model("nope")
    with pytest.raises(ValueError, match=r"unknown option.*sclae"):
        get_model("espcn", sclae=3)
    with pytest.raises(ValueError, match="activation"):
        get_model("espcn", activation="swish")


def _save(path: Path, model: torch.nn.Module, scale: int, name: str = "espcn") -> None:
    save_weights(path, model.state_dict(), model=name, config={"scale": scale})


def test_weights_round_trip(tmp_path: Path) -> None:
    m = get_model("espcn", scale=3)
    path = tmp_path / "w.safetensors"
    _save(path, m, 3)
    loaded = get_model("espcn", weights=path)
    assert loaded.scale == 3
    x = torch.rand(1, 1, 5, 5)
    torch.testing.assert_close(loaded(x), m(x), rtol=0, atol=0)


def test_weights_of_other_scale_or_model_refused(tmp_path: Path) -> None:
    path = tmp_path / "x2.safetensors"
    _save(path, get_model("espcn", scale=2), 2)
    with pytest.raises(WeightsError, match="scale=2"):
        get_model("espcn", weights=path, scale=3)
    other = tmp_path / "other.safetensors"
    _save(other, get_model("espcn", scale=2), 2, name="fsrcnn")
    with pytest.raises(WeightsError, match="for model 'fsrcnn'"):
        get_model("espcn", weights=other)
    wrong = tmp_path / "wrong.safetensors"
    save_weights(wrong, {"w": torch.zeros(3)}, model="espcn", config={"scale": 2})
    with pytest.raises(WeightsError, match="do not fit"):
        get_model("espcn", weights=wrong)


class _Tripwire:
    """Unpickling this creates a file: proof that a loader unpickled it."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.target, "w"))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".safetensors", ".pkl"])
def test_pickle_weights_are_refused_and_never_unpickled(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / f"evil{suffix}"
    path.write_bytes(pickle.dumps(_Tripwire(str(marker))))
    with pytest.raises(WeightsError, match="pickle"):
        get_model("espcn", weights=path, scale=3)
    assert not marker.exists()


def test_torch_save_zip_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    torch.save(get_model("espcn", scale=3).state_dict(), path)
    with pytest.raises(WeightsError, match=r"pickle/torch\.save"):
        load_weights(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty or truncated"), (b"hello world, not weights", "not a valid")],
)
def test_corrupt_weights(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=message):
        load_weights(path)


def test_truncated_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    _save(path, get_model("espcn", scale=3), 3)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated"):
        get_model("espcn", weights=path)


def test_missing_weights_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no such weights file"):
        get_model("espcn", weights=tmp_path / "nope.safetensors")


def test_valid_file_whose_header_length_starts_with_0x80_loads(tmp_path: Path) -> None:
    """A pickle starts with 0x80; a safetensors header length may too, and must still load."""
    path = tmp_path / "w.safetensors"
    for pad in range(0, 2048, 1):
        save_weights(path, {"w": torch.ones(2)}, model="espcn", extra={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("could not build the test file")
    tensors, meta = load_weights(path)
    assert torch.equal(tensors["w"], torch.ones(2)) and meta.model == "espcn"


def test_weights_files_get_normal_permissions(tmp_path: Path) -> None:
    import os

    path = tmp_path / "w.safetensors"
    save_weights(path, {"w": torch.ones(2)})
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_bicubic_residual_adds_pytorch_bicubic_upscaling() -> None:
    plain = get_model("espcn", scale=3, activation="relu")
    residual = get_model("espcn", scale=3, activation="relu", residual="bicubic")
    residual.load_state_dict(plain.state_dict())
    x = torch.rand(2, 1, 7, 9)
    expected = plain(x) + torch.nn.functional.interpolate(
        x, scale_factor=3, mode="bicubic", align_corners=False
    )
    torch.testing.assert_close(residual(x), expected)
    assert sum(p.numel() for p in residual.parameters()) == espcn_params(3)
    with pytest.raises(ValueError, match="residual"):
        get_model("espcn", residual="nearest")
