"""Copy trained runs into the package as bundled weights, with their model cards.

Usage (from the repository root, after ``subpixel train ... --out runs/...``):

    .venv/bin/python scripts/bundle_weights.py --name fast runs/repsr_x2 runs/repsr_x3 runs/repsr_x4
    .venv/bin/python scripts/bundle_weights.py --name faces runs/faces_repsr
    .venv/bin/python scripts/bundle_weights.py --docs-only      # regenerate docs/models.md

For a general model (bicubic protocol, Y channel) each run's final weights are re-evaluated
with the project's protocol on Set5 and Set14 (``$SUBPIXEL_DATA/sr``); that table goes into
the weights' model card (safetensors metadata). A faces run keeps the held-out-people table
its trainer wrote. The script writes ``src/subpixel/weights/{name}_x{s}.safetensors`` and
``{name}_x{s}.md`` and regenerates ``docs/models.md`` from every bundled card, in the order
of :data:`subpixel.bundled.BUNDLES`. The name must be in that table (add it there first).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from subpixel.applications.faces_training import faces_card_markdown
from subpixel.bundled import BUNDLES
from subpixel.cards import card_markdown
from subpixel.evaluate import evaluate_folder
from subpixel.models import get_model
from subpixel.serialization import load_weights, save_weights

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "subpixel" / "weights"


def bundle(name: str, run: Path, data: Path) -> None:
    tensors, meta = load_weights(run / "model.safetensors")
    card = dict(meta.card)
    scale = int(card["scale"])
    if scale not in BUNDLES[name].scales:
        raise SystemExit(f"{run}: ×{scale} is not listed for {name!r} in subpixel.bundled")
    if name == "faces":
        text = faces_card_markdown(card).replace("--weights model.safetensors", "--weights faces")
    else:
        model = get_model(meta.model or "espcn", weights=run / "model.safetensors")
        card["metrics"] = {
            s: evaluate_folder(model, data / s, scale=scale) for s in ("Set5", "Set14")
        }
        card["evaluation_command"] = (
            f"subpixel eval --weights {name} --scale {scale} "
            "--data ../shared/data/sr/Set5 ../shared/data/sr/Set14"
        )
        text = card_markdown(card)
        text += f"\nReproduce the table: `{card['evaluation_command']}`\n"
    stem = f"{name}_x{scale}"
    save_weights(
        WEIGHTS / f"{stem}.safetensors", tensors, model=meta.model, config=meta.config, card=card
    )
    (WEIGHTS / f"{stem}.md").write_text(text)
    print(f"wrote {WEIGHTS / stem}.safetensors and .md")


def write_docs() -> None:
    parts = [
        "# Bundled models\n\nThe weights in `src/subpixel/weights/` come from the project's own "
        "`subpixel train` on `../shared/data` (the commands below; `/work/shared/data` is the "
        "same folder), written into the package by `scripts/bundle_weights.py`. Each card is "
        "also stored in its file's metadata (`subpixel.card`). Which to use: "
        "[results.md](results.md) and `subpixel upscale --help`.\n"
    ]
    for b in BUNDLES.values():
        parts.append(f"\n# `{b.name}`: {b.summary}\n")
        for s in b.scales:
            card = (WEIGHTS / f"{b.name}_x{s}.md").read_text()
            parts.append("\n" + card.replace("\n#", "\n##").replace("# ", "## ", 1))
    (ROOT / "docs" / "models.md").write_text("".join(parts))
    print(f"wrote {ROOT / 'docs' / 'models.md'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("--name", choices=sorted(BUNDLES), help="the bundle the runs become")
    parser.add_argument("--docs-only", action="store_true", help="only regenerate the docs")
    args = parser.parse_args()
    if not args.docs_only:
        if not args.name or not args.runs:
            parser.error("give --name and the run folders (or --docs-only)")
        data = Path(os.environ.get("SUBPIXEL_DATA", ROOT.parent / "shared" / "data")) / "sr"
        for run in args.runs:
            bundle(args.name, run, data)
    write_docs()
    return 0


if __name__ == "__main__":
    sys.exit(main())
