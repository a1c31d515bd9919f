"""Draw docs/benchmarks.png from the panels bench/report.py prepared. Needs matplotlib only.

    .cache/bench/plot-venv/bin/python bench/plot.py PANELS.json OUT.png

Run by bench/report.py with the cache venv's Python (matplotlib is not a dependency of the
proxy). Each panel: a title, one bar per target (missing values drawn as "n/a"), an
optional target line, an optional log scale.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"floor": "#9e9e9e", "proxy": "#1f77b4", "litellm": "#ff7f0e", "claude-code-router": "#2ca02c"}


def main(panels_path: str, out_path: str) -> None:
    spec = json.loads(open(panels_path).read())
    panels = spec["panels"]
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows))
    axes = axes.flatten()
    for ax, panel in zip(axes, panels):
        names, labels, values = [], [], []
        notes = []
        for name, label, value, note in zip(spec["names"], spec["labels"], panel["values"],
                                            panel.get("notes") or [None] * len(panel["values"])):
            if panel.get("skip_floor") and name == "floor":
                continue
            names.append(name)
            labels.append(label)
            values.append(value)
            notes.append(note)
        panel = {**panel, "notes": notes}
        heights = [v if v is not None else 0 for v in values]
        bars = ax.bar(range(len(values)), heights, color=[COLORS.get(n, "#777") for n in names])
        for bar, value, note in zip(bars, values, panel.get("notes") or [None] * len(values)):
            x = bar.get_x() + bar.get_width() / 2
            if value is None:
                ax.text(x, 0.03, note or "n/a", ha="center", va="bottom", fontsize=8,
                        transform=ax.get_xaxis_transform())
                continue
            text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
            ax.annotate(text, (x, bar.get_height()), ha="center", va="bottom",
                        fontsize=8, xytext=(0, 2), textcoords="offset points")
        if panel.get("target") is not None:
            ax.axhline(panel["target"], color="#d62728", linestyle="--", linewidth=1)
            ax.annotate(f"target {panel['target']:g}", (len(values) - 0.5, panel["target"]), ha="right", va="bottom",
                        fontsize=7, color="#d62728")
        if panel.get("log") and any(v and v > 0 for v in values):
            ax.set_yscale("log")
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(labels, fontsize=8, rotation=12)
        ax.set_title(panel["title"], fontsize=10)
        ax.set_ylabel(panel.get("unit", ""), fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[len(panels):]:
        ax.axis("off")
    fig.suptitle(spec.get("title", ""), fontsize=11)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
