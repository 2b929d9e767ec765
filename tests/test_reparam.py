"""RepSR: re-parameterisable blocks collapse exactly into a plain ESPCN, which every tool takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from subpixel.cli import main
from subpixel.models import get_model, list_models
from subpixel.models.espcn import ESPCN
from subpixel.models.reparam import EDGE_FILTERS, RepBlock, RepSR
from subpixel.serialization import load_weights, save_weights

SOBEL_X = [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]
SOBEL_Y = [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]
LAPLACIAN = [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]


def randomise(module: torch.nn.Module, std: float = 0.3) -> None:
    """Random values for every parameter: weights, biases and branch scales alike."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * std)


def pad_with(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Pad ``(N, C, H, W)`` by one pixel, channel ``c`` with ``values[c]`` (ECBSR's padding)."""
    out = values.reshape(1, -1, 1, 1).expand(x.shape[0], -1, x.shape[2] + 2, x.shape[3] + 2)
    out = out.clone()
    out[:, :, 1:-1, 1:-1] = x
    return out


def block_by_hand(block: RepBlock, x: torch.Tensor) -> torch.Tensor:
    """A literal port of ECBSR's ``ECB.forward`` (training branch) with its own masks:
    each 1×1 output is padded with its bias value, then convolved without padding."""
    out = F.conv2d(x, block.conv3.weight, block.conv3.bias, padding=1)
    b1 = block.expand.bias
    assert b1 is not None
    y0 = pad_with(F.conv2d(x, block.expand.weight, b1), b1)
    out = out + F.conv2d(y0, block.expand3.weight, block.expand3.bias)
    be = block.edge_in.bias
    assert be is not None
    c = block.c_out
    for g, mask in enumerate((SOBEL_X, SOBEL_Y, LAPLACIAN)):
        w, b = block.edge_in.weight[g * c : (g + 1) * c], be[g * c : (g + 1) * c]
        y0 = pad_with(F.conv2d(x, w, b), b)
        k = torch.tensor(mask, dtype=x.dtype).expand(c, 1, 3, 3)
        scale = block.edge_scale[g * c : (g + 1) * c].reshape(c, 1, 1, 1)
        out = out + F.conv2d(y0, k * scale, block.edge_bias[g * c : (g + 1) * c], groups=c)
    if block.identity:
        out = out + x
    return out


def test_edge_filters_are_sobel_and_laplacian() -> None:
    assert EDGE_FILTERS.tolist() == [SOBEL_X, SOBEL_Y, LAPLACIAN]


@pytest.mark.parametrize(("c_in", "c_out", "expand"), [(1, 8, 2), (8, 8, 2), (8, 9, 3), (4, 4, 1)])
def test_block_kernel_equals_the_branch_sum(c_in: int, c_out: int, expand: int) -> None:
    block = RepBlock(c_in, c_out, expand=expand).double()
    randomise(block)
    x = torch.rand(2, c_in, 7, 6, dtype=torch.float64)
    ref = block_by_hand(block, x)
    weight, bias = block.kernel()
    assert torch.allclose(F.conv2d(x, weight, bias, padding=1), ref, rtol=0, atol=1e-11)
    assert torch.allclose(block.forward_branches(x), ref, rtol=0, atol=1e-11)
    assert torch.allclose(block(x), ref, rtol=0, atol=1e-11)
    # the borders are where a 1×1 bias through zero padding would go wrong
    assert ref[..., 0, :].abs().max() > 0


def test_block_kernel_by_hand_single_channel() -> None:
    """One channel: the collapsed kernel written out term by term."""
    block = RepBlock(1, 1, expand=1).double().requires_grad_(False)
    randomise(block)
    w1, b1 = float(block.expand.weight), float(block.expand.bias)  # type: ignore[arg-type]
    w3, b3 = block.expand3.weight[0, 0], float(block.expand3.bias)  # type: ignore[arg-type]
    e, be = block.edge_in.weight[:, 0, 0, 0], block.edge_in.bias
    assert be is not None
    masks = torch.tensor([SOBEL_X, SOBEL_Y, LAPLACIAN], dtype=torch.float64)
    kernel = (
        block.conv3.weight[0, 0] + w1 * w3 + (e * block.edge_scale)[:, None, None].mul(masks).sum(0)
    )
    kernel[1, 1] += 1.0  # identity
    bias = float(block.conv3.bias) + b3 + b1 * float(w3.sum())  # type: ignore[arg-type]
    bias += float((block.edge_bias + block.edge_scale * be * masks.sum((1, 2))).sum())
    weight, b = block.kernel()
    assert torch.allclose(weight[0, 0], kernel, atol=1e-13)
    assert float(b) == pytest.approx(bias, abs=1e-13)


@pytest.mark.parametrize(
    ("features", "blocks", "scale"), [(16, 3, 3), (8, 2, 2), (16, 2, 4), (4, 1, 3)]
)
def test_collapse_is_exact_float64(features: int, blocks: int, scale: int) -> None:
    net = RepSR(scale, features=features, blocks=blocks).double()
    randomise(net, std=0.2)
    plain = net.collapse()
    assert isinstance(plain, ESPCN) and not plain.training
    x = torch.rand(2, 1, 11, 13, dtype=torch.float64)
    ref = net.forward_branches(x)
    out = plain(x)
    assert out.shape == (2, 1, 11 * scale, 13 * scale)
    assert (out - ref).abs().max() <= 1e-10 * ref.abs().max()
    assert (net(x) - ref).abs().max() <= 1e-10 * ref.abs().max()


@pytest.mark.parametrize(("features", "blocks", "scale"), [(16, 4, 3), (8, 3, 2), (16, 2, 4)])
def test_collapse_is_exact_float32(features: int, blocks: int, scale: int) -> None:
    net = RepSR(scale, features=features, blocks=blocks)
    randomise(net, std=0.05)
    plain = net.collapse()
    assert next(plain.parameters()).dtype == torch.float32
    x = torch.rand(1, 1, 12, 9)
    ref = net.double().forward_branches(x.double())
    assert (plain(x).double() - ref).abs().max() < 1e-5


def test_collapsed_layout_is_espcns() -> None:
    plain = RepSR(3, features=16, blocks=5).collapse()
    assert plain.residual == "bicubic" and plain.scale == 3
    convs = [m for m in plain.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [
        (16, 1, 3, 3),
        *[(16, 16, 3, 3)] * 4,
        (9, 16, 3, 3),
    ]
    assert all(isinstance(m, torch.nn.ReLU) for m in list(plain.features)[1::2])


def test_gradients_reach_every_branch() -> None:
    net = RepSR(2, features=8, blocks=2)
    randomise(net, std=0.1)
    x, y = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 16, 16)
    F.mse_loss(net(x), y).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_gradients_equal_the_branch_forwards() -> None:
    net = RepSR(2, features=4, blocks=2).double()
    randomise(net, std=0.2)
    x, y = torch.rand(1, 1, 6, 5, dtype=torch.float64), torch.rand(1, 1, 12, 10).double()
    F.mse_loss(net(x), y).backward()
    fused = [p.grad.clone() for p in net.parameters()]  # type: ignore[union-attr]
    net.zero_grad()
    F.mse_loss(net.forward_branches(x), y).backward()
    for a, p in zip(fused, net.parameters(), strict=True):
        assert torch.allclose(a, p.grad, atol=1e-12)  # type: ignore[arg-type]


def test_block_gradcheck() -> None:
    block = RepBlock(2, 2).double()
    x = torch.rand(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,))


def test_registry_and_errors() -> None:
    assert "repsr" in list_models()
    net = get_model("repsr", scale=2, features=8, blocks=3)
    assert isinstance(net, RepSR) and len(net.body) == 4
    with pytest.raises(ValueError, match="unknown option"):
        get_model("repsr", scale=2, width=8)
    with pytest.raises(ValueError, match="activation"):
        RepSR(2, activation="prelu")
    with pytest.raises(ValueError, match="identity"):
        RepBlock(2, 3, identity=True)


def test_collapsed_weights_round_trip(tmp_path: Path) -> None:
    net = RepSR(3, features=8, blocks=2)
    randomise(net, std=0.1)
    plain = net.collapse()
    path = tmp_path / "m.safetensors"
    save_weights(path, plain.state_dict(), model="espcn", config=net.espcn_config())
    loaded = get_model("espcn", weights=path)
    x = torch.rand(1, 1, 10, 10)
    assert torch.equal(loaded(x), plain(x))
    assert (loaded(x) - net.forward_branches(x)).abs().max() < 1e-5


def test_fast_path_takes_the_compiled_kernels() -> None:
    from subpixel.fast import optimize_for_inference
    from subpixel.fast._kernels import conv_first, winograd

    if not (conv_first.available() and winograd.simd()):
        pytest.skip("the compiled Winograd kernels are not built or not supported here")
    net = RepSR(3, features=16, blocks=4)
    randomise(net, std=0.05)
    plain = net.collapse()
    fast = optimize_for_inference(plain)
    assert fast.backend == "cpu-winograd-f4x4"
    x = torch.rand(1, 1, 40, 52)
    with torch.no_grad():
        ref = net.double().forward_branches(x.double())
        assert (fast(x).double() - ref).abs().max() < 1e-5
        assert (fast(x) - plain(x)).abs().max() < 1e-5


def make_images(folder: Path, n: int = 3, size: tuple[int, int] = (66, 60)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        coarse = rng.integers(0, 256, (size[1] // 6, size[0] // 6, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize(size, Image.Resampling.BILINEAR)
        img.save(folder / f"img{i}.{('png', 'jpg', 'bmp')[i % 3]}")
    return folder


def test_train_repsr_saves_the_collapsed_espcn(tmp_path: Path) -> None:
    data = make_images(tmp_path / "data")
    out = tmp_path / "run"
    argv = ["train", "--model", "repsr", "--option", "features=8", "--option", "blocks=2"]
    argv += ["--data", str(data), "--val", str(data), "--scale", "3", "--out", str(out)]
    argv += ["--steps", "12", "--batch-size", "4", "--patch-size", "8", "--no-scale-augment"]
    argv += ["--loss", "l1", "--finetune-mse-fraction", "0.25", "--ema", "0.9", "--no-progress"]
    argv += ["--checkpoint-every", "5", "--val-every", "6", "--threads", "1"]
    assert main(argv) == 0
    _, meta = load_weights(out / "model.safetensors")
    assert meta.model == "espcn"
    assert meta.config["features"] == [8, 8] and meta.config["kernels"] == [3, 3, 3]
    assert meta.card["trained_as"] == {
        "model": "repsr",
        "config": {"scale": 3, "features": 8, "blocks": 2},
    }
    assert set(meta.card["metrics"]) == {"data"}
    model = get_model("espcn", weights=out / "model.safetensors")
    assert isinstance(model, ESPCN)
    # the checkpoint keeps the training form and its average; the file is the average collapsed
    ckpt, _ = load_weights(sorted((out / "checkpoints").iterdir())[-1])
    train_form = RepSR(3, features=8, blocks=2)
    train_form.load_state_dict({k[4:]: v for k, v in ckpt.items() if k.startswith("ema.")})
    assert any(k.startswith("model.") for k in ckpt)
    x = torch.rand(1, 1, 9, 9)
    with torch.no_grad():
        assert (model(x) - train_form.forward_branches(x)).abs().max() < 1e-5
    assert "saved collapsed" in (out / "model.md").read_text()
    # the inference file works with eval
    weights = str(out / "model.safetensors")
    assert main(["eval", "--weights", weights, "--scale", "3", "--data", str(data)]) == 0


def test_docstring_examples() -> None:
    import doctest

    from subpixel.models import reparam

    result = doctest.testmod(reparam)
    assert result.attempted > 0 and result.failed == 0


def test_output_block_never_adds_its_input() -> None:
    """At ×4 with 16 features the output layer has as many channels as its input; an identity
    branch there would add ReLU features to the sub-pixel outputs (it killed a ×4 run)."""
    net = RepSR(scale=4, features=16, blocks=3)
    assert [b.identity for b in net.body] == [False, True, True, False]
    with torch.no_grad():
        x = torch.rand(1, 1, 6, 6)
        for block in net.body[:-1]:
            x = net.act(block(x))
        last = net.body[-1]
        with_identity = RepBlock(16, 16, identity=True)
        with_identity.load_state_dict(last.state_dict())
        assert not torch.allclose(last(x), with_identity(x))  # the branch would matter
