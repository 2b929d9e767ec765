"""The applications: autoencoder, DCGAN, subpixel-faces, the experiments and faces training."""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from subpixel.applications.checkerboard import checkerboard_score
from subpixel.applications.experiments import (
    AutoencoderConfig,
    DCGANConfig,
    image_grid,
    run_autoencoder,
    run_dcgan,
    sliced_wasserstein,
    summary_table,
)
from subpixel.applications.faces_training import FacesConfig, face_pair, train_faces
from subpixel.cli import main
from subpixel.convert import subpixel_to_transposed
from subpixel.models import get_model, list_models
from subpixel.models.autoencoder import SubPixelUpsample, make_upsampler
from subpixel.resize import imresize
from subpixel.serialization import WeightsError, load_weights, save_weights


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """These tests train small networks; one thread is fastest on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _n(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- models ------------------------------------------------------------------------------

CONFIGS = [
    ("autoencoder", {"decoder": "subpixel"}),
    ("autoencoder", {"decoder": "transposed", "latent": 16}),
    ("dcgan", {"upsampler": "subpixel"}),
    ("dcgan", {"upsampler": "transposed", "features": 16}),
    ("dcgan", {"part": "discriminator"}),
    ("subpixel-faces", {}),
    ("subpixel-faces", {"init": "original"}),
]


def _input(name: str, config: dict[str, object], model: nn.Module) -> torch.Tensor:
    if name == "autoencoder":
        return torch.rand(3, 1, 28, 28)
    if name == "dcgan" and config.get("part") != "discriminator":
        return torch.randn(3, 100)
    if name == "dcgan":
        return torch.rand(3, 1, 28, 28) * 2 - 1
    return torch.rand(2, 3, 32, 32) * 2 - 1


def _out_shape(name: str, config: dict[str, object]) -> tuple[int, ...]:
    if name == "autoencoder":
        return (3, 1, 28, 28)
    if name == "dcgan":
        return (3, 1) if config.get("part") == "discriminator" else (3, 1, 28, 28)
    return (2, 3, 128, 128)


def test_registered() -> None:
    assert {"autoencoder", "dcgan", "subpixel-faces"} <= set(list_models())


@pytest.mark.parametrize(("name", "config"), CONFIGS)
def test_forward_backward_and_round_trip(
    name: str, config: dict[str, object], tmp_path: Path
) -> None:
    model = get_model(name, **config)
    x = _input(name, config, model)
    y = model(x)
    assert tuple(y.shape) == _out_shape(name, config)
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())

    model.eval()
    path = tmp_path / "w.safetensors"
    save_weights(path, model.state_dict(), model=name, config=config)
    tensors, meta = load_weights(path)
    fresh = get_model(name, **config)
    fresh.load_state_dict(tensors)
    fresh.eval()
    loaded = get_model(name, weights=path)  # the config comes from the file
    with torch.no_grad():
        ref = model(x)
        assert torch.equal(fresh(x), ref)
        assert torch.equal(loaded(x), ref)
    assert meta.model == name


def test_weights_of_another_part_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.safetensors"
    gen = get_model("dcgan", upsampler="transposed")
    save_weights(path, gen.state_dict(), model="dcgan", config={"upsampler": "transposed"})
    with pytest.raises(WeightsError, match="trained with upsampler='transposed'"):
        get_model("dcgan", weights=path, upsampler="subpixel")
    with pytest.raises(WeightsError, match="do not fit"):
        get_model("dcgan", weights=path, part="discriminator")


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="decoder must be one of"):
        get_model("autoencoder", decoder="bilinear")
    with pytest.raises(ValueError, match="part must be one of"):
        get_model("dcgan", part="critic")
    with pytest.raises(ValueError, match="upsampler must be one of"):
        get_model("dcgan", upsampler="nearest")
    with pytest.raises(ValueError, match="init must be one of"):
        get_model("subpixel-faces", init="he")
    with pytest.raises(ValueError, match="unknown option"):
        get_model("autoencoder", scale=2)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        get_model("autoencoder")(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, 100\)"):
        get_model("dcgan")(torch.rand(2, 64))
    with pytest.raises(WeightsError, match="not 'subpixel-faces'"):
        get_model("subpixel-faces", weights="DEFAULT")


# --- the transposed twins: same parameters, same function family ---------------------------


def test_parameter_counts_by_hand() -> None:
    """Counted from the architecture description, not from the modules."""
    up1 = 32 * 4 * 32 * 9 + 32  # 3×3 conv to 32·2², bias per output channel
    up2 = 1 * 4 * 32 * 9 + 1
    encoder = (16 * 9 + 16) + (32 * 16 * 9 + 32) + (32 * 49 * 64 + 64)
    decoder = (64 * 32 * 49 + 32 * 49) + up1 + up2
    for decoder_kind in ("subpixel", "transposed"):
        assert _n(get_model("autoencoder", decoder=decoder_kind)) == encoder + decoder
    f = 64
    gen = 100 * 2 * f * 49 + 2 * (2 * f) + (f * 4 * 2 * f * 9) + 2 * f + (4 * f * 9 + 1)
    for up in ("subpixel", "transposed"):
        assert _n(get_model("dcgan", upsampler=up)) == gen
    assert _n(get_model("subpixel-faces")) == (3 * 64 + 64) + (64 * 64 * 25 + 64) + (
        64 * 48 * 25 + 48
    )


def test_transposed_twin_hyperparameters() -> None:
    ae_sp = get_model("autoencoder", decoder="subpixel")
    ae_tr = get_model("autoencoder", decoder="transposed")
    for i in (3, 5):
        sp, tr = ae_sp.decoder[i], ae_tr.decoder[i]
        assert isinstance(sp, SubPixelUpsample) and isinstance(tr, nn.ConvTranspose2d)
        converted = subpixel_to_transposed(sp.conv)
        assert converted.kernel_size == tr.kernel_size == (6, 6)
        assert converted.stride == tr.stride == (2, 2)
        assert converted.padding == tr.padding == (2, 2)
        assert converted.weight.shape == tr.weight.shape


@pytest.mark.parametrize("bias", [True, False])
def test_subpixel_upsample_equals_transposed_with_mapped_weights(bias: bool) -> None:
    """y[co, 2Y+i, 2X+j] = Σ W_s[4co+2i+j, ci, a, b] x[ci, Y+a-1, X+b-1] equals the transposed
    convolution (kernel 6, stride 2, padding 2) with W_t[ci, co, i+4-2a, j+4-2b] = W_s[...]."""
    c_in, c_out = 5, 3
    sp = SubPixelUpsample(c_in, c_out, 3, 2, bias=bias).double()
    with torch.no_grad():
        sp.conv.conv.weight.normal_()  # break ICNR's sharing so every tap matters
        if sp.bias is not None:
            sp.bias.normal_()
    tr = make_upsampler("transposed", c_in, c_out, bias=bias).double()
    ws = sp.conv.conv.weight.detach()
    wt = torch.zeros_like(tr.weight)
    for co in range(c_out):
        for i in range(2):
            for j in range(2):
                for a in range(3):
                    for b in range(3):
                        wt[:, co, i + 4 - 2 * a, j + 4 - 2 * b] = ws[4 * co + 2 * i + j, :, a, b]
    with torch.no_grad():
        tr.weight.copy_(wt)
        if sp.bias is not None:
            tr.bias.copy_(sp.bias)
    x = torch.randn(2, c_in, 7, 6, dtype=torch.float64)
    torch.testing.assert_close(sp(x), tr(x), rtol=1e-12, atol=1e-12)


def test_twins_from_corresponding_weights_train_alike() -> None:
    """Adam on the rearranged weights follows the same trajectory (docs/applications.md)."""
    sp = SubPixelUpsample(4, 2, 3, 2).double()
    tr = make_upsampler("transposed", 4, 2).double()
    ws = sp.conv.conv.weight.detach()
    with torch.no_grad():
        for i in range(2):
            for j in range(2):
                for a in range(3):
                    for b in range(3):
                        tr.weight[:, :, i + 4 - 2 * a, j + 4 - 2 * b] = ws[
                            2 * i + j :: 4, :, a, b
                        ].T
        assert sp.bias is not None
        tr.bias.copy_(sp.bias)
    x = torch.randn(8, 4, 5, 5, dtype=torch.float64)
    target = torch.randn(8, 2, 10, 10, dtype=torch.float64)
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in (sp, tr)]
    for _ in range(5):
        for model, opt in zip((sp, tr), opts, strict=True):
            loss = F.mse_loss(model(x), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.testing.assert_close(sp(x), tr(x), rtol=1e-9, atol=1e-9)


# --- checkerboard at initialisation ------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_icnr_variants_start_without_checkerboard(seed: int) -> None:
    torch.manual_seed(seed)
    x = torch.rand(8, 1, 28, 28)
    ae_sp, ae_tr = (get_model("autoencoder", decoder=d) for d in ("subpixel", "transposed"))
    assert checkerboard_score(ae_sp(x), 2) < 1e-12
    assert checkerboard_score(ae_tr(x), 2) > 1e-3
    z = torch.randn(16, 100)
    for mode in ("train", "eval"):
        g_sp = get_model("dcgan", upsampler="subpixel").train(mode == "train")
        g_tr = get_model("dcgan", upsampler="transposed").train(mode == "train")
        assert checkerboard_score(g_sp(z), 2) < 1e-12
        assert checkerboard_score(g_tr(z), 2) > 1e-3
    lr = torch.rand(2, 3, 32, 32) * 2 - 1
    assert checkerboard_score(get_model("subpixel-faces")(lr), 4) < 1e-12
    assert checkerboard_score(get_model("subpixel-faces", init="original")(lr), 4) > 1e-3


# --- the original project's shuffle order -------------------------------------------------


def _original_ps(x: np.ndarray, r: int) -> np.ndarray:
    """A literal numpy port of the original project's ``PS(X, r, color=True)`` (NHWC)."""

    def phase_shift(i: np.ndarray) -> np.ndarray:
        n, a, b, _ = i.shape
        y = i.reshape(n, a, b, r, r).transpose(0, 1, 2, 4, 3)
        y = np.concatenate([y[:, k] for k in range(a)], axis=2)  # n, b, a·r, r
        y = np.concatenate([y[:, k] for k in range(b)], axis=2)  # n, a·r, b·r
        return y.reshape(n, a * r, b * r, 1)

    parts = np.split(x, 3, axis=3)
    return np.concatenate([phase_shift(p) for p in parts], axis=3)


def test_faces_shuffle_is_the_original_order() -> None:
    net = get_model("subpixel-faces")
    feats = torch.randn(2, 48, 5, 6)
    ours = net.shuffle(feats).permute(0, 2, 3, 1).numpy()
    ref = _original_ps(feats.permute(0, 2, 3, 1).numpy(), 4)
    np.testing.assert_array_equal(ours, ref)
    assert not np.array_equal(F.pixel_shuffle(feats, 4).permute(0, 2, 3, 1).numpy(), ref)


# --- training steps reduce the loss ----------------------------------------------------------


def _digits(n: int, seed: int = 0) -> torch.Tensor:
    """Blurry random strokes in [0, 1], 28×28: a stand-in for digits."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, 7, 7, generator=g) > 0.6).float()
    return F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("decoder", ["subpixel", "transposed"])
def test_autoencoder_steps_reduce_loss(decoder: str) -> None:
    model = get_model("autoencoder", decoder=decoder)
    x = _digits(16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = F.mse_loss(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.92 * losses[0]


@pytest.mark.parametrize("upsampler", ["subpixel", "transposed"])
def test_dcgan_steps_reduce_losses(upsampler: str) -> None:
    gen = get_model("dcgan", upsampler=upsampler, features=16)
    disc = get_model("dcgan", part="discriminator", features=16)
    real = _digits(32) * 2 - 1
    z = torch.randn(32, 100)
    bce = nn.BCEWithLogitsLoss()
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    fake = gen(z).detach()

    def d_loss() -> torch.Tensor:
        ones, zeros = torch.ones(32, 1), torch.zeros(32, 1)
        return bce(disc(real), ones) + bce(disc(fake), zeros)

    first = float(d_loss().detach())
    for _ in range(10):
        loss = d_loss()
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
    assert float(d_loss().detach()) < first
    disc.eval()  # a fixed critic: the generator's loss must fall against it
    g_first = float(bce(disc(gen(z)), torch.ones(32, 1)).detach())
    for _ in range(10):
        g_loss = bce(disc(gen(z)), torch.ones(32, 1))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    assert float(bce(disc(gen(z)), torch.ones(32, 1)).detach()) < g_first


# --- experiments on small generated idx files ------------------------------------------------


def _idx_folder(root: Path, n_train: int = 96, n_test: int = 40) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = (_digits(n, seed=n) * 255).round().to(torch.uint8).numpy()
        header = struct.pack(">BBBBIII", 0, 0, 8, 3, n, 28, 28)
        with gzip.open(root / f"{split}-images-idx3-ubyte.gz", "wb") as fh:
            fh.write(header + images.tobytes())
        with gzip.open(root / f"{split}-labels-idx1-ubyte.gz", "wb") as fh:
            fh.write(struct.pack(">BBBBI", 0, 0, 8, 1, n) + bytes(n))
    return root


RESULT_KEYS = {"params", "seconds_per_epoch", "checkerboard_init", "checkerboard_final"}


def test_autoencoder_experiment_is_reproducible(tmp_path: Path) -> None:
    data = _idx_folder(tmp_path / "idx")
    cfg = dict(dataset="mnist", decoder="transposed", epochs=1, data=str(data), progress=False)
    a = run_autoencoder(AutoencoderConfig(out=str(tmp_path / "a"), seed=3, **cfg))  # type: ignore[arg-type]
    b = run_autoencoder(AutoencoderConfig(out=str(tmp_path / "b"), seed=3, **cfg))  # type: ignore[arg-type]
    assert RESULT_KEYS | {"test_mse", "test_psnr", "checkerboard_data"} <= set(a)
    timing = {"seconds_per_epoch", "command", "threads"}
    assert {k: v for k, v in a.items() if k not in timing} == {
        k: v for k, v in b.items() if k not in timing
    }
    assert a["checkerboard_init"] > 1e-3
    assert a["test_psnr"] == pytest.approx(10 * np.log10(1 / a["test_mse"]), abs=3.0)
    saved = json.loads((tmp_path / "a" / "result.json").read_text())
    assert saved["test_mse"] == a["test_mse"]
    assert Image.open(tmp_path / "a" / "reconstructions.png").size == (2 * (16 * 30 + 2),) * 1 + (
        2 * (3 * 30 + 2),
    )
    model = get_model("autoencoder", weights=tmp_path / "a" / "model.safetensors")
    assert model.decoder_kind == "transposed"


def test_dcgan_experiment(tmp_path: Path) -> None:
    data = _idx_folder(tmp_path / "idx")
    cfg = DCGANConfig(
        upsampler="subpixel",
        epochs=1,
        data=str(data),
        out=str(tmp_path / "g"),
        batch_size=32,
        features=8,
        samples=64,
        progress=False,
    )
    r = run_dcgan(cfg)
    assert RESULT_KEYS | {"d_loss_final", "g_loss_final", "swd_final"} <= set(r)
    assert r["checkerboard_init"] < 1e-12
    assert r["train_images"] == 96
    for name in ("samples_init.png", "samples_final.png", "generator.safetensors"):
        assert (tmp_path / "g" / name).is_file()
    gen = get_model("dcgan", weights=tmp_path / "g" / "generator.safetensors")
    assert gen(torch.randn(2, 100)).shape == (2, 1, 28, 28)


def test_experiment_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _idx_folder(tmp_path / "idx")
    argv = ["experiment", "autoencoder", "--dataset", "fashion-mnist", "--decoder", "subpixel"]
    argv += ["--data", str(data), "--epochs", "1", "--limit", "64", "--seed", "1"]
    argv += ["--out", str(tmp_path / "o"), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "checkerboard_init" in out and "test_psnr" in out
    result = json.loads((tmp_path / "o" / "result.json").read_text())
    assert result["train_images"] == 64 and result["seed"] == 1
    assert result["checkerboard_init"] < 1e-12
    assert result["command"].startswith("subpixel experiment autoencoder")


def test_experiment_cli_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SUBPIXEL_DATA", raising=False)
    assert main(["experiment", "dcgan", "--upsampler", "subpixel"]) == 1
    assert "set SUBPIXEL_DATA" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00\x00")
    (bad / "train-labels-idx1-ubyte").write_bytes(b"")
    argv = ["experiment", "autoencoder", "--dataset", "mnist", "--decoder", "subpixel"]
    assert main([*argv, "--data", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert "train-images-idx3-ubyte: truncated IDX header" in err and "\n" not in err
    assert main(["experiment", "autoencoder", "--dataset", "mnist"]) == 2  # no --decoder


@pytest.mark.data
def test_experiment_on_real_mnist(data_dir: Path, tmp_path: Path) -> None:
    cfg = AutoencoderConfig(
        decoder="subpixel",
        epochs=1,
        limit=256,
        test_limit=500,
        out=str(tmp_path / "m"),
        progress=False,
    )
    r = run_autoencoder(cfg)
    assert r["train_images"] == 256 and r["test_images"] == 500
    assert r["checkerboard_init"] < 1e-12
    assert 0 < r["checkerboard_data"] < 0.01


def test_helpers() -> None:
    grid = image_grid(torch.zeros(3, 1, 2, 2), 2, pad=1)
    assert grid.shape == (1, 7, 7) and float(grid.sum()) == 49 - 12
    a = torch.rand(200, 4)
    assert sliced_wasserstein(a, a) == 0.0
    assert sliced_wasserstein(a, a + 1.0) == pytest.approx(
        sliced_wasserstein(torch.zeros(200, 4), torch.ones(200, 4))
    )
    rows = [
        {"experiment": "autoencoder", "decoder": "x", "seed": 0, "v": 1.0},
        {"experiment": "autoencoder", "decoder": "x", "seed": 1, "v": 2.0},
    ]
    assert "| autoencoder x | 2 | 1.5 ± 0.71 |" in summary_table(rows, ["v"])
    rows[1]["v"] = 1.0
    assert "| autoencoder x | 2 | 1 |" in summary_table(rows, ["v"])


# --- faces training ------------------------------------------------------------------------


def _faces(folder: Path, n: int = 4, size: tuple[int, int] = (140, 150)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    for i in range(n):
        img = np.stack(
            [127 + 100 * np.sin(xx / (6 + i) + c) * np.cos(yy / (8 + c)) for c in range(3)], -1
        )
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"face{i}.png")
    return folder


def test_face_pair_matches_crop_and_resize(tmp_path: Path) -> None:
    folder = _faces(tmp_path / "f", 1)
    lr, hr = face_pair(folder / "face0.png", 128)
    raw = np.asarray(Image.open(folder / "face0.png"), dtype=np.float64) / 255  # 150×140
    expected_hr = raw[11:139, 6:134].transpose(2, 0, 1)
    np.testing.assert_allclose((hr.numpy() + 1) / 2, expected_hr, atol=1e-6)
    expected_lr = imresize(torch.from_numpy(expected_hr), size=(32, 32))
    expected_lr = expected_lr.clamp(0, 1).mul(255).round().div(255)
    np.testing.assert_allclose((lr.numpy() + 1) / 2, expected_lr.numpy(), atol=1e-6)
    assert lr.shape == (3, 32, 32) and float(lr.min()) >= -1 and float(lr.max()) <= 1
    with pytest.raises(ValueError, match=r"face0\.png: image is 140×150, smaller than the 160"):
        face_pair(folder / "face0.png", 160)


def test_train_faces_loss_falls_grids_and_resume(tmp_path: Path) -> None:
    data = _faces(tmp_path / "faces")
    cfg = FacesConfig(
        data=(str(data),),
        out=str(tmp_path / "run"),
        steps=20,
        batch_size=2,
        sample_every=10,
        checkpoint_every=10,
        samples=2,
        progress=False,
    )
    result = train_faces(cfg)
    assert result.steps == 20
    assert result.last_loss < result.first_loss
    grids = sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.png"))
    assert grids == ["step-0000000.png", "step-0000010.png", "step-0000020.png"]
    with Image.open(tmp_path / "run" / "samples" / "step-0000020.png") as im:
        assert im.size == (3 * 130 + 2, 2 * 130 + 2) and im.mode == "RGB"
    model = get_model("subpixel-faces", weights=result.model_path)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 128, 128)
    with pytest.raises(FileExistsError, match="already holds a training run"):
        train_faces(cfg)
    more = train_faces(FacesConfig(**{**cfg.__dict__, "steps": 23, "resume": True}))
    assert more.steps == 23
    with pytest.raises(ValueError, match="different settings"):
        train_faces(FacesConfig(**{**cfg.__dict__, "steps": 40, "resume": True, "lr": 1e-3}))


def test_train_command_dispatches_faces(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _faces(tmp_path / "faces", 2)
    argv = ["train", "--model", "subpixel-faces", "--data", str(data), "--crop", "128"]
    argv += ["--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "2"]
    argv += ["--sample-every", "1", "--no-progress"]
    assert main(argv) == 0
    assert "weights:" in capsys.readouterr().out
    assert len(list((tmp_path / "run" / "samples").glob("*.png"))) == 3
    _, meta = load_weights(tmp_path / "run" / "model.safetensors")
    assert meta.model == "subpixel-faces" and meta.card["crop"] == 128
    argv[argv.index("--out") + 1] = str(tmp_path / "r2")
    assert main([*argv, "--scale", "2"]) == 1
    assert "upscales by 4 only" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "e")]) == 1
    assert "--scale is required" in capsys.readouterr().err
