"""Magnetogram figures (`solarjax.plotting`): what a reader is asked to compare is drawn alike."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from solarjax import plotting


@pytest.mark.parametrize("title", [None, "a title"])
def test_comparison_grid_draws_data_and_generated_patches_the_same_size(title):
    data, generated = np.random.default_rng(0).uniform(-1, 1, (2, 8, 128, 128)).astype(np.float32)
    fig = plotting.comparison_figure(data, generated, columns=4, title=title)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    extents = [image.get_window_extent(renderer) for ax in fig.get_axes() for image in ax.get_images()]
    sizes = np.array([(extent.width, extent.height) for extent in extents])
    assert len(sizes) == 16
    # every panel, left and right, the same size in pixels
    np.testing.assert_allclose(sizes, np.broadcast_to(sizes[0], sizes.shape), atol=0.5)
    assert sizes[0, 0] == pytest.approx(sizes[0, 1], abs=0.5) and sizes[0, 0] > 80  # square patches, not shrunk
    assert max(e.x1 for e in extents[:8]) < min(e.x0 for e in extents[8:])  # data left, generated right
    assert fig.get_axes()[-1].get_ylabel() == "Br [G]"  # the colour bar, beside both grids
