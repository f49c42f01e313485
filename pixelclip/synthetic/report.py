"""The synthetic demo's report: results.json -> results.md, training diagnostics, training curves.

``tools/run_synthetic_demo.py`` collects the numbers (headroom of the pre-trained CLIP, mIoU of
every run, the per-step logs of :mod:`pixelclip.modeling.cluster_stats` in each run's D2
``metrics.json``) into ``results.json``; :func:`format_results_md` turns that file, and nothing
else, into the table the README quotes.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..utils.io import atomic_write

__all__ = ["build_results", "draw_curves", "format_results_md", "read_metrics", "training_summary"]

CURVE_KEYS = (
    ("loss_masks", "training loss (BCE); dotted: image-blind loss"),
    ("loss_minus_blind", "training loss − image-blind loss (< 0: the decoder reads the image)"),
    ("pixelclip/clusters_used", "clusters used per batch"),
    ("pixelclip/largest_cluster_share", "largest cluster's share of the masks"),
    ("pixelclip/prompt_cosine", "mean prompt-to-prompt cosine"),
    ("pixelclip/text_alignment", "mean max-cosine of prompts to class names"),
    ("pixelclip/classes_nearest", "class names nearest to some prompt"),
)


def read_metrics(run_dir: str) -> Dict[str, List[Tuple[int, float]]]:
    """Scalars of a run's D2 ``metrics.json``: name -> [(iteration + 1, value), ...] (missing file: {}).
    The training loss is under ``loss_masks`` (D2 logs a model's single loss only as ``total_loss``)."""
    out: Dict[str, List[Tuple[int, float]]] = {}
    try:
        with open(os.path.join(run_dir, "metrics.json")) as f:
            lines = f.readlines()
    except OSError:
        return out
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "iteration" not in rec:
            continue
        for k, v in rec.items():
            if k != "iteration" and isinstance(v, (int, float)):
                out.setdefault(k, []).append((int(rec["iteration"]) + 1, float(v)))
    if "loss_masks" not in out and "total_loss" in out:
        out["loss_masks"] = out["total_loss"]
    return out


def training_summary(run_dir: str, tail_fraction: float = 0.25) -> Dict[str, float]:
    """What a run's log says about the method engaging: the training loss and the image-blind loss
    (means over the last ``tail_fraction`` of the logged points, and at the first point), and the
    last values of the cluster statistics."""
    metrics = read_metrics(run_dir)
    out: Dict[str, float] = {}

    def tail_mean(key):
        pts = metrics.get(key, [])
        if not pts:
            return None
        n = max(1, int(round(len(pts) * tail_fraction)))
        return sum(v for _, v in pts[-n:]) / n

    for key, name in (("loss_masks", "loss"), ("pixelclip/blind_loss", "blind_loss")):
        pts = metrics.get(key, [])
        if pts:
            out[f"{name}_first"] = round(pts[0][1], 4)
            out[f"{name}_final"] = round(tail_mean(key), 4)
    if "loss_final" in out and "blind_loss_final" in out:
        out["loss_below_blind"] = round(out["blind_loss_final"] - out["loss_final"], 4)
    for key in ("clusters_used", "largest_cluster_share", "prompt_cosine", "text_alignment", "classes_nearest"):
        pts = metrics.get(f"pixelclip/{key}", [])
        if pts:
            out[f"{key}_first"] = round(pts[0][1], 4)
            out[f"{key}_final"] = round(pts[-1][1], 4)
    if metrics.get("loss_masks"):
        out["iterations"] = metrics["loss_masks"][-1][0]
    return out


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return mean, std


def build_results(headroom: Optional[Mapping[str, float]], clip_miou: float, runs: Mapping[str, Mapping[int, float]],
                  labels: Mapping[str, str], training: Mapping[str, Mapping[int, Mapping[str, float]]],
                  eval_only: Mapping[str, float], meta: Mapping[str, object]) -> dict:
    """Everything the report shows, as one JSON-able dict.

    Arguments:
        headroom: :func:`pixelclip.synthetic.headroom.measure_world_headroom` of the pre-trained CLIP.
        clip_miou: the pre-trained CLIP's mIoU (the evaluator's).
        runs: method -> seed -> mIoU of the fine-tuned runs.
        labels: method -> row label.
        training: method -> seed -> :func:`training_summary`.
        eval_only: method -> mIoU of rows evaluated without fine-tuning (no seeds).
    """
    results: dict = {}
    if headroom:
        results["headroom"] = dict(headroom)
    results["clip"] = {"label": labels.get("clip", "clip"), "mean": round(clip_miou, 2)}
    for method, miou in eval_only.items():
        results[method] = {"label": labels.get(method, method), "mean": round(miou, 2),
                           "gain_over_clip": round(miou - clip_miou, 2), "eval_only": True}
    for method, per_seed in runs.items():
        values = [per_seed[s] for s in sorted(per_seed)]
        mean, std = _mean_std(values)
        results[method] = {
            "label": labels.get(method, method),
            "mIoU": {f"seed{s}": round(per_seed[s], 2) for s in sorted(per_seed)},
            "mean": round(mean, 2), "std": round(std, 2), "gain_over_clip": round(mean - clip_miou, 2),
            "training": {f"seed{s}": dict(training.get(method, {}).get(s, {})) for s in sorted(per_seed)},
        }
    checks: dict = {}
    if headroom and "region_pooled_gain" in headroom:
        checks["headroom_region_pooled_gain"] = headroom["region_pooled_gain"]
        checks["headroom_at_least_5"] = headroom["region_pooled_gain"] >= 5.0
    if "pixelclip" in runs:
        gain = results["pixelclip"]["gain_over_clip"]
        checks["pixelclip_gain"] = gain
        checks["pixelclip_beats_clip_by_5"] = gain >= 5.0
        if "random_masks" in runs:
            rgain = results["random_masks"]["gain_over_clip"]
            checks["random_masks_gain"] = rgain
            # only meaningful when PixelCLIP gains: with both below CLIP, "less than half" would hold trivially
            checks["random_masks_gain_below_half"] = gain > 0 and rgain < 0.5 * gain
            paired = [runs["pixelclip"][s] - runs["random_masks"][s] for s in sorted(runs["pixelclip"])
                      if s in runs["random_masks"]]
            if paired:
                mean, std = _mean_std(paired)
                results["headline"] = {"pixelclip_minus_random_masks": round(mean, 2), "std": round(std, 2),
                                       "per_seed": {f"seed{s}": round(runs['pixelclip'][s] - runs['random_masks'][s], 2)
                                                    for s in sorted(runs["pixelclip"]) if s in runs["random_masks"]}}
    engaged = {}
    for method, per_seed in training.items():
        for s, summ in per_seed.items():
            if "loss_below_blind" in summ:
                engaged[f"{method}_seed{s}"] = summ["loss_below_blind"]
    if engaged:
        checks["loss_below_blind_by_run"] = engaged
    results["checks"] = checks
    results["meta"] = dict(meta)
    return results


def _f(x, fmt="{:.2f}"):
    return "–" if x is None else fmt.format(x)


def format_results_md(results: Mapping) -> str:
    """The demo's tables (Markdown) from a ``results.json`` dict: headroom, mIoU per method and seed,
    the headline PixelCLIP − random masks, and the training diagnostics of every run."""
    runs = [m for m, r in results.items() if isinstance(r, dict) and "mIoU" in r]
    eval_only = [m for m, r in results.items() if isinstance(r, dict) and r.get("eval_only")]
    seeds = sorted({int(k[4:]) for m in runs for k in results[m]["mIoU"]})
    clip = results["clip"]["mean"]
    lines: List[str] = []
    head = "| | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | Δ vs CLIP |"
    lines += [head, "|---|" + "---:|" * (len(seeds) + 2)]
    blank = " | ".join("–" for _ in seeds)
    hr = results.get("headroom")
    if hr:
        pooled = f"{_f(hr.get('region_pooled'))} / {_f(hr.get('mask_pooled'))}"
        gains = f"{_f(hr.get('region_pooled_gain'), '{:+.2f}')} / {_f(hr.get('mask_pooled_gain'), '{:+.2f}')}"
        lines.append(f"| Headroom: CLIP features pooled in true regions / in SAM-like masks (no training) | {blank} "
                     f"| {pooled} | {gains} |")
    lines.append(f"| {results['clip']['label']} | {blank} | {clip:.2f} | – |")
    for m in eval_only:
        r = results[m]
        lines.append(f"| {r['label']} | {blank} | {r['mean']:.2f} | {r['gain_over_clip']:+.2f} |")
    for m in runs:
        r = results[m]
        cells = " | ".join(_f(r["mIoU"].get(f"seed{s}")) for s in seeds)
        lines.append(f"| {r['label']} | {cells} | {r['mean']:.2f} ± {r['std']:.2f} | {r['gain_over_clip']:+.2f} |")
    headline = results.get("headline")
    if headline:
        cells = " | ".join(_f(headline["per_seed"].get(f"seed{s}"), "{:+.2f}") for s in seeds)
        lines.append(f"| **PixelCLIP − random masks** (same seed) | {cells} | "
                     f"**{headline['pixelclip_minus_random_masks']:+.2f}** ± {headline['std']:.2f} | |")
    lines.append("")
    if hr:
        lines.append(f"Headroom (pre-trained CLIP, {hr.get('num_images')} validation images): dense "
                     f"{_f(hr.get('dense'))} mIoU; features averaged inside the true regions {_f(hr.get('region_pooled'))} "
                     f"({_f(hr.get('region_pooled_gain'), '{:+.2f}')}), inside the SAM-like masks "
                     f"{_f(hr.get('mask_pooled'))} ({_f(hr.get('mask_pooled_gain'), '{:+.2f}')}).")
    checks = results.get("checks", {})
    if "pixelclip_gain" in checks:
        line = f"PixelCLIP − CLIP: {checks['pixelclip_gain']:+.2f} mIoU (mean of seeds; the target is ≥ +5)"
        if "random_masks_gain" in checks:
            verdict = "met" if checks["random_masks_gain_below_half"] else "not met"
            if checks["pixelclip_gain"] <= 0:
                verdict += ": PixelCLIP does not gain over CLIP"
            line += (f"; random masks − CLIP: {checks['random_masks_gain']:+.2f} (the target is less than half of "
                     f"PixelCLIP's gain: {verdict})")
        target = checks.get("pixelclip_beats_clip_by_5") and checks.get("random_masks_gain_below_half", True)
        lines.append(line + f". The target is {'met' if target else '**not met**'}.")
    # training diagnostics
    diag = [(m, s, results[m]["training"].get(f"seed{s}", {})) for m in runs for s in seeds
            if f"seed{s}" in results[m]["mIoU"]]
    if any(d for _, _, d in diag):
        lines += ["", "| Run | iterations | loss, first → final | image-blind loss, final | clusters used | "
                  "largest cluster | prompt cosine | text alignment |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for m, s, d in diag:
            def pair(key, fmt="{:.2f}"):
                a, b = d.get(f"{key}_first"), d.get(f"{key}_final")
                return f"{_f(a, fmt)} → {_f(b, fmt)}"
            lines.append(f"| {m}, seed {s} | {d.get('iterations', '–')} | {pair('loss', '{:.3f}')} | "
                         f"{_f(d.get('blind_loss_final'), '{:.3f}')} | {pair('clusters_used', '{:.0f}')} | "
                         f"{pair('largest_cluster_share')} | {pair('prompt_cosine')} | {pair('text_alignment')} |")
        lines.append("")
        lines.append("Loss and image-blind loss: means over the last quarter of the logged points (D2 logs "
                     "20-iteration medians); the image-blind loss is what per-cluster constants would reach on the "
                     "same targets (pixelclip/modeling/cluster_stats.py). Cluster statistics: first and last logged "
                     "values.")
    return "\n".join(lines) + "\n"


def draw_curves(path: str, run_dirs: Mapping[str, str], labels: Mapping[str, str]) -> None:
    """Training curves of every fine-tuning run (D2's metrics.json): the loss beside the image-blind
    loss, and the cluster statistics, one panel each. ``run_dirs``: ``<method>_seed<s>`` -> folder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(17, 7))
    cmap = plt.get_cmap("tab10")
    methods = sorted({name.rsplit("_seed", 1)[0] for name in run_dirs})
    for name, run_dir in sorted(run_dirs.items()):
        method, seed = name.rsplit("_seed", 1)
        metrics = read_metrics(run_dir)
        blind_at = dict(metrics.get("pixelclip/blind_loss", []))
        metrics["loss_minus_blind"] = [(i, v - blind_at[i]) for i, v in metrics.get("loss_masks", []) if i in blind_at]
        color = cmap(methods.index(method) % 10)
        style = ["-", "--", ":", "-."][int(seed) % 4] if not name.endswith("_seed0") else "-"
        for ax, (key, title) in zip(axes.flat, CURVE_KEYS):
            pts = metrics.get(key, [])
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, marker=".", markersize=3,
                        label=f"{labels.get(method, method)}, seed {seed}")
            if key == "loss_masks":
                blind = metrics.get("pixelclip/blind_loss", [])
                if blind:
                    ax.plot([p[0] for p in blind], [p[1] for p in blind], ":", color=color, linewidth=2, alpha=0.7)
            if key == "loss_minus_blind":
                ax.axhline(0.0, color="black", linewidth=0.8)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("iteration", fontsize=8)
            ax.grid(alpha=0.3)
    for ax in axes.flat[len(CURVE_KEYS):]:
        ax.axis("off")
    if axes.flat[0].get_legend_handles_labels()[0]:
        axes.flat[0].legend(fontsize=6)
    fig.suptitle("PixelCLIP fine-tuning on the synthetic world", fontsize=10)
    fig.tight_layout()
    atomic_write(path, writer=lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
