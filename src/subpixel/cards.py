"""Model cards: how a trained weights file was made, and its history of earlier runs.

A card is a JSON dictionary stored in the weights file's header (``subpixel.card``) and
rendered as Markdown beside it (``model.md``). Its ``commands`` are every command of the run
that wrote the file (more than one when it was resumed); its ``lineage`` is the runs before
that, oldest first, when the run started from other weights (``--init-from``): each a
``{"weights": path, "commands": [...], "step": N}`` record (``step`` when the weights were a
checkpoint). :func:`lineage_of` reads that history from a weights file's header, so the card of
a model fine-tuned from a fine-tuned model still names every command back to the first.

Example:
    >>> card = {"commands": ["subpixel train --out b --init-from a/model.safetensors"],
    ...         "lineage": [{"weights": "a/model.safetensors",
    ...                      "commands": ["subpixel train --out a"]}]}
    >>> print("\\n".join(command_lines(card)))
    ## Command
    <BLANKLINE>
    Started from `a/model.safetensors` (`--init-from`). The runs that made it, oldest first:
    <BLANKLINE>
    1. `a/model.safetensors`:
    <BLANKLINE>
    ```
    subpixel train --out a
    ```
    <BLANKLINE>
    Then this run:
    <BLANKLINE>
    ```
    subpixel train --out b --init-from a/model.safetensors
    ```
    <BLANKLINE>
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from subpixel.degrade import configure
from subpixel.serialization import WeightsError, read_weights_meta

__all__ = ["card_markdown", "command_lines", "lineage_of", "trained_as_lines"]

#: How far :func:`lineage_of` follows ``--init-from`` paths of files that predate lineages.
_MAX_DEPTH = 32

Stage = dict[str, Any]


def lineage_of(path: str | Path) -> list[Stage]:
    """The training runs that produced the weights at ``path``, oldest first.

    Read from the file's header: a final ``model.safetensors`` has them in its card, a
    checkpoint in its ``train.*`` metadata. For files written before lineages were recorded,
    the ``--init-from`` path kept in a checkpoint's identity is followed while it exists.
    Weights without a training record (imported, hand-made) give ``[]``.

    Raises:
        WeightsError: If ``path`` is not a readable safetensors file.
    """
    return _lineage(str(path), _MAX_DEPTH)


def _lineage(path: str, depth: int) -> list[Stage]:
    meta = read_weights_meta(path)
    if meta.card.get("commands"):
        return [*meta.card.get("lineage", []), {"weights": path, "commands": meta.card["commands"]}]
    extra = meta.extra
    if "train.commands" not in extra:
        return []
    stage: Stage = {"weights": path, "commands": json.loads(extra["train.commands"])}
    if "train.step" in extra:
        stage["step"] = int(extra["train.step"])
    if "train.lineage" in extra:
        return [*json.loads(extra["train.lineage"]), stage]
    earlier = json.loads(extra.get("train.identity", "{}")).get("init_from")
    if earlier and depth > 0 and Path(earlier).is_file():
        try:
            return [*_lineage(earlier, depth - 1), stage]
        except WeightsError:
            pass
    return [stage]


def trained_as_lines(card: dict[str, Any]) -> list[str]:
    """The card's "trained as" fact: the training form of a model saved collapsed, if any."""
    trained = card.get("trained_as")
    if not trained:
        return []
    form = json.dumps(trained["config"], sort_keys=True)
    return [f"- trained as `{trained['model']}` `{form}`, saved collapsed"]


def command_lines(card: dict[str, Any]) -> list[str]:
    """The card's "Command" section: earlier runs (its lineage), then this run's commands."""
    lines = ["## Command", ""]
    lineage: list[Stage] = card.get("lineage") or []
    if lineage:
        lines += [
            f"Started from `{lineage[-1]['weights']}` (`--init-from`). "
            "The runs that made it, oldest first:",
            "",
        ]
        for i, stage in enumerate(lineage, 1):
            at = f" (its step {stage['step']})" if "step" in stage else ""
            lines += [f"{i}. `{stage['weights']}`{at}:", "", "```", *stage["commands"], "```", ""]
        lines += ["Then this run:", ""]
    commands = card.get("commands") or [card.get("command") or "(called from Python)"]
    if len(commands) > 1:
        lines += ["The run was interrupted and resumed; every command, in order:", ""]
    return [*lines, "```", *commands, "```", ""]


_DEGRADATION_WORDS = {
    "clean": "MATLAB bicubic downscaling (the SR protocol)",
    "photo": "random photo degradation (`subpixel.degrade.PHOTO`: {clean} % clean bicubic, the "
    "rest blur, bicubic/bilinear/area downscaling, noise, JPEG 30-95)",
    "jpeg": "random web-JPEG degradation (`subpixel.degrade.JPEG`: {clean} % clean bicubic, the "
    "rest mostly bicubic downscaling, light noise, JPEG 30-95)",
}


def degradation_words(card: dict[str, Any]) -> str:
    """How the card's LR training inputs were made, in words (preset, clean share, changes)."""
    name = card.get("degradation", "clean")
    options = card.get("degradation_options") or {}
    clean = round(100 * configure(name, options).clean_prob) if name in _DEGRADATION_WORDS else 0
    words = _DEGRADATION_WORDS.get(name, "?").format(clean=clean)
    if options:
        words += f"; the preset changed by `{json.dumps(options, sort_keys=True)}`"
    return words


def card_markdown(card: dict[str, Any]) -> str:
    """The model card of a ``subpixel train`` run as Markdown (what ``model.md`` holds)."""
    lines = [
        f"# {card['architecture']} ×{card['scale']}",
        "",
        f"- parameters: {card['parameters']:,}",
        f"- config: `{json.dumps(card['config'], sort_keys=True)}`",
        f"- training data: {', '.join(card['data'])}",
        f"- LR inputs: {degradation_words(card)}",
        f"- steps: {card['steps']} (batch {card['batch_size']}, LR patch {card['patch']}), "
        f"{card['seconds'] / 60:.1f} min on {card['device']}",
        f"- torch {card['torch']}, subpixel {card['subpixel']}",
    ]
    lines += [*trained_as_lines(card), "", *command_lines(card)]
    if card.get("metrics"):
        lines += [
            "## Evaluation (Y channel, shave = scale, MATLAB bicubic degradation)",
            "",
            "| data | images | PSNR | SSIM | bicubic PSNR | bicubic SSIM |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in card["metrics"].items():
            lines.append(
                f"| {name} | {m['images']} | {m['psnr']:.2f} | {m['ssim']:.4f} | "
                f"{m['bicubic_psnr']:.2f} | {m['bicubic_ssim']:.4f} |"
            )
        lines.append("")
    return "\n".join(lines)
