"""Backends: what runs a model's network in an upscale, chosen once, with the reasons why.

A :class:`Backend` says whether it can run a :class:`Request` (model, pipeline, device,
precision, the CPU's capabilities) and, if not, why; :func:`choose` asks them in order of
speed and takes the first that accepts, once per :class:`~subpixel.upscale.Upscaler`.
``Upscaler.backend`` (and ``subpixel upscale --verbose``) shows the :class:`Choice`: the
backend, the kernels it uses, how the colour processing runs, and why the faster ones
declined.

The backends, fastest first:

``device``
    a CUDA (or other non-CPU) device: the model's layers in ``channels_last``
    (:mod:`subpixel.fast`, cuDNN autotuning).
``cpu-bf16``
    PyTorch bfloat16 ``channels_last`` layers (oneDNN); chosen by ``precision="auto"`` only
    where the CPU has AMX (measured: 28.5 ms vs 95.7 ms fp32 for ESPCN ×3 on a Xeon with
    AMX; without AMX bf16 is emulated and slower). Approximate: ≥ 45 dB PSNR against fp32.
``cpu-int8``
    :mod:`subpixel.fast`'s int8 network (approximate), only when asked; where it was
    measured slower than fp32 (:data:`INT8_SLOWER_SCALES`) fp32 runs instead.
``cpu-fp32``
    :mod:`subpixel.fast`'s fp32 network: compiled Winograd kernels where built, else
    oneDNN (or NNPACK, when the process opted in: :func:`subpixel.fast.tune_process`).
    Same values as the model.
``cpu-layers``
    a model that is not ESPCN-like but a chain of convolutions and element-wise activations
    ending in an upsampler (FSRCNN: PReLU, 1×1 layers, a transposed convolution): its own
    layers in PyTorch ``channels_last`` (oneDNN), in bands of rows on all threads, the
    transposed convolution computed as its phase convolution (:mod:`subpixel.fast._chain`),
    so that the fused uint8 colour steps take its phases. Same values as the model (float
    rounding).
``reference``
    the model's own PyTorch layers: any model, any device; the others are tested against it.

The colour processing (:class:`~subpixel._upscale.pipeline.Pipeline`) is not a backend:
every backend's network runs inside it. 8-bit RGB goes through a fused uint8 kernel where
there is one for the pipeline (``Choice.fused`` is ``None``; else it says why not):
:class:`~subpixel.fast.FastUpscaler` for the paper's processing, :class:`~subpixel.fast.
OpenCVUpscaler` for OpenCV's exact uint8 steps (imported OpenCV models); else float blocks
(or OpenCV's steps in numpy) around the network.

Example:
    >>> from subpixel.models import get_model
    >>> req = Request(get_model("espcn", scale=2), caps=CpuCaps())   # a CPU without AMX
    >>> choice = choose(req)
    >>> choice.name, choice.exact
    ('cpu-fp32', True)
    >>> dict(choice.declined)["cpu-bf16"]
    'the CPU has no AMX: bf16 would be slower than fp32 (precision="bf16" forces it)'
    >>> choose(Request(get_model("espcn", scale=2), precision="bf16", caps=CpuCaps())).name
    'cpu-bf16'
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from subpixel._cpu import CpuCaps
from subpixel._upscale.pipeline import Pipeline
from subpixel.fast import CHROMA_MODES, FastESPCN, FastUpscaler
from subpixel.fast._chain import PhaseChain, _CpuChain, phase_chain
from subpixel.fast._kernels import Built
from subpixel.fast._net import _Net, _parse
from subpixel.fast._optimize import build_network
from subpixel.fast._torch import _Torch

__all__ = [
    "BACKENDS",
    "INT8_SLOWER_SCALES",
    "PRECISIONS",
    "Backend",
    "Built",
    "Choice",
    "CpuCaps",
    "Request",
    "choose",
    "fast_upscaler_for",
]

#: What ``precision=`` accepts: ``"auto"`` (exact fp32, or bf16 where the CPU has AMX),
#: ``"fp32"`` (exact; refuses bf16), ``"bf16"`` or ``"int8"`` (approximate, CPU).
PRECISIONS = ("auto", "fp32", "bf16", "int8")


#: Scales at which the int8 network was measured slower than fp32, by CPU kind
#: (:meth:`CpuCaps.kind`); there ``"int8"`` runs the fp32 network instead, so that int8 is
#: never the slower choice. ``amx``: an Intel Xeon with AMX, int8 lost at ×2 (3.18× vs
#: 3.56× OpenCV's frames/s, issue 15's measurement). ``vnni``: an AVX-512 VNNI EPYC (Zen 4),
#: int8 faster at every scale (docs/benchmarks.md). ``plain``: a 2-core AVX2 EPYC without
#: VNNI or BF16, int8/fp32 time 1.04-1.58 at ×3/×4 and 18-100 at ×2 (where the bf16 last
#: layer has no hardware; 2026-12-03, docs/benchmarks.md).
INT8_SLOWER_SCALES: dict[str, frozenset[int]] = {
    "amx": frozenset({2}),
    "vnni": frozenset(),
    "plain": frozenset({2, 3, 4}),
}


@dataclass(frozen=True)
class Request:
    """What is to run: the model, its pipeline, the device, the precision, the CPU.

    ``kernels`` (the compiled kernels that run here, :class:`Built`) is read once, like
    ``caps``; the chosen network and the colour path use exactly those (tests inject both).
    """

    model: nn.Module
    pipeline: Pipeline = field(default_factory=Pipeline)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "auto"
    caps: CpuCaps = field(default_factory=CpuCaps.detect)
    kernels: Built = field(default_factory=Built.detect)

    @functools.cached_property
    def parsed(self) -> _Net | str:
        """The model as the fast networks read it (parsed once), or why it is not ESPCN-like."""
        try:
            return _parse(self.model)
        except ValueError as exc:
            return f"the model is not ESPCN-like ({exc})"

    @property
    def unparsed(self) -> str | None:
        """Why the model is not ESPCN-like (the fast networks' condition), or ``None``."""
        return self.parsed if isinstance(self.parsed, str) else None

    @property
    def net(self) -> _Net:
        """The parsed model (for backends that accepted it)."""
        assert not isinstance(self.parsed, str), self.parsed
        return self.parsed

    @functools.cached_property
    def chain(self) -> PhaseChain | str:
        """The model as a sub-pixel chain (:func:`~subpixel.fast._chain.phase_chain`), or why
        it is not one."""
        try:
            return phase_chain(self.model)
        except ValueError as exc:
            return f"the model is not a chain of convolutions ending in an upsampler ({exc})"

    @property
    def scale(self) -> int:
        """The model's factor (0 where it does not say)."""
        s = getattr(self.model, "scale", 0)
        return s if isinstance(s, int) else 0


class Backend(Protocol):
    """Runs a model's network. ``declines`` says why it cannot (``None``: it can)."""

    name: str
    exact: bool  # same values as the reference (float rounding aside)

    def declines(self, req: Request) -> str | None: ...

    def build(self, req: Request) -> FastESPCN | None:
        """The prepared network (``None``: the model's own layers)."""
        ...


class _Device:
    name = "device"
    exact = True

    def declines(self, req: Request) -> str | None:
        if req.device.type == "cpu":
            return "runs on CUDA or another non-CPU device; this one is the CPU"
        if req.precision in ("int8", "bf16"):
            return f"precision={req.precision!r} runs on the CPU only"
        return req.unparsed

    def build(self, req: Request) -> FastESPCN | None:
        return build_network(req.model, req.net, device=req.device)


class _CpuBf16:
    name = "cpu-bf16"
    exact = False

    def declines(self, req: Request) -> str | None:
        if req.device.type != "cpu":
            return "runs on the CPU only"
        if req.precision in ("fp32", "int8"):
            return f"precision={req.precision!r} asked (bf16 approximates)"
        if req.precision == "auto" and not req.caps.amx:
            return 'the CPU has no AMX: bf16 would be slower than fp32 (precision="bf16" forces it)'
        return req.unparsed

    def build(self, req: Request) -> FastESPCN | None:
        return _Torch(req.model, req.net, req.device, torch.bfloat16)


class _CpuInt8:
    name = "cpu-int8"
    exact = False

    def declines(self, req: Request) -> str | None:
        if req.precision != "int8":
            return f"precision={req.precision!r} asked (int8 approximates; it runs when asked)"
        if req.device.type != "cpu":
            return "runs on the CPU only"
        kind = req.caps.kind
        if req.scale in INT8_SLOWER_SCALES[kind]:
            return f"measured slower than fp32 at ×{req.scale} on this kind of CPU ({kind})"
        return req.unparsed

    def build(self, req: Request) -> FastESPCN | None:
        return build_network(req.model, req.net, precision="int8", kernels=req.kernels)


class _CpuFp32:
    name = "cpu-fp32"
    exact = True

    def declines(self, req: Request) -> str | None:
        if req.device.type != "cpu":
            return "runs on the CPU only"
        if req.precision == "bf16":
            return "precision='bf16' asked"
        return self._unfit(req)

    def _unfit(self, req: Request) -> str | None:
        """Why this backend's networks cannot express the model, or ``None``."""
        return req.unparsed

    def build(self, req: Request) -> FastESPCN | None:
        return build_network(req.model, req.net, kernels=req.kernels)


class _CpuLayers(_CpuFp32):
    name = "cpu-layers"

    def _unfit(self, req: Request) -> str | None:
        return req.chain if isinstance(req.chain, str) else None

    def build(self, req: Request) -> FastESPCN | None:
        chain = req.chain
        assert isinstance(chain, PhaseChain)
        return _CpuChain(chain)


class _Reference:
    name = "reference"
    exact = True

    def declines(self, req: Request) -> str | None:
        return None

    def build(self, req: Request) -> FastESPCN | None:
        return None


#: The backends in the order :func:`choose` asks them (fastest first).
BACKENDS: tuple[Backend, ...] = (
    _Device(),
    _CpuBf16(),
    _CpuInt8(),
    _CpuFp32(),
    _CpuLayers(),
    _Reference(),
)


@dataclass(frozen=True)
class Choice:
    """The backend :func:`choose` took, its network, and why the faster ones declined."""

    name: str
    exact: bool
    net: FastESPCN | None
    declined: tuple[tuple[str, str], ...]
    fused: str | None  # why 8-bit RGB does not take the fused uint8 kernel; None: it does
    pipeline: Pipeline
    built: Built  # the compiled kernels the network and the colour path use (Request.kernels)

    @property
    def colour_compiled(self) -> bool:
        """Whether the paper's fused colour stages run compiled (else the same in PyTorch)."""
        return self.net is not None and self.net.device.type == "cpu" and self.built.pipeline

    @property
    def kernels(self) -> str:
        """The kernels in use, e.g. ``"cpu-winograd-f4x4"`` or ``"the model's layers"``."""
        return self.net.backend if self.net is not None else "the model's own PyTorch layers"

    def describe(self) -> str:
        """Several lines for people: the backend, the colour path, the declined ones."""
        exact = "exact" if self.exact else "approximate"
        lines = [f"backend: {self.name} ({self.kernels}; {exact})"]
        p = self.pipeline
        if self.fused is None and p.opencv_exact:
            colour = f"fused uint8 kernel with OpenCV's integer steps ({p.color}, {p.chroma})"
        elif self.fused is None and self.colour_compiled:
            colour = f"fused uint8 RGB kernel ({p.color}, {p.chroma} chroma)"
        elif self.fused is None:
            on_cpu = self.net is not None and self.net.device.type == "cpu"
            why = "subpixel._pipeline was not built" if on_cpu else "its kernel runs on the CPU"
            colour = f"fused uint8 RGB steps in PyTorch ({p.color}, {p.chroma} chroma): {why}"
        elif p.opencv_exact:
            colour = f"OpenCV's uint8 steps ({p.color}, {p.chroma} chroma): {self.fused}"
        else:
            colour = f"float blocks ({p.color}, {p.chroma} chroma): {self.fused}"
        lines.append(f"colour: {colour}")
        lines += [f"declined: {name}: {why}" for name, why in self.declined]
        return "\n".join(lines)


def _fused_declines(req: Request, net: FastESPCN | None) -> str | None:
    if net is None:
        return "the fused kernel needs an ESPCN-like network"
    if req.pipeline.opencv_exact:
        if net.device.type != "cpu":
            return "OpenCV's fused steps run on the CPU"
        if not req.kernels.opencv_levels:
            return "the compiled kernel subpixel._opencv_levels was not built"
        return None
    if req.pipeline.chroma not in CHROMA_MODES:
        return f"chroma {req.pipeline.chroma!r} is not fused (fused: {', '.join(CHROMA_MODES)})"
    return None


def choose(req: Request, backends: tuple[Backend, ...] = BACKENDS) -> Choice:
    """The first of ``backends`` that accepts ``req``, its network built.

    Raises:
        ValueError: an unknown precision, or an approximate precision (``"int8"``,
            ``"bf16"``) that no backend can give (e.g. a model that is not ESPCN-like).
    """
    if req.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {req.precision!r}")
    declined: list[tuple[str, str]] = []
    for backend in backends:
        why = backend.declines(req)
        if why is not None:
            declined.append((backend.name, why))
            continue
        if req.precision in ("int8", "bf16") and backend.exact and not _slower(declined, req):
            reasons = "; ".join(f"{n}: {w}" for n, w in declined if n.endswith(req.precision))
            raise ValueError(f"precision={req.precision!r} is not available here: {reasons}")
        net = backend.build(req)
        return Choice(
            backend.name,
            backend.exact,
            net,
            tuple(declined),
            _fused_declines(req, net),
            req.pipeline,
            req.kernels,
        )
    raise ValueError("no backend can run this model")  # the reference takes any model


def _slower(declined: list[tuple[str, str]], req: Request) -> bool:
    """Whether the asked precision declined only for being slower (fp32 then runs)."""
    return any(n.endswith(req.precision) and "slower" in w for n, w in declined)


def fast_upscaler_for(
    model: nn.Module,
    pipeline: Pipeline | None = None,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
) -> FastUpscaler | None:
    """The :class:`~subpixel.fast.FastUpscaler` around the network :func:`choose` takes.

    ``None`` where that is the model's own layers (the ``reference`` backend: a model that
    is not ESPCN-like), which compute the same thing more slowly; ``"int8"`` (or
    ``"bf16"``) on a model it cannot run raises instead.

    Raises:
        ValueError: unknown precision, or an approximate one for a model or device it
            cannot run.

    Example:
        >>> from subpixel.models.espcn import ESPCN
        >>> fast_upscaler_for(ESPCN(2)).net.backend.startswith("cpu-")
        True
        >>> fast_upscaler_for(ESPCN(2, channels=3)) is None
        True
    """
    req = Request(model, device=torch.device(device), precision=precision)
    choice = choose(req)
    if choice.net is None:
        return None
    return FastUpscaler(choice.net, pipeline=pipeline, kernels=req.kernels)
