"""Protocol evaluation: the model path agrees with the bicubic path for a bicubic 'model'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from subpixel.cli import main
from subpixel.evaluate import evaluate_images
from subpixel.models import get_model
from subpixel.resize import imresize
from subpixel.serialization import save_weights


class Bicubic(nn.Module):
    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return imresize(x, float(self.scale))


def test_bicubic_model_scores_like_bicubic() -> None:
    gen = torch.Generator().manual_seed(0)
    images = [imresize(torch.rand(3, 12, 15, generator=gen), 4.0).clamp(0, 1) for _ in range(2)]
    scores = evaluate_images(Bicubic(3), images, scale=3)
    assert scores["images"] == 2
    assert scores["psnr"] == pytest.approx(scores["bicubic_psnr"], abs=0.05)
    assert scores["ssim"] == pytest.approx(scores["bicubic_ssim"], abs=1e-3)


def test_eval_command_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    folder = tmp_path / "MySet"
    folder.mkdir()
    arr = (imresize(torch.rand(3, 8, 8), 5.0).clamp(0, 1) * 255).round().byte()
    Image.fromarray(arr.permute(1, 2, 0).numpy()).save(folder / "a.png")
    weights = tmp_path / "w.safetensors"
    save_weights(
        weights, get_model("espcn", scale=2).state_dict(), model="espcn", config={"scale": 2}
    )
    assert main(["eval", "--weights", str(weights), "--scale", "2", "--data", str(folder),
                 "--json"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"MySet"}
    assert set(out["MySet"]) == {"psnr", "ssim", "bicubic_psnr", "bicubic_ssim", "images"}
    assert out["MySet"]["images"] == 1
    assert out["MySet"]["bicubic_psnr"] > out["MySet"]["psnr"]  # an untrained model


def test_eval_command_wrong_scale_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "w.safetensors"
    save_weights(
        weights, get_model("espcn", scale=2).state_dict(), model="espcn", config={"scale": 2}
    )
    assert main(["eval", "--weights", str(weights), "--scale", "3", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "scale=2" in err
