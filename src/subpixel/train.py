"""Training: a frozen :class:`TrainConfig` and :func:`train`, resumable and DDP-capable.

A run directory holds everything: ``checkpoints/step-NNNNNNN.safetensors`` (model,
optimizer and sampler RNG state, written atomically; the last few are kept), ``log.csv``,
``curves.png``, and at the end ``model.safetensors`` with its model card in the metadata and
as ``model.md``. A model with a ``collapse()`` method (:class:`~subpixel.models.reparam.RepSR`)
is saved there in its collapsed inference form (an ``espcn``), while the checkpoints keep the
training form. With ``ema`` an exponential moving average of the weights is kept (in the
checkpoints too) and is what is validated and saved. ``resume=True`` continues from the newest
readable checkpoint with the same steps, learning rates and batches as an uninterrupted run
(bit-identical on CPU).

Under ``torchrun --nproc_per_node=N`` each process trains on its own share of the batch
with DistributedDataParallel (gloo on CPU, nccl on CUDA); rank 0 validates and writes.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import math
import os
import platform
import re
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from subpixel import __version__
from subpixel._files import atomic_path, atomic_write_bytes, output_of, remove_stale_temps
from subpixel._progress import progress_bar
from subpixel.cards import Stage, card_markdown, lineage_of
from subpixel.data import PatchSampler, find_images, load_image
from subpixel.degrade import CLEAN, configure
from subpixel.evaluate import evaluate_images
from subpixel.models import get_model
from subpixel.serialization import WeightsError, load_weights, save_weights

__all__ = ["TrainConfig", "TrainResult", "train"]

_CKPT = re.compile(r"step-(\d+)\.safetensors$")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint and model card)."""

    data: tuple[str, ...]
    scale: int
    out: str
    model: str = "espcn"
    model_options: dict[str, Any] = field(default_factory=dict)
    val: tuple[str, ...] = ()
    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 64
    patch: int = 17
    lr: float = 1e-3
    min_lr_ratio: float = 0.01
    warmup_steps: int = 100
    loss: str = "mse"
    seed: int = 0
    device: str = "cpu"
    val_every: int = 1000
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    augment_scales: tuple[float, ...] = (0.9, 0.8, 0.7, 0.6)
    init_from: str | None = None
    ema: float = 0.0
    finetune_mse_fraction: float = 0.0
    degradation: str = "clean"
    degradation_options: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    progress: bool = True
    command: str = ""

    def __post_init__(self) -> None:
        if self.steps is not None and self.minutes is not None:
            raise ValueError("give steps or minutes, not both")
        if self.steps is None and self.minutes is None and not self.resume:
            raise ValueError("give steps or minutes (only a resumed run may omit both)")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes}")
        if self.scale < 1 or self.batch_size < 1 or self.patch < 1:
            raise ValueError("scale, batch_size and patch must be >= 1")
        if self.loss not in _LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose from {sorted(_LOSSES)}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must be in [0, 1) (0: off), got {self.ema}")
        configure(self.degradation, self.degradation_options)  # raises for unknown/bad
        if not 0.0 <= self.finetune_mse_fraction < 1.0:
            raise ValueError(
                f"finetune_mse_fraction must be in [0, 1), got {self.finetune_mse_fraction}"
            )

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the original one."""
        keep = (
            "data",
            "scale",
            "model",
            "model_options",
            "batch_size",
            "patch",
            "lr",
            "min_lr_ratio",
            "warmup_steps",
            "loss",
            "seed",
            "augment_scales",
            "init_from",
        )
        d = dataclasses.asdict(self)
        out = {k: d[k] for k in keep}
        # later options: recorded only when used, so older checkpoints still resume
        out.update({k: d[k] for k in _LATER_OPTIONS if d[k] != _LATER_OPTIONS[k]})
        return json.loads(json.dumps(out))


@dataclass
class TrainResult:
    """What :func:`train` returns: the final weights path and the metrics."""

    model_path: Path
    steps: int
    seconds: float
    metrics: dict[str, dict[str, Any]]
    #: False in the other processes of a torchrun group: rank 0 alone validates and writes.
    main_process: bool = True


#: Options added after checkpoints were first written, with their defaults (off).
_LATER_OPTIONS: dict[str, Any] = {
    "ema": 0.0,
    "finetune_mse_fraction": 0.0,
    "degradation": "clean",
    "degradation_options": {},
}

_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": nn.functional.mse_loss,
    "l1": nn.functional.l1_loss,
}


def loss_name(cfg: TrainConfig, step: int, total: int) -> str:
    """The loss at ``step`` of ``total``: ``cfg.loss``, then MSE for the last fraction.

    Example:
        >>> cfg = TrainConfig(data=("d",), scale=3, out="o", steps=10, loss="l1",
        ...                   finetune_mse_fraction=0.2)
        >>> [loss_name(cfg, s, 10) for s in (0, 7, 8, 9)]
        ['l1', 'l1', 'mse', 'mse']
    """
    if cfg.finetune_mse_fraction and total and step >= total * (1 - cfg.finetune_mse_fraction):
        return "mse"
    return cfg.loss


def ema_decay(cfg: TrainConfig, step: int) -> float:
    """The EMA decay after ``step`` updates: ``min(ema, (1 + step) / (10 + step))``.

    The warm-up keeps the average from remembering the random initial weights.

    Example:
        >>> cfg = TrainConfig(data=("d",), scale=3, out="o", steps=10, ema=0.999)
        >>> ema_decay(cfg, 0), ema_decay(cfg, 10**6)
        (0.1, 0.999)
    """
    return min(cfg.ema, (1 + step) / (10 + step))


@torch.no_grad()
def update_ema(average: nn.Module, model: nn.Module, decay: float) -> None:
    """``average ← decay·average + (1 − decay)·model`` for parameters; buffers are copied."""
    for pa, pm in zip(average.parameters(), model.parameters(), strict=True):
        pa.lerp_(pm.detach(), 1.0 - decay)
    for ba, bm in zip(average.buffers(), model.buffers(), strict=True):
        ba.copy_(bm)


def inference_form(cfg: TrainConfig, model: nn.Module) -> tuple[nn.Module, str, dict[str, Any]]:
    """What ``model.safetensors`` holds: the model, its registry name and its config.

    A model with ``collapse()`` (re-parameterised training form) gives its collapsed model
    and that model's ``espcn_config()``; others are saved as they are.
    """
    collapse = getattr(model, "collapse", None)
    if callable(collapse):
        plain: nn.Module = collapse()
        return plain, "espcn", dict(model.espcn_config())  # type: ignore[operator]
    return model, cfg.model, {"scale": cfg.scale, **cfg.model_options}


def _init_tensors(path: str) -> dict[str, torch.Tensor]:
    """The model tensors of a weights file or a checkpoint (its EMA weights when it has)."""
    tensors, _ = load_weights(path)
    for prefix in ("ema.", "model."):
        found = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        if found:
            return found
    return tensors


def learning_rate(cfg: TrainConfig, step: int, total: int) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``lr·min_lr_ratio`` at ``total``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(total - cfg.warmup_steps, 1)
    t = min((step - cfg.warmup_steps) / span, 1.0)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


# ----------------------------------------------------------------------------- checkpoints


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], str]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, json.dumps({"param_groups": sd["param_groups"], "scalars": scalars})


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: str) -> dict[str, Any]:
    info = json.loads(meta)
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, values in info["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    return {"state": state, "param_groups": info["param_groups"]}


def _checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CKPT.search(p.name))]
    return sorted(found)


def _save_checkpoint(
    run_dir: Path,
    cfg: TrainConfig,
    step: int,
    total: int,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    gen_states: list[torch.Tensor],
    elapsed: float,
    commands: list[str],
    lineage: list[Stage],
    ema: nn.Module | None = None,
) -> Path:
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    opt_tensors, opt_meta = _flatten_optimizer(opt)
    tensors.update(opt_tensors)
    for rank, state in enumerate(gen_states):
        tensors[f"rng.{rank}"] = state
    path = folder / f"step-{step:07d}.safetensors"
    save_weights(
        path,
        tensors,
        extra={
            "train.step": str(step),
            "train.total": str(total),
            "train.elapsed": repr(elapsed),
            "train.optimizer": opt_meta,
            "train.identity": json.dumps(cfg.identity(), sort_keys=True),
            "train.commands": json.dumps(commands),
            "train.lineage": json.dumps(lineage),
        },
    )
    for _, old in _checkpoints(run_dir)[: -cfg.keep_checkpoints]:
        old.unlink(missing_ok=True)
    return path


@dataclass
class _Restored:
    step: int
    total: int
    elapsed: float
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    gen_states: list[torch.Tensor]
    identity: dict[str, Any]
    path: Path
    commands: list[str]
    lineage: list[Stage] | None  # None: a checkpoint from before lineages were recorded


#: Files a run writes into its folder (atomically, through temporary files).
_RUN_FILES = ("log.csv", "model.md", "model.safetensors", "curves.png")


def _load_latest_checkpoint(run_dir: Path) -> _Restored | None:
    """The newest checkpoint that reads back; corrupt ones are skipped with a warning.

    Temporary files left by a run killed while writing are removed first.
    """
    checkpoints = (run_dir / "checkpoints").glob(".step-*.part.safetensors")
    remove_stale_temps([*(run_dir / f for f in _RUN_FILES), *map(output_of, checkpoints)])
    for _, path in reversed(_checkpoints(run_dir)):
        try:
            tensors, meta = load_weights(path)
            extra = meta.extra
            gens = sorted(
                ((int(k.split(".")[1]), v) for k, v in tensors.items() if k.startswith("rng.")),
            )
            return _Restored(
                step=int(extra["train.step"]),
                total=int(extra["train.total"]),
                elapsed=float(extra["train.elapsed"]),
                model={k[6:]: v for k, v in tensors.items() if k.startswith("model.")},
                ema={k[4:]: v for k, v in tensors.items() if k.startswith("ema.")},
                optimizer=_unflatten_optimizer(tensors, extra["train.optimizer"]),
                gen_states=[g for _, g in gens],
                identity=json.loads(extra["train.identity"]),
                path=path,
                commands=json.loads(extra.get("train.commands", '["(not recorded)"]')),
                lineage=json.loads(extra["train.lineage"]) if "train.lineage" in extra else None,
            )
        except (WeightsError, KeyError, ValueError) as exc:
            warnings.warn(
                f"{path}: unreadable checkpoint ({exc}); trying the previous one",
                stacklevel=2,
            )
    return None


# ----------------------------------------------------------------------------- the loop


def _distributed() -> tuple[int, int, bool]:
    """This process's rank, the world size, and whether the group was started here.

    Under torchrun (``WORLD_SIZE`` > 1) the default group is started unless the caller
    already did; a group the caller started is theirs to end.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    started = world > 1 and not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), started
    return 0, 1, False


def _gather_gen_states(gen: torch.Generator, world: int) -> list[torch.Tensor]:
    state = gen.get_state()
    if world == 1:
        return [state]
    states: list[Any] = [None] * world
    dist.all_gather_object(states, state)
    return [torch.as_tensor(s) for s in states]


def _load_val(folders: Sequence[str]) -> dict[str, list[torch.Tensor]]:
    return {Path(f).name: [load_image(p) for p in find_images([f])] for f in folders}


def _prepare_run_dir(cfg: TrainConfig) -> Path:
    run_dir = Path(cfg.out)
    if run_dir.exists() and not cfg.resume:
        existing = [p for p in run_dir.iterdir() if p.name in ("checkpoints", "model.safetensors")]
        if existing:
            raise FileExistsError(
                f"{run_dir}: already holds a training run; use --resume to continue it or "
                "choose another --out (nothing was overwritten)"
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=names)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())


def _read_log(path: Path, upto: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return [
            {k: v for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(fh)
            if int(row["step"]) <= upto
        ]


def _plot(path: Path, rows: list[dict[str, Any]]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = [int(r["step"]) for r in rows if "loss" in r]
    ax[0].semilogy(steps, [float(r["loss"]) for r in rows if "loss" in r])
    ax[0].set(xlabel="step", ylabel="training loss", title="loss")
    for key in sorted({k for r in rows for k in r if k.startswith("val_psnr_")}):
        pts = [(int(r["step"]), float(r[key])) for r in rows if key in r]
        ax[1].plot(*zip(*pts, strict=True), marker="o", label=key[len("val_psnr_") :])
    ax[1].set(xlabel="step", ylabel="PSNR (dB, Y)", title="validation")
    if ax[1].lines:
        ax[1].legend()
    fig.tight_layout()
    with atomic_path(path, parents=False, what="the plot") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def _model_card(
    cfg: TrainConfig,
    model: nn.Module,
    steps: int,
    seconds: float,
    metrics: dict[str, Any],
    commands: list[str],
    lineage: list[Stage],
) -> dict[str, Any]:
    params = sum(p.numel() for p in model.parameters())
    return {
        "architecture": cfg.model,
        "config": {"scale": cfg.scale, **cfg.model_options},
        "scale": cfg.scale,
        "parameters": params,
        "data": list(cfg.data),
        "degradation": cfg.degradation,
        "degradation_options": cfg.degradation_options,
        "validation": list(cfg.val),
        "command": commands[0] if commands else cfg.command,
        "commands": commands,
        "lineage": lineage,
        "steps": steps,
        "batch_size": cfg.batch_size,
        "patch": cfg.patch,
        "seconds": round(seconds, 1),
        "metrics": metrics,
        "device": cfg.device,
        "torch": torch.__version__,
        "subpixel": __version__,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
    }


def train(cfg: TrainConfig) -> TrainResult:
    """Train ``cfg.model`` on patches of ``cfg.data``; see the module docstring."""
    rank, world, started_group = _distributed()
    device = torch.device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    run_dir = _prepare_run_dir(cfg) if rank == 0 else Path(cfg.out)
    if world > 1:
        dist.barrier()

    torch.manual_seed(cfg.seed)
    model = get_model(cfg.model, scale=cfg.scale, **cfg.model_options)
    lineage: list[Stage] = []  # the runs that made the weights this run starts from
    if cfg.init_from:
        tensors = _init_tensors(cfg.init_from)
        lineage = lineage_of(cfg.init_from)
        own = model.state_dict()
        fitting = {k: v for k, v in tensors.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(fitting, strict=False)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    ema = copy.deepcopy(model) if cfg.ema else None
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + rank)

    step, total, elapsed_before = 0, cfg.steps or 0, 0.0
    commands = [cfg.command]
    restored = _load_latest_checkpoint(run_dir) if cfg.resume else None
    if restored is not None:
        if restored.identity != cfg.identity():
            now, then = cfg.identity(), restored.identity
            diff = sorted(k for k in {*now, *then} if now.get(k) != then.get(k))
            raise ValueError(
                f"{restored.path}: the run was started with different settings "
                f"({', '.join(diff)}); resume with the original command"
            )
        model.load_state_dict(restored.model)
        if ema is not None:
            ema.load_state_dict(restored.ema or restored.model)
        opt.load_state_dict(restored.optimizer)
        if len(restored.gen_states) != world:
            raise ValueError(
                f"{restored.path}: saved by {len(restored.gen_states)} process(es), "
                f"resumed with {world}"
            )
        gen.set_state(restored.gen_states[rank])
        step, total, elapsed_before = restored.step, restored.total, restored.elapsed
        commands = [*restored.commands, cfg.command]
        if restored.lineage is not None:  # as recorded when the run started
            lineage = restored.lineage
        if cfg.steps is not None and cfg.steps != total:
            print(
                f"changing the schedule's length from {total} to {cfg.steps} steps",
                file=sys.stderr,
            )
            total = cfg.steps
        if rank == 0:
            print(f"resuming {run_dir} at step {step}/{total}", file=sys.stderr)
    elif cfg.steps is None and cfg.minutes is None:
        raise FileNotFoundError(
            f"{run_dir}: no checkpoint to resume; give --steps or --minutes to start a run"
        )

    ddp_model: nn.Module = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(model)

    images = [load_image(p) for p in find_images(cfg.data)]
    y_only = getattr(model, "channels", 1) == 1
    degradation = configure(cfg.degradation, cfg.degradation_options)
    sampler = PatchSampler(
        images,
        scale=cfg.scale,
        patch=cfg.patch,
        augment_scales=cfg.augment_scales,
        y_only=y_only,
        degradation=None if degradation == CLEAN else degradation,  # CLEAN: the cached LR
    )
    del images
    val_sets = _load_val(cfg.val) if rank == 0 and cfg.val else {}
    per_rank = max(cfg.batch_size // world, 1)
    # what is validated and saved: the weights' average when there is one
    scored: nn.Module = ema if ema is not None else model

    log_path = run_dir / "log.csv"
    rows = _read_log(log_path, step) if rank == 0 else []
    start = time.perf_counter()
    calibrate = 110 if cfg.minutes is not None and total == 0 else 0
    calib_start = start
    bar = progress_bar(total or 0, desc="train", initial=step, enabled=cfg.progress and rank == 0)
    last_loss = float("nan")
    model.train()

    def save() -> None:
        states = _gather_gen_states(gen, world)
        if rank == 0:
            _save_checkpoint(
                run_dir,
                cfg,
                step,
                total,
                model,
                opt,
                states,
                elapsed_before + time.perf_counter() - start,
                commands,
                lineage,
                ema,
            )
            _write_log(log_path, rows)
        if world > 1:
            dist.barrier()

    while total == 0 or step < total:
        lr = learning_rate(cfg, step, total or 10**9)
        for group in opt.param_groups:
            group["lr"] = lr
        lr_batch, hr_batch = sampler.batch(per_rank, gen)
        pred = ddp_model(lr_batch.to(device, non_blocking=True))
        loss_fn = _LOSSES[loss_name(cfg, step, total)]
        loss = loss_fn(pred, hr_batch.to(device, non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            update_ema(ema, model, ema_decay(cfg, step))
        step += 1
        if step % 10 == 0 or step == total:
            last_loss = float(loss.detach())
            if rank == 0:
                rows.append({"step": step, "loss": f"{last_loss:.6g}", "lr": f"{lr:.4g}"})
        if calibrate and step == 10:
            calib_start = time.perf_counter()
        if calibrate and step == calibrate:
            per_step = (time.perf_counter() - calib_start) / (calibrate - 10)
            budget = [max(int(cfg.minutes * 60 / per_step), calibrate + 1)]  # type: ignore[operator]
            if world > 1:
                dist.broadcast_object_list(budget, src=0)
            total = budget[0]
            if bar is not None:
                bar.total = total
                bar.refresh()
        if bar is not None:
            bar.update(1)
        if rank == 0 and val_sets and (step % cfg.val_every == 0 or step == total):
            row: dict[str, Any] = {"step": step}
            for name, imgs in val_sets.items():
                scores = evaluate_images(scored, imgs, scale=cfg.scale, with_ssim=False)
                row[f"val_psnr_{name}"] = f"{scores['psnr']:.4f}"
            row["elapsed_s"] = f"{elapsed_before + time.perf_counter() - start:.1f}"
            rows.append(row)
            if bar is not None:
                bar.set_postfix(
                    loss=f"{last_loss:.2e}",
                    **{k[9:]: v for k, v in row.items() if k.startswith("val_psnr_")},
                )
            _plot(run_dir / "curves.png", rows)
        elif bar is not None and step % 10 == 0:
            bar.set_postfix(loss=f"{last_loss:.2e}")
        if step % cfg.checkpoint_every == 0 and step != total:
            save()
    if bar is not None:
        bar.close()
    del ddp_model  # its gradient hooks hold the group: release them before the group ends
    save()
    seconds = elapsed_before + time.perf_counter() - start

    metrics: dict[str, dict[str, Any]] = {}
    model_path = run_dir / "model.safetensors"
    if rank == 0:
        final, name_saved, config_saved = inference_form(cfg, scored)
        for name, imgs in val_sets.items():
            metrics[name] = evaluate_images(final, imgs, scale=cfg.scale)
        card = _model_card(cfg, final, step, seconds, metrics, commands, lineage)
        if name_saved != cfg.model:
            card.update(
                architecture=name_saved,
                config=config_saved,
                trained_as={
                    "model": cfg.model,
                    "config": {"scale": cfg.scale, **cfg.model_options},
                },
            )
        save_weights(
            model_path,
            final.state_dict(),
            model=name_saved,
            config=card["config"],
            card=card,
        )
        atomic_write_bytes(run_dir / "model.md", card_markdown(card).encode())
        _write_log(log_path, rows)
        _plot(run_dir / "curves.png", rows)
    if world > 1:
        dist.barrier()
    if started_group:
        dist.destroy_process_group()
    return TrainResult(model_path, step, seconds, metrics, main_process=rank == 0)
