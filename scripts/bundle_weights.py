"""Copy trained runs into the package as the bundled weights, with their model cards.

Usage (from the repository root, after `subpixel train ... --out runs/espcn_x{2,3,4}`):

    .venv/bin/python scripts/bundle_weights.py runs/espcn_x2 runs/espcn_x3 runs/espcn_x4

For each run it re-evaluates the final weights with the project's protocol on Set5 and
Set14 (``$SUBPIXEL_DATA/sr``), stores that table in the weights' model card (safetensors
metadata), writes ``src/subpixel/weights/espcn_x{s}.safetensors`` and ``espcn_x{s}.md``,
and regenerates ``docs/models.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from subpixel.evaluate import evaluate_folder
from subpixel.models import get_model
from subpixel.serialization import load_weights, save_weights
from subpixel.train import card_markdown

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "subpixel" / "weights"


def bundle(run: Path, data: Path) -> str:
    tensors, meta = load_weights(run / "model.safetensors")
    card = dict(meta.card)
    scale = int(card["scale"])
    model = get_model("espcn", weights=run / "model.safetensors")
    card["metrics"] = {
        name: evaluate_folder(model, data / name, scale=scale) for name in ("Set5", "Set14")
    }
    card["evaluation_command"] = (
        f"subpixel eval --weights DEFAULT --scale {scale} "
        "--data ../shared/data/sr/Set5 ../shared/data/sr/Set14"
    )
    name = f"espcn_x{scale}"
    save_weights(
        WEIGHTS / f"{name}.safetensors", tensors, model="espcn", config=meta.config, card=card
    )
    text = card_markdown(card)
    text += f"\nReproduce the table: `{card['evaluation_command']}`\n"
    (WEIGHTS / f"{name}.md").write_text(text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    data = Path(os.environ.get("SUBPIXEL_DATA", ROOT.parent / "shared" / "data")) / "sr"
    cards = [bundle(run, data) for run in args.runs]
    header = (
        "# Bundled models\n\nThe weights in `src/subpixel/weights/` come from the project's own "
        "`subpixel train` on `../shared/data` (T91 + BSDS200), written into the package by "
        "`scripts/bundle_weights.py`. Each card below is also stored in its file's metadata "
        "(`subpixel.card`).\n\n"
    )
    (ROOT / "docs" / "models.md").write_text(
        header
        + "\n".join(c.replace("\n# ", "\n## ").replace("# espcn", "## espcn", 1) for c in cards)
    )
    print((ROOT / "docs" / "models.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
