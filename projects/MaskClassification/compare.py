#!/usr/bin/env python
"""One table from several ``--eval-only`` runs: mIoU per dataset (rows) and run (columns).

    python projects/MaskClassification/compare.py CLIP=output/mc/clip PixelCLIP=output/mc/pixelclip \\
        [--metric mIoU] [--output table.md]

Each run folder holds the ``summary.json`` that ``Trainer.test`` writes.
"""
import argparse
import json
import os
import sys
from typing import Dict, List, Tuple

from pixelclip.utils.io import atomic_write


def read_runs(specs: List[str]) -> List[Tuple[str, Dict[str, Dict[str, float]]]]:
    """``label=folder`` (or ``folder``, labelled by its name) -> (label, summary)."""
    runs = []
    for spec in specs:
        label, _, folder = spec.rpartition("=")
        label = label or os.path.basename(os.path.normpath(folder))
        path = os.path.join(folder, "summary.json")
        if not os.path.isfile(path):
            sys.exit(f"[compare] {path} not found: run projects/MaskClassification/train_net.py --eval-only "
                     f"with OUTPUT_DIR {folder} first")
        with open(path, encoding="utf-8") as f:
            runs.append((label, json.load(f)))
    return runs


def table(runs: List[Tuple[str, Dict[str, Dict[str, float]]]], metric: str = "mIoU") -> str:
    """Markdown: one row per dataset, one column per run (``-`` where a run lacks the dataset)."""
    datasets: List[str] = []
    for _, summary in runs:
        datasets.extend(d for d in summary if d not in datasets)
    lines = [f"| dataset ({metric}) | " + " | ".join(label for label, _ in runs) + " |",
             "|---|" + "---:|" * len(runs)]
    for d in datasets:
        cells = []
        for _, summary in runs:
            value = summary.get(d, {}).get(metric)
            cells.append("-" if value is None else f"{value:.2f}")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="label=output_dir of an --eval-only run")
    parser.add_argument("--metric", default="mIoU", choices=("mIoU", "fwIoU", "mACC", "pACC"))
    parser.add_argument("--output", default="", help="also write the table to this file")
    args = parser.parse_args(argv)
    text = table(read_runs(args.runs), args.metric)
    if args.output:
        atomic_write(args.output, text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
