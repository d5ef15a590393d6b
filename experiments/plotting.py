"""Figure helpers the experiment scripts share: magnetograms on sunpy's ``hmimag`` map, grids, saving.

Magnetograms are drawn as Br in G on [-1000, 1000] G (images hold s = B / 1000 G), the scale and
colour map of `solarjax.train.monitor`.
"""

from __future__ import annotations

import os
import pathlib

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from solarjax.train import monitor  # noqa: E402

DPI = 90
QUANTITY_LABELS = {
    "tuf": "TUF",
    "tpf": "TPF",
    "tnf": "TNF",
    "net_flux": "net flux",
    "psep": "PSEP",
    "tilt": "tilt [rad]",
    "area": "area",
    "lead_polarity": "leading polarity",
    "r_value": "R",
}
"""Axis labels of `solarjax.physics.QUANTITY_NAMES` (normalised units: s = B / 1000 G, 128x128 pixels)."""


def field_grid(figure, images: np.ndarray, columns: int, title: str = "", captions=None):
    """A grid of magnetograms with one Br colour bar on a figure or subfigure; returns the axes [rows, columns].

    Args:
      figure: a matplotlib Figure or SubFigure.
      images: [N, H, W(, 1)] normalised patches.
      columns: grid columns (rows follow).
      title: title above the grid.
      captions: optional N short texts shown under the patches.
    """
    rows = -(-len(images) // columns)
    axes = figure.subplots(rows, columns, squeeze=False)
    artist = None
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(images):
            ax.set_axis_off()
            continue
        artist = monitor.show_field(ax, images[i])
        if captions is not None:
            ax.set_xlabel(captions[i], fontsize=7)
    figure.colorbar(artist, ax=axes, label="Br [G]", shrink=0.8)
    if title:
        figure.suptitle(title)
    return axes


def new_figure(width: float, height: float) -> Figure:
    """A figure with constrained layout, not tied to a GUI backend."""
    return Figure(figsize=(width, height), layout="constrained")


def save(figure: Figure, path: str | os.PathLike) -> pathlib.Path:
    """Writes the figure as PNG at `DPI`."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI)
    return path
