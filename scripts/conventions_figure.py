"""Draw docs/img/triangle_conventions.png: one triangle and the point each position convention
picks for it (centroid, bounding-box centre, the paper's anchor).

    python scripts/conventions_figure.py [--out docs/img/triangle_conventions.png]

The points come from `relbench.scene.object_point`, the function the benchmark's truth uses, on
the ideal triangle of the paper's formulas (side 32 px at 128 px, apex up).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from relbench.scene import PAPER_SIZE, SceneObject, object_point  # noqa: E402

SIZE = 128
MARKS = {  # convention -> (label, marker, colour)
    "paper_anchor": ("paper's anchor (h/3 below the apex)", "o", "#d62728"),
    "bbox": ("bounding-box centre (h/2 below the apex)", "s", "#1f77b4"),
    "centroid": ("centroid (2h/3 below the apex)", "^", "#2ca02c"),
}


def draw(out: Path) -> None:
    tri = SceneObject("triangle", "red", 0.5, 0.5, PAPER_SIZE)  # relbench: (x, y) = centroid
    s = tri.size * SIZE
    h = s * math.sqrt(3) / 2
    anchor = object_point(tri, "paper_anchor", "relbench")
    ax_x, ax_y = anchor[0] * SIZE, anchor[1] * SIZE
    apex = (ax_x, ax_y - h / 3)
    base_y = ax_y + 2 * h / 3
    fig, ax = plt.subplots(figsize=(7.0, 2.8), dpi=110)
    ax.fill([apex[0], ax_x - s / 2, ax_x + s / 2], [apex[1], base_y, base_y],
            color="#f4b6b6", ec="#b22222", lw=1.5, zorder=1)
    ax.plot([ax_x - s / 2, ax_x + s / 2, ax_x + s / 2, ax_x - s / 2, ax_x - s / 2],
            [apex[1], apex[1], base_y, base_y, apex[1]], ls="--", c="#1f77b4", lw=0.8, zorder=2)
    for conv, (label, marker, colour) in MARKS.items():
        px, py = object_point(tri, conv, "relbench")
        y = py * SIZE
        ax.plot(px * SIZE, y, marker, c=colour, ms=8, zorder=3,
                label=f"{label}: {y - ax_y:+.1f} px")
        ax.plot([px * SIZE, ax_x + s / 2 + 8], [y, y], ls=":", c=colour, lw=0.8, zorder=2)
    ax.annotate("", xy=(ax_x + s / 2 + 9, apex[1]), xytext=(ax_x + s / 2 + 9, base_y),
                arrowprops={"arrowstyle": "<->", "lw": 0.8})
    ax.text(ax_x + s / 2 + 10.5, base_y - h / 6, f"h =\n{h:.1f} px", va="center", fontsize=8)
    ax.set_xlim(ax_x - s / 2 - 3, ax_x + s / 2 + 19)
    ax.set_ylim(base_y + 3, apex[1] - 3)  # image y points down
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False,
              title="offset from the paper's labelled (x, y),\nside 32 px at 128 px",
              title_fontsize=8)
    ax.set_title("Which point is the triangle? (T = 5 px)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/img/triangle_conventions.png"))
    draw(p.parse_args().out)


if __name__ == "__main__":
    main()
