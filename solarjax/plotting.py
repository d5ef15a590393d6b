"""Magnetogram figures shared by training, steering, retrieval and the app: sunpy's ``hmimag`` colour map on
[-1000, 1000] G, drawn on `matplotlib.figure.Figure` objects (no pyplot, so neither importing this module nor
writing a PNG changes a user's matplotlib backend)."""

from __future__ import annotations

import math
import os
import pathlib

import numpy as np
from matplotlib.figure import Figure

from solarjax.units import FIELD_RANGE_GAUSS, GAUSS_PER_UNIT


def hmimag_colormap():
    """sunpy's HMI magnetogram colour map."""
    import sunpy.visualization.colormaps as sunpy_colormaps

    return sunpy_colormaps.cmlist["hmimag"]


def show_field(ax, image, **kwargs):
    """Draws one normalised patch [H, W] or [H, W, 1] as Br in G (hmimag on [-1000, 1000] G, north up).

    Extra keyword arguments go to `Axes.imshow`; returns its image artist (for a colour bar).
    """
    field = np.squeeze(np.asarray(image, np.float32)) * GAUSS_PER_UNIT
    vmin, vmax = FIELD_RANGE_GAUSS
    return ax.imshow(
        field, cmap=hmimag_colormap(), vmin=vmin, vmax=vmax, origin="lower", interpolation="nearest", **kwargs
    )


def save_sample_grid(
    images: np.ndarray, path: str | os.PathLike, columns: int | None = None, title: str | None = None
) -> pathlib.Path:
    """Writes a PNG grid of Br patches with the ``hmimag`` colour map on [-1000, 1000] G.

    Args:
      images: [N, H, W] or [N, H, W, 1], normalised field s = B / 1000 G.
      path: PNG file to write (parent folders are created).
      columns: grid columns (default ceil(sqrt(N))).
      title: optional figure title.

    Returns:
      The path written.
    """
    images = np.asarray(images, np.float32)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"expected images [N, H, W] or [N, H, W, 1] with N > 0, got {images.shape}")
    count = len(images)
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    fig = Figure(figsize=(1.5 * columns + 1.0, 1.5 * rows + 0.4), layout="compressed")
    axes = fig.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if index < count:
            shown = show_field(ax, images[index])
    fig.colorbar(shown, ax=axes, shrink=0.8, label="Br [G]")
    return _save_titled(fig, path, title)


def comparison_figure(
    data: np.ndarray,
    generated: np.ndarray,
    columns: int = 4,
    labels: tuple[str, str] = ("data", "generated"),
    title: str | None = None,
) -> Figure:
    """Two grids side by side, data on the left and generated on the right, on one colour scale, every panel the
    same size (the colour bar has a column of its own, so no grid gives it room: a reader cannot tell the two
    sets by their panels' size).

    Args:
      data, generated: [N, H, W] or [N, H, W, 1] normalised patches (s = B / 1000 G); the first
        ``columns * rows`` of each are drawn, rows = ceil(min(len) / columns).
      columns: patches per row in each grid.
      labels: the two grids' titles.
      title: optional figure title, in a strip of its own above the grids.

    Returns:
      The figure: both grids use `show_field` (hmimag, [-1000, 1000] G) and share one colour bar.
    """
    sets = []
    for images in (data, generated):
        images = np.asarray(images, np.float32)
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        if images.ndim != 3 or len(images) == 0:
            raise ValueError(f"expected images [N, H, W] or [N, H, W, 1] with N > 0, got {images.shape}")
        sets.append(images)
    count = min(len(images) for images in sets)
    rows = math.ceil(count / columns)
    grid_width, bar_width, body_height, title_height = 1.5 * columns, 1.2, 1.5 * rows + 0.8, 0.4 if title else 0.0
    fig = Figure(figsize=(2 * grid_width + bar_width, body_height + title_height))
    body = fig
    if title:
        head, body = fig.subfigures(2, 1, height_ratios=(title_height, body_height))
        head.suptitle(title, y=0.5, va="center")
    panels = body.subfigures(1, 3, width_ratios=(grid_width, grid_width, bar_width))
    shown = None
    for panel, images, label in zip(panels[:2], sets, labels):
        axes = panel.subplots(rows, columns, squeeze=False, gridspec_kw={"wspace": 0.05, "hspace": 0.05})
        panel.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.5 / body_height)
        for index, ax in enumerate(axes.flat):
            ax.set_axis_off()
            if index < count:
                shown = show_field(ax, images[index])
        panel.suptitle(label)
    fig.colorbar(shown, cax=panels[2].add_axes((0.1, 0.1, 0.18, 0.75)), label="Br [G]")
    return fig


def save_comparison_grid(
    data: np.ndarray,
    generated: np.ndarray,
    path: str | os.PathLike,
    columns: int = 4,
    labels: tuple[str, str] = ("data", "generated"),
    title: str | None = None,
) -> pathlib.Path:
    """Writes `comparison_figure` of ``data`` and ``generated`` (with the optional ``title``) to the PNG ``path``
    (parent folders are created); returns the path."""
    return _save_titled(comparison_figure(data, generated, columns, labels, title), path, None)


def _save_titled(fig, path: str | os.PathLike, title: str | None) -> pathlib.Path:
    """Adds the optional title and writes the PNG (creating its folders); the figure is pyplot-free."""
    if title:
        fig.suptitle(title)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path
