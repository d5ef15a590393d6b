"""PNGs of the app: SHARP patches in sunpy's hmimag colour map on [-1000, 1000] G, AIA patches as an RGB
composite or one channel in its sdoaia colour map, and a search's contact sheet; north up (row 0, south, at
the bottom). CME difference images are grey on [-0.6, 0.6] (as the CME demo's figures), north up: their row
0 is north (the `cme_patches` data contract), drawn at the top.
"""

import functools
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np

from solarjax.plotting import hmimag_colormap

SHEET_QUANTITIES = ("tuf", "psep", "r_value")
"""Quantities written under each panel of a contact sheet."""

_hmimag = functools.cache(hmimag_colormap)


PNG_COMPRESS_LEVEL = 1
"""zlib level of served PNGs: 1 encodes a 128 x 128 patch ~4x faster than the default 6, ~20% larger."""


CME_RANGE = 0.6
"""A CME difference image's PNG spans [-CME_RANGE, CME_RANGE], black to white."""


def _png(rgb: np.ndarray, row0_at_bottom: bool = True) -> bytes:
    """PNG bytes of uint8 [H, W, 3], row 0 drawn at the bottom (or at the top)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.flipud(rgb) if row0_at_bottom else rgb)).save(
        buffer, format="png", compress_level=PNG_COMPRESS_LEVEL
    )
    return buffer.getvalue()


def render_png(image: np.ndarray) -> bytes:
    """PNG bytes of one patch [H, W] or [H, W, 1] (s = B / 1000 G): hmimag on [-1000, 1000] G,
    row 0 (south) at the bottom."""
    field = np.asarray(image, np.float32).reshape(np.shape(image)[:2])
    return _png(_hmimag()((np.clip(field, -1.0, 1.0) + 1.0) / 2.0, bytes=True)[..., :3])


def render_cme_png(image: np.ndarray) -> bytes:
    """PNG bytes of one CME difference image [H, W] or [H, W, 1] in grey on [-CME_RANGE, CME_RANGE], row 0
    (north) at the top."""
    field = np.asarray(image, np.float32).reshape(np.shape(image)[:2])
    grey = np.round((np.clip(field, -CME_RANGE, CME_RANGE) + CME_RANGE) / (2 * CME_RANGE) * 255.0).astype(np.uint8)
    return _png(np.repeat(grey[..., None], 3, axis=-1), row0_at_bottom=False)


@functools.cache
def aia_colormap(wavelength: int):
    """sunpy's SDO/AIA colour map of a channel (``sdoaia171`` etc.)."""
    import sunpy.visualization.colormaps as sunpy_colormaps

    name = f"sdoaia{int(wavelength)}"
    if name not in sunpy_colormaps.cmlist:
        raise ValueError(f"no sunpy colour map {name!r} for channel {wavelength} A")
    return sunpy_colormaps.cmlist[name]


def render_aia_png(image: np.ndarray, wavelengths: Sequence[int], channel: int | None = None) -> bytes:
    """PNG bytes of one normalised AIA patch [H, W, C] (values in [0, 1], see `aia_prep.normalise`),
    row 0 (south) at the bottom.

    channel None with C = 3: the RGB composite, red = first channel, green = second, blue = third.
    Otherwise the given channel (default: the first) in its sdoaia colour map on [0, 1].

    Raises:
      ValueError: ``channel`` is not one of ``wavelengths``.
    """
    image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    wavelengths = [int(w) for w in wavelengths]
    if channel is None and len(wavelengths) == 3:
        return _png(np.round(image * 255.0).astype(np.uint8))
    channel = wavelengths[0] if channel is None else int(channel)
    if channel not in wavelengths:
        raise ValueError(f"channel {channel} is not one of the patch's channels {wavelengths}")
    return _png(aia_colormap(channel)(image[..., wavelengths.index(channel)], bytes=True)[..., :3])


def colormap_stops(count: int = 11) -> list[str]:
    """`count` hex colours of hmimag evenly spaced from -1000 G to +1000 G (for the colour bar)."""
    rgba = _hmimag()(np.linspace(0.0, 1.0, count), bytes=True)
    return ["#{:02x}{:02x}{:02x}".format(*colour[:3]) for colour in rgba]


def contact_sheet_png(
    query_image: np.ndarray, query_values: Mapping[str, float], hits: Sequence[dict], images: Sequence[np.ndarray]
) -> bytes:
    """The query and its matches side by side, each titled with TUF, PSEP and R (and similarity)."""
    from matplotlib.figure import Figure

    columns = min(len(hits) + 1, 6)
    rows = math.ceil((len(hits) + 1) / columns)
    figure = Figure(figsize=(2.2 * columns, 2.5 * rows), dpi=100)
    panels = [("query", query_image, query_values)] + [
        (f"#{hit['rank']} sim {hit['similarity']:.3f} HARP {hit['harpnum']}", image, hit["quantities"])
        for hit, image in zip(hits, images)
    ]
    for position, (title, image, values) in enumerate(panels, start=1):
        axes = figure.add_subplot(rows, columns, position)
        axes.imshow(np.asarray(image).reshape(np.shape(image)[:2]), cmap=_hmimag(), vmin=-1, vmax=1, origin="lower")
        numbers = " ".join(f"{name} {_number(values.get(name))}" for name in SHEET_QUANTITIES)
        axes.set_title(f"{title}\n{numbers}", fontsize=6)
        axes.set_axis_off()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _number(value) -> str:
    return "nan" if value is None else f"{value:.3g}"
