"""subpixel.keras on one Keras backend, against PyTorch, numpy and written-out references.

Not collected by the main test run (the backend must be chosen before Keras is imported):
``tests/test_keras.py`` runs this file once per backend in a subprocess, with
``KERAS_BACKEND`` set and ``SUBPIXEL_KERAS_OUT`` naming a folder where the results that are
compared *between* backends are written (``arrays.npz``, ``facts.json``). By hand::

    KERAS_BACKEND=jax .venv/bin/python -m pytest tests/keras_backend_tests.py -x -q

The conversion grid is sampled on JAX (where every new shape compiles) and PyTorch.
"""

from __future__ import annotations

import doctest
import importlib.util
import itertools
import json
import os
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import subpixel
import subpixel.keras as spk
from orders_reference import reference_shuffle
from subpixel.keras import convert as kconvert
from subpixel.keras import initializers as kinit
from subpixel.keras import layers as klayers
from subpixel.keras import models as kmodels
from subpixel.keras import ops as kops
from subpixel.keras import resize as kresize
from subpixel.keras import weights as kweights
from subpixel.models import get_model
from subpixel.serialization import WeightsError, save_weights

BACKEND = keras.config.backend()
ROOT = Path(__file__).resolve().parents[1]
#: Every how many-th case of the big grids runs: JAX compiles every operation for every new
#: shape (~30 ms each), and PyTorch is slower than TensorFlow's eager convolutions.
SAMPLE = {"tensorflow": 1, "torch": 3, "jax": 48}.get(BACKEND, 1)
SHUFFLE_SAMPLE = {"jax": 5}.get(BACKEND, 1)
JAX = BACKEND == "jax"
to_np = keras.ops.convert_to_numpy

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*tf.lite.Interpreter is deprecated.*", "ignore::DeprecationWarning"
)


@pytest.fixture(scope="session")
def record() -> Iterator[dict[str, Any]]:
    """Results compared between backends by tests/test_keras.py, written at the end."""
    found: dict[str, Any] = {"arrays": {}, "facts": {"backend": BACKEND}}
    yield found
    out = os.environ.get("SUBPIXEL_KERAS_OUT")
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "arrays.npz", **found["arrays"])
        (folder / "facts.json").write_text(json.dumps(found["facts"], indent=1, sort_keys=True))


def native(x: np.ndarray) -> Any:
    """``x`` as a tensor of the active backend (tf.Tensor, jax.Array, torch.Tensor)."""
    return keras.ops.convert_to_tensor(x)


def test_backend_is_the_requested_one() -> None:
    wanted = os.environ.get("KERAS_BACKEND")
    assert wanted in (None, BACKEND)


# --- the shuffle: every order, alias, dimension, data format ---------------------------------

SPATIAL = {1: "w", 2: "hw", 3: "dhw"}
FACTORS = {1: [3], 2: [2, (2, 3), (3, 1)], 3: [2, (1, 2, 3)]}
ALIASES = sorted(subpixel.ops.ORDER_ALIASES)


def shuffle_cases() -> list[tuple[str, Any, str]]:
    """(order, factor, data_format): every canonical order and every alias."""
    cases: list[tuple[str, Any, str]] = []
    for n, letters in SPATIAL.items():
        orders = ["".join(p) for p in itertools.permutations("c" + letters)]
        for order, factor in itertools.product(orders, FACTORS[n]):
            if n == 3 and isinstance(factor, int) and order not in ("cdhw", "dhwc", "cwhd"):
                continue  # square 3-D factors for a few orders, rectangular for all 24
            for fmt in ("channels_last", "channels_first"):
                cases.append((order, factor, fmt))
    for alias, n in itertools.product(ALIASES, (1, 2, 3)):
        factor = (2, 3, 1)[:n] if n > 1 else (2,)
        cases.append((alias, factor, "channels_first" if n == 2 else "channels_last"))
    cases.append(("TensorFlow", 2, "channels_last"))  # aliases are case-insensitive
    return cases


def _input(order: str, factor: Any, fmt: str, inverse: bool) -> np.ndarray:
    """Integer-valued float32 data: distinct values, exact on every backend."""
    spec = subpixel.ops.ShuffleSpec.make(factor, order)
    n = spec.ndim
    spatial = [2 * f if inverse else 2 for f in spec.factors][:n]
    spatial = [s + (k % 2) * (spec.factors[k] if inverse else 1) for k, s in enumerate(spatial)]
    channels = 2 if inverse else 2 * spec.block
    shape = (2, channels, *spatial) if fmt == "channels_first" else (2, *spatial, channels)
    return np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)


def test_shuffle_and_unshuffle_equal_pytorch_and_the_reference(record: dict[str, Any]) -> None:
    cases = shuffle_cases()
    for i, (order, factor, fmt) in enumerate(cases):
        if i % SHUFFLE_SAMPLE:
            continue
        for inverse in (False, True):
            x = _input(order, factor, fmt, inverse)
            fn = subpixel.pixel_unshuffle if inverse else subpixel.pixel_shuffle
            kfn = spk.pixel_unshuffle if inverse else spk.pixel_shuffle
            ref = fn(torch.from_numpy(x), factor, order=order, data_format=fmt).numpy()
            assert np.array_equal(fn(x, factor, order=order, data_format=fmt), ref)
            got = to_np(kfn(native(x), factor, order=order, data_format=fmt))
            assert got.dtype == np.float32 and np.array_equal(got, ref), (order, factor, fmt)
            layer = (spk.PixelUnshuffle if inverse else spk.PixelShuffle)(
                factor, order=order, data_format=fmt
            )
            assert tuple(layer.compute_output_shape(x.shape)) == ref.shape
            if i % (3 * SHUFFLE_SAMPLE) == 0:  # the layer only calls the function
                assert np.array_equal(to_np(layer(x)), ref)
            record["arrays"][f"shuffle_{i}_{int(inverse)}"] = got
    assert len(cases) > 120


@pytest.mark.parametrize("order", ["chw", "hwc", "cwh", "whc"])
def test_shuffle_matches_the_order_table(order: str) -> None:
    """Against the mixed-radix reading of docs/orders.md (shares no code with subpixel.ops)."""
    x = np.random.default_rng(0).normal(size=(2, 3 * 6, 4, 5)).astype(np.float32)
    ref = reference_shuffle(torch.from_numpy(x), (2, 3), order).numpy()
    got = to_np(spk.pixel_shuffle(x, (2, 3), order=order, data_format="channels_first"))
    assert np.array_equal(got, ref)
    nhwc = to_np(spk.pixel_shuffle(np.moveaxis(x, 1, -1), (2, 3), order=order))
    assert np.array_equal(nhwc, np.moveaxis(ref, 1, -1))


def test_shuffle_on_symbolic_and_dynamic_shapes() -> None:
    """Functional models with unknown sizes, built from the layer and from the op."""
    inp = keras.Input((None, None, 12))
    a = spk.PixelShuffle(2, order="cwh")(inp)
    b = spk.pixel_shuffle(inp, (2, 3), order="hwc")
    c = spk.pixel_unshuffle(a, 2, order="cwh")
    assert tuple(a.shape) == (None, None, None, 3) and tuple(b.shape) == (None, None, None, 2)
    model = keras.Model(inp, [a, b, c])
    for h, w in ((3, 4), (5, 2)):
        x = np.random.default_rng(h).normal(size=(2, h, w, 12)).astype(np.float32)
        ya, yb, yc = (np.asarray(y) for y in model.predict(x, verbose=0))
        nchw = torch.from_numpy(x).permute(0, 3, 1, 2)
        for y, factor, order in ((ya, 2, "cwh"), (yb, (2, 3), "hwc")):
            ref = subpixel.pixel_shuffle(nchw, factor, order=order).permute(0, 2, 3, 1)
            assert np.array_equal(y, ref.numpy())
        assert np.array_equal(yc, x)


def test_functions_take_numpy_native_and_torch_tensors() -> None:
    """A PyTorch CPU tensor works as input on every backend (the result is the backend's)."""
    x = np.arange(2 * 3 * 4 * 8, dtype=np.float32).reshape(2, 3, 4, 8)
    ref = subpixel.pixel_shuffle(x, (2, 1), order="hwc", data_format="channels_last")
    for arg in (x, native(x), torch.from_numpy(x)):
        y = spk.pixel_shuffle(arg, (2, 1), order="hwc")
        assert keras.ops.is_tensor(y) and np.array_equal(to_np(y), ref)


def test_convert_order_equals_pytorch() -> None:
    k = np.random.default_rng(0).normal(size=(3, 3, 4, 3 * 6)).astype(np.float32)
    got = to_np(spk.convert_order(native(k), (2, 3), src="hwc", dst="cwh"))
    ref = subpixel.convert_order(torch.from_numpy(k), (2, 3), src="hwc", dst="cwh", dim=-1)
    assert np.array_equal(got, ref.numpy())
    inp = keras.Input((None, None, 12))
    assert tuple(spk.convert_order(inp, 2, src="tf", dst="torch").shape) == (None, None, None, 12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: spk.pixel_shuffle(np.zeros((1, 4, 4, 6)), 2),
            r"channels not divisible.*\(1, 4, 4, 6\)",
        ),
        (lambda: spk.pixel_unshuffle(np.zeros((1, 5, 4, 1)), 2), r"spatial size not divisible"),
        (lambda: spk.pixel_shuffle(np.zeros((4, 4)), 2), r"too few dimensions"),
        (lambda: spk.pixel_shuffle(np.zeros((1, 1, 1, 4)), 2, order="chx"), r"malformed order"),
        (lambda: spk.pixel_shuffle(np.zeros((1, 1, 1, 4)), 2, data_format="NHWC"), r"data_format"),
        (lambda: spk.PixelShuffle((2,), order="chw"), r"1 entries but order 'chw' has 2"),
        (lambda: spk.PixelShuffle(2)(np.zeros((1, 3, 8))), r"needs inputs \(batch, 2 spatial"),
        (lambda: spk.SubPixelConv2D(0, 3, 2), r"filters must be a positive int"),
        (lambda: spk.SubPixelConv2D(3, 3, 2, order="hwc", groups=3), r"block's channels"),
        (lambda: spk.ICNR(2)((3, 3, 4, 6)), r"multiple of the product"),
        (lambda: spk.ICNR(2)((12,)), r"give factor as a tuple"),
    ],
)
def test_errors_name_the_problem(call: Callable[[], Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        call()


# --- Keras's own depth_to_space: the channels_first trap -------------------------------------


def _which_order(y: np.ndarray, x: np.ndarray, *, inverse: bool) -> str:
    fn = subpixel.pixel_unshuffle if inverse else subpixel.pixel_shuffle
    hits = [
        order
        for order in ("hwc", "chw")
        if np.array_equal(y, fn(x, 2, order=order, data_format="channels_first"))
    ]
    return "+".join(hits) or "neither"


def test_keras_depth_to_space_orders(record: dict[str, Any]) -> None:
    """What keras.ops.depth_to_space/space_to_depth do on this backend (recorded, and
    checked against the expectation per backend by tests/test_keras.py)."""
    x = np.arange(2 * 12 * 2 * 3, dtype=np.float32).reshape(2, 12, 2, 3)  # NCHW, C = 3·2·2
    first = to_np(keras.ops.depth_to_space(native(x), 2, data_format="channels_first"))
    last = to_np(keras.ops.depth_to_space(native(np.moveaxis(x, 1, -1)), 2))
    z = np.arange(2 * 3 * 4 * 6, dtype=np.float32).reshape(2, 3, 4, 6)
    s_first = to_np(keras.ops.space_to_depth(native(z), 2, data_format="channels_first"))
    facts = {
        "depth_to_space_channels_first": _which_order(first, x, inverse=False),
        "depth_to_space_channels_last": _which_order(np.moveaxis(last, -1, 1), x, inverse=False),
        "space_to_depth_channels_first": _which_order(s_first, z, inverse=True),
    }
    record["facts"].update(facts)
    assert facts["depth_to_space_channels_last"] == "hwc"
    assert set(facts.values()) <= {"hwc", "chw"}


# --- ICNR and the sub-pixel convolution layers -----------------------------------------------

LAYERS = {1: spk.SubPixelConv1D, 2: spk.SubPixelConv2D, 3: spk.SubPixelConv3D}
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
ICNR_CASES = [
    (1, None, (3,), "channels_last", 1),
    (2, None, (2, 2), "channels_last", 1),
    (2, "tensorflow", (2, 3), "channels_last", 1),
    (2, "cwh", (3, 1), "channels_first", 1),
    (2, "chw", (2, 2), "channels_last", 2),
    (3, "dhwc", (1, 2, 2), "channels_last", 1),
]


def _channels_first_ok(fmt: str) -> bool:
    # TensorFlow's CPU convolutions take NHWC only (a Keras/TensorFlow limitation).
    return fmt == "channels_last" or BACKEND != "tensorflow"


@pytest.mark.parametrize(("n", "order", "factor", "fmt", "groups"), ICNR_CASES)
def test_icnr_layer_is_nearest_upsampling_of_a_low_res_conv(
    n: int, order: str | None, factor: tuple[int, ...], fmt: str, groups: int
) -> None:
    if not _channels_first_ok(fmt):
        pytest.skip("TensorFlow's CPU convolutions are NHWC only")
    layer = LAYERS[n](
        4, 3, factor, order=order, data_format=fmt, groups=groups, bias_initializer="uniform"
    )
    x = np.random.default_rng(0).normal(size=(2, 6, *[5] * n)).astype(np.float32)
    x_k = x if fmt == "channels_first" else np.moveaxis(x, 1, -1)
    y = to_np(layer(x_k))
    y = y if fmt == "channels_first" else np.moveaxis(y, -1, 1)
    kernel, bias = (to_np(v) for v in layer.conv.weights)
    # The sub-kernel: the first channel of each block (channel c·∏r in PyTorch order).
    torch_order = "c" + SPATIAL[n]
    spec = subpixel.ops.ShuffleSpec.make(factor, layer.order)
    as_torch = subpixel.convert_order(kernel, factor, src=spec.order, dst=torch_order, dim=-1)
    b_torch = subpixel.convert_order(bias, factor, src=spec.order, dst=torch_order)
    sub = kweights.kernel_to_torch(as_torch[..., :: spec.block])
    blocks = b_torch.reshape(-1, spec.block)
    assert np.array_equal(blocks, np.repeat(blocks[:, :1], spec.block, axis=1))  # ICNR bias
    low = TORCH_CONV[n](
        torch.from_numpy(x),
        torch.from_numpy(sub),
        torch.from_numpy(b_torch[:: spec.block].copy()),
        padding="same",
        groups=groups,
    )
    ref = low
    for axis, r in enumerate(factor):
        ref = ref.repeat_interleave(r, dim=2 + axis)
    assert np.abs(y - ref.numpy()).max() < 1e-5 * max(1.0, float(np.abs(y).max()))


def test_icnr_initializer_serialises_and_fills_biases() -> None:
    init = spk.ICNR((2, 3), order="whc", initializer="glorot_uniform", seed=3)
    again = keras.initializers.deserialize(keras.initializers.serialize(init))
    assert isinstance(again, spk.ICNR) and again.get_config() == init.get_config()
    k1, k2 = to_np(init((3, 3, 4, 12))), to_np(again((3, 3, 4, 12)))
    assert np.array_equal(k1, k2)  # the seed travels with the config
    as_torch = subpixel.convert_order(k1, (2, 3), src="whc", dst="chw", dim=-1).reshape(
        3, 3, 4, 2, 6
    )
    assert np.array_equal(as_torch, np.repeat(as_torch[..., :1], 6, axis=-1))
    bias = to_np(spk.ICNR((2, 3), order="hwc", initializer="random_normal")((2 * 6,)))
    assert np.array_equal(bias.reshape(6, 2), np.repeat(bias.reshape(6, 2)[:1], 6, axis=0))


TWIN_CASES = [
    (1, "wc", (3,), False),
    (2, "hwc", (2, 2), True),
    (2, None, (2, 3), False),
    (3, None, (1, 2, 2), True),
]


@pytest.mark.parametrize(("n", "order", "factor", "blur"), TWIN_CASES)
def test_subpixel_conv_equals_its_pytorch_twin(
    n: int, order: str | None, factor: tuple[int, ...], blur: bool
) -> None:
    """Same order, same weights (layout transposed only): same outputs, blur included."""
    torch_layer = {
        1: subpixel.SubPixelConv1d,
        2: subpixel.SubPixelConv2d,
        3: subpixel.SubPixelConv3d,
    }
    tm = torch_layer[n](5, 3, 3, factor, order=order, blur=blur).eval()
    km = LAYERS[n](3, 3, factor, order=order, blur=blur)
    assert km.order == tm.order
    x = np.random.default_rng(1).normal(size=(2, 5, *[4] * n)).astype(np.float32)
    km.build((None, *x.shape[2:], 5))
    km.conv.set_weights([kweights.kernel_from_torch(tm.conv.weight), tm.conv.bias.detach().numpy()])
    y = to_np(km(np.moveaxis(x, 1, -1)))
    with torch.no_grad():
        ref = tm(torch.from_numpy(x)).numpy()
    assert np.abs(np.moveaxis(y, -1, 1) - ref).max() < 1e-5


def test_blur_equals_pytorch_blur_in_both_formats() -> None:
    x = np.random.default_rng(2).normal(size=(2, 3, 5, 6)).astype(np.float32)
    ref = subpixel.Blur((3, 2))(torch.from_numpy(x)).numpy()
    first = to_np(spk.Blur((3, 2), data_format="channels_first")(x))
    last = to_np(spk.Blur((3, 2))(np.moveaxis(x, 1, -1)))
    assert np.abs(first - ref).max() < 1e-6 and np.abs(np.moveaxis(last, -1, 1) - ref).max() < 1e-6


# --- serialisation ---------------------------------------------------------------------------


def test_model_with_every_layer_saves_and_loads(tmp_path: Path) -> None:
    up = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same")
    up.build((None, None, None, 2))
    inp = keras.Input((None, None, 4))
    h = spk.SubPixelConv2D(4, 3, 2, order="tensorflow", blur=True)(inp)
    h = spk.PixelUnshuffle((2, 1), order="whc")(h)
    h = keras.layers.Conv2D(8, 1, kernel_initializer=spk.ICNR(2, order="hwc"))(h)
    h = spk.PixelShuffle(2, order="cwh")(h)
    h = spk.Blur(2)(h)
    h = kconvert.transposed_to_subpixel(up)(h)
    r = kresize.BicubicUpsampling2D(2)(inp)
    model = keras.Model(inp, [h, r])
    seq = keras.Sequential([keras.Input((None, 3)), spk.SubPixelConv1D(2, 3, 2, order="wc")])
    x = np.random.default_rng(3).normal(size=(1, 5, 3, 4)).astype(np.float32)
    for m, data in ((model, x), (seq, x[0, ..., :3])):
        path = tmp_path / f"{m.name}.keras"
        m.save(path)
        loaded = keras.models.load_model(path)
        before, after = m(data), loaded(data)
        for a, b in zip(keras.tree.flatten(before), keras.tree.flatten(after), strict=True):
            assert np.array_equal(to_np(a), to_np(b))
    if JAX:  # its layers are in the model above; the ESPCN class itself on TF and PyTorch
        return
    espcn = kmodels.espcn(2, weights="espcn")
    espcn.save(tmp_path / "espcn.keras")
    loaded = keras.models.load_model(tmp_path / "espcn.keras")
    assert isinstance(loaded, kmodels.ESPCN) and loaded.get_config() == espcn.get_config()
    lr = x[..., :1]
    assert np.array_equal(to_np(loaded(lr)), to_np(espcn(lr)))


# --- bicubic and ESPCN against PyTorch ---------------------------------------------------------


def _torch_bicubic(x: np.ndarray, scale: int, dtype: torch.dtype) -> np.ndarray:
    t = torch.from_numpy(x).permute(0, 3, 1, 2).to(dtype)
    y = F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)
    return y.permute(0, 2, 3, 1).float().numpy()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_equals_pytorch(scale: int) -> None:
    rng = np.random.default_rng(scale)
    wide = rng.random((1, 3, 700, 2), dtype=np.float32)  # 2100 pixels wide at x3
    y = to_np(kresize.bicubic_upsample(wide, scale))
    assert np.abs(y - _torch_bicubic(wide, scale, torch.float64)).max() < 1e-6
    drift = np.abs(y - _torch_bicubic(wide, scale, torch.float32)).max()
    assert drift < (1e-4 if scale == 3 else 1e-6)  # PyTorch's float32 positions at 1/3
    small = rng.random((2, 17, 23, 3), dtype=np.float32)
    y = to_np(kresize.BicubicUpsampling2D(scale)(small))
    assert np.abs(y - _torch_bicubic(small, scale, torch.float32)).max() < 3e-6
    first = to_np(
        kresize.bicubic_upsample(np.moveaxis(small, -1, 1), scale, data_format="channels_first")
    )
    assert np.array_equal(np.moveaxis(first, 1, -1), y)


def _lr(seed: int, channels: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((2, 20, 26, channels), dtype=np.float32)


def _torch_out(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bundled_espcn_equals_pytorch(scale: int, record: dict[str, Any]) -> None:
    keras_model = kmodels.espcn(scale, weights="espcn")
    x = _lr(scale)
    y = np.asarray(keras_model.predict(x, verbose=0))
    ref = _torch_out(get_model("espcn", scale=scale, weights="espcn"), x)
    assert y.shape == ref.shape and np.abs(y - ref).max() < 1e-5
    record["arrays"][f"espcn_x{scale}"] = y
    record["arrays"][f"espcn_x{scale}_input"] = x


CONFIGS: list[dict[str, Any]] = [
    # RGB in TensorFlow-incompatible order: the order conversion matters with C > 1
    {"scale": 2, "channels": 3, "features": [16, 8], "activation": "prelu", "order": "cwh"},
    {"scale": 3, "activation": "leaky_relu", "output_activation": "tanh", "kernels": [3, 5, 1]},
    # a re-parametrised inference form: a plain ESPCN with many 3x3 layers
    {
        "scale": 4,
        "features": [24] * 5,
        "kernels": [3] * 6,
        "activation": "prelu",
        "residual": "bicubic",
        "output_activation": "prelu",
    },
]


@pytest.mark.parametrize("config", CONFIGS[-1:] if JAX else CONFIGS, ids=lambda c: f"x{c['scale']}")
def test_espcn_weights_round_trip_through_files(config: dict[str, Any], tmp_path: Path) -> None:
    """PyTorch file -> Keras (equal outputs) -> PyTorch file -> PyTorch (equal weights)."""
    torch.manual_seed(0)
    tm = get_model("espcn", **config).eval()
    with torch.no_grad():  # random, non-trivial weights everywhere (the last layer too)
        for p in tm.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    src = tmp_path / "torch.safetensors"
    save_weights(src, tm.state_dict(), model="espcn", config=config)
    km = kmodels.espcn(config["scale"], weights=src)
    x = _lr(7, config.get("channels", 1))
    assert np.abs(to_np(km(x)) - _torch_out(tm, x)).max() < 1e-5
    back = tmp_path / "back.safetensors"
    kweights.save_torch(km, back, order=config.get("order", "chw"))
    tm2 = get_model("espcn", weights=back)
    for (k1, v1), (k2, v2) in zip(tm.state_dict().items(), tm2.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
    state, cfg = kweights.torch_state(km)  # PyTorch's own order: a different file, same model
    tm3 = get_model("espcn", **cfg)
    tm3.load_state_dict(state)
    assert np.abs(_torch_out(tm3.eval(), x) - _torch_out(tm, x)).max() < 1e-5


def test_espcn_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="trained with residual='bicubic'"):
        kmodels.espcn(2, weights="espcn", residual=None)
    with pytest.raises(WeightsError, match="not ×5"):
        kmodels.espcn(5, weights="espcn")
    tm = get_model("espcn", scale=2)
    bad = tmp_path / "bad.safetensors"
    state = dict(tm.state_dict())
    state["extra.weight"] = torch.zeros(1)
    save_weights(bad, state, model="espcn", config={"scale": 2})
    with pytest.raises(WeightsError, match=r"unexpected tensors \['extra\.weight'\]"):
        kmodels.espcn(2, weights=bad)
    save_weights(bad, tm.state_dict(), model="fsrcnn", config={"scale": 2})
    with pytest.raises(WeightsError, match="for model 'fsrcnn'"):
        kmodels.espcn(2, weights=bad)


# --- Conv2DTranspose -> sub-pixel ------------------------------------------------------------


def transposed_cases() -> list[tuple[int, tuple[int, ...], tuple[int, ...], str, Any, int, str]]:
    """(n, kernel, strides, padding, output_padding, dilation, data_format)."""
    cases = []
    for k, s, pad in itertools.product((1, 2, 3, 4, 5), (1, 2, 3), ("valid", "same")):
        for op in (None, *range(s)):
            cases.append((2, (k, max(1, k - 1)), (s, 1 + s % 2), pad, op, 1, "channels_last"))
    cases += [
        (2, (3, 2), (1, 1), "same", None, 2, "channels_last"),
        (2, (3, 3), (1, 1), "valid", 0, 3, "channels_last"),
        (2, (4, 3), (2, 3), "same", None, 1, "channels_first"),
        (2, (5, 5), (3, 3), "valid", (1, 2), 1, "channels_first"),
        (1, (5,), (3,), "same", None, 1, "channels_last"),
        (1, (4,), (2,), "valid", 1, 1, "channels_first"),
        (3, (3, 4, 2), (1, 2, 2), "same", None, 1, "channels_last"),
    ]
    return cases[:-7][::SAMPLE] + cases[-7:]


def test_transposed_conv_conversion_is_exact() -> None:
    rng = np.random.default_rng(5)
    ran = refused = 0
    cls = {
        1: keras.layers.Conv1DTranspose,
        2: keras.layers.Conv2DTranspose,
        3: keras.layers.Conv3DTranspose,
    }
    for n, kernel, strides, pad, op, dil, fmt in transposed_cases():
        if isinstance(op, int) and n > 1:
            op = (op, 0) if n == 2 else (op, 0, 0)
        up = cls[n](
            3,
            kernel,
            strides=strides,
            padding=pad,
            output_padding=op,
            dilation_rate=dil,
            data_format=fmt,
            activation="tanh",
        )
        spatial = [5, 4, 3][:n]
        x = rng.normal(size=(2, *spatial, 6)).astype(np.float32)
        x_in = np.moveaxis(x, -1, 1) if fmt == "channels_first" else x
        up.build(x_in.shape)
        up.bias.assign(rng.normal(size=3).astype(np.float32))  # a bias, not zeros
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                y = to_np(up(x_in))
        except Exception as exc:  # configurations this backend's Keras refuses to run
            if BACKEND != "tensorflow":
                raise
            refused += 1
            assert re.search(r"NHWC|Conv2DTranspose|Conv2DSlowBackpropInput|not match", str(exc))
            continue
        sp = kconvert.transposed_to_subpixel(up)
        z = to_np(sp(x_in))
        assert z.shape == y.shape, (kernel, strides, pad, op, dil, fmt)
        assert np.abs(z - y).max() < 1e-5 * max(1.0, float(np.abs(y).max())), (
            kernel,
            strides,
            pad,
            op,
        )
        assert tuple(sp.compute_output_shape(x_in.shape)) == y.shape
        ran += 1
    assert ran >= max(9, 60 // SAMPLE) and refused < ran


def test_transposed_conversion_channels_first_on_tensorflow() -> None:
    """TensorFlow's CPU runs no NCHW transposed convolution: compare with NHWC instead."""
    up = keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same", data_format="channels_last")
    x = np.random.default_rng(6).normal(size=(1, 5, 6, 2)).astype(np.float32)
    y = to_np(up(x))
    sp = kconvert.transposed_to_subpixel(up)
    assert np.abs(to_np(sp(x)) - y).max() < 1e-5
    if _channels_first_ok("channels_first"):
        first = keras.layers.Conv2DTranspose(
            3, 4, strides=2, padding="same", data_format="channels_first"
        )
        first.build((None, 2, None, None))
        first.set_weights(up.get_weights())
        z = to_np(kconvert.transposed_to_subpixel(first)(np.moveaxis(x, -1, 1)))
        assert np.abs(np.moveaxis(z, 1, -1) - y).max() < 1e-5


@pytest.mark.skipif(JAX, reason="Keras's clone_model, the same on every backend: TF and PyTorch")
def test_replace_transposed_convs_in_a_model() -> None:
    inp = keras.Input((7, 7, 8))
    h = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same", activation="relu")(inp)
    out = keras.layers.Conv2DTranspose(1, 3, strides=2, padding="valid", output_padding=1)(h)
    model = keras.Model(inp, out)
    new, names = kconvert.replace_transposed_convs(model)
    assert len(names) == 2
    assert [type(layer).__name__ for layer in new.layers[1:]] == ["ConvTransposeAsSubPixel"] * 2
    x = np.random.default_rng(8).normal(size=(2, 7, 7, 8)).astype(np.float32)
    assert np.abs(to_np(new(x)) - to_np(model(x))).max() < 1e-5


# --- docs, docstrings, examples ----------------------------------------------------------------

MODULES = [spk, kops, klayers, kinit, kresize, kmodels, kweights, kconvert]
DOC = ROOT / "docs" / "keras.md"


def test_docstring_examples() -> None:
    # JAX: the functional modules only (the others build models: TF and PyTorch run them)
    modules = [kops, kinit] if JAX else list(MODULES)
    if BACKEND == "tensorflow":
        import subpixel.keras.tflite as ktflite

        modules.append(ktflite)
    for module in modules:
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, module.__name__
    assert importlib.util.find_spec("subpixel.keras.tflite") is not None


def doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.mark.skipif(JAX, reason="run on TensorFlow and PyTorch (JAX compiles every shape)")
def test_docs_code_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/keras.md runs as written (blocks using TFLite on the TensorFlow backend only)."""
    monkeypatch.chdir(tmp_path)
    blocks = doc_blocks()
    assert len(blocks) >= 5
    scope: dict[str, Any] = {}
    for i, block in enumerate(blocks):
        if "tflite" in block and BACKEND != "tensorflow":
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(block, f"docs/keras.md python block {i}", "exec"), scope)


def _example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(BACKEND != "tensorflow", reason="examples run on one backend (the cheapest)")
def test_examples_run(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ae = _example("keras_autoencoder")
    args = ["--data", str(data_dir / "mnist"), "--steps", "20", "--train-limit", "640"]
    assert ae.main([*args, "--test-limit", "128", "--out", str(tmp_path / "ae.keras")]) == 0
    out = capsys.readouterr().out
    before, after = (float(v) for v in re.findall(r"MSE ([0-9.]+) -> ([0-9.]+)", out)[0])
    assert after < before
    sr = _example("keras_espcn")
    weights = tmp_path / "espcn.safetensors"
    args = ["--data", str(data_dir / "sr" / "T91"), "--steps", "20", "--limit-images", "2"]
    assert sr.main([*args, "--batch-size", "8", "--torch-out", str(weights)]) == 0
    assert "ESPCN x3" in capsys.readouterr().out
    assert get_model("espcn", weights=weights).residual == "bicubic"


# --- TensorFlow Lite -----------------------------------------------------------------------------


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TFLite export needs the TensorFlow backend")
def test_tflite_on_set5(data_dir: Path, record: dict[str, Any]) -> None:
    from keras_tflite_set5 import score

    s = score(data_dir, 2, with_torch=False)  # Keras = PyTorch: test_bundled_espcn_...
    record["facts"]["tflite_set5_x2"] = s
    assert s["f32_max_abs_vs_keras"] < 1e-4
    assert abs(s["tflite_f32"] - s["keras"]) < 1e-3
    assert 36.5 < s["keras"] < 36.8  # the model card's 36.64 dB
    assert s["keras"] - s["tflite_int8"] <= 0.1


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TFLite export needs the TensorFlow backend")
def test_cli_exports_tflite_as_pytorch_computes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``subpixel export -o x.tflite``: the file, run by TFLite's interpreter, against the
    PyTorch model of the same weights (float32 to 1e-4; int8 within a few levels)."""
    from PIL import Image

    from subpixel.cli import main
    from subpixel.keras.tflite import run_tflite, tflite_ops

    reference = get_model("espcn", scale=4, weights="photo").eval()
    x = _lr(4)
    f32 = tmp_path / "photo_x4.tflite"
    assert main(["export", "--weights", "photo", "--scale", "4", "-o", str(f32)]) == 0
    assert "TFLite vs PyTorch: max abs difference" in capsys.readouterr().out
    assert np.abs(run_tflite(f32, x) - _torch_out(reference, x)).max() < 1e-4
    assert "DEPTH_TO_SPACE" in tflite_ops(f32)

    rng = np.random.default_rng(0)  # smooth images to calibrate on (training-like, not test)
    for i in range(3):
        coarse = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((160, 150), Image.BICUBIC).save(tmp_path / f"c{i}.png")
    q8 = tmp_path / "photo_x4_int8.tflite"
    args = ["--int8", "--calibration", str(tmp_path / "c0.png"), str(tmp_path / "c1.png")]
    assert main(["export", "--weights", "photo", "--scale", "4", "-o", str(q8), *args]) == 0
    assert "TFLite int8 vs PyTorch float32 on the 64 calibration patches" in capsys.readouterr().out
    ops = tflite_ops(q8)
    assert ops[0] == "QUANTIZE" and ops[-1] == "ADD"  # int8 inside, the bicubic skip float32
    assert ops.index("DEQUANTIZE") < ops.index("CONCATENATION")
    smooth = np.asarray(Image.open(tmp_path / "c2.png").convert("L").resize((40, 36)), np.float32)
    probe = (smooth / 255)[None, :, :, None]
    err = run_tflite(q8, probe) - _torch_out(reference, probe)
    assert 10 * np.log10(1 / np.mean(err**2)) > 40  # dB: int8 rounding, not a wrong network
    assert q8.stat().st_size < f32.stat().st_size / 2


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TFLite export needs the TensorFlow backend")
def test_tflite_operators(tmp_path: Path) -> None:
    import tensorflow as tf

    from subpixel.keras.tflite import export_tflite, run_tflite

    model = kmodels.espcn(3, weights="espcn")
    x = _lr(9)[:1]
    path = tmp_path / "f32.tflite"
    export_tflite(model, path)
    interpreter = tf.lite.Interpreter(model_path=str(path))
    ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})
    assert ops == ["ADD", "CONCATENATION", "CONV_2D", "DEPTH_TO_SPACE", "STRIDED_SLICE"]
    assert np.abs(run_tflite(path, x) - to_np(model(x))).max() < 1e-5
    # XNNPACK (TFLite's default CPU delegate) takes DEPTH_TO_SPACE in float32 and in int8:
    # a model of the shuffle alone gets a delegate node, and none without default delegates.
    inp = keras.Input((8, 8, 12))
    shuffle = keras.Model(inp, spk.PixelShuffle(2, order="hwc")(inp))
    resolver = tf.lite.experimental.OpResolverType
    for name, kwargs in (("d2s_f32", {}), ("d2s_int8", {"quantize": "int8", "int8_io": True})):
        path = tmp_path / f"{name}.tflite"
        calib = [np.random.default_rng(i).random((1, 8, 8, 12), np.float32) for i in range(4)]
        if "quantize" in kwargs:
            kwargs["representative"] = calib
        export_tflite(shuffle, path, input_shape=(1, 8, 8, 12), **kwargs)
        for kind, delegated in (
            (resolver.AUTO, True),
            (resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES, False),
        ):
            interpreter = tf.lite.Interpreter(
                model_path=str(path), experimental_op_resolver_type=kind
            )
            interpreter.allocate_tensors()
            names = [op["op_name"] for op in interpreter._get_ops_details()]
            assert names == ["DEPTH_TO_SPACE", "DELEGATE"][: 2 if delegated else 1], (name, names)
        assert run_tflite(path, calib[0]).shape == (1, 16, 16, 3)
    with pytest.raises(ValueError, match="needs representative"):
        export_tflite(model, tmp_path / "x.tflite", quantize="int8")
    with pytest.raises(ValueError, match="no operator of the model comes from layer 'nope'"):
        export_tflite(
            shuffle,
            tmp_path / "x.tflite",
            quantize="int8",
            representative=calib,
            float_layers=["nope"],
        )
