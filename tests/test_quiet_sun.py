"""experiments.quiet_sun: the gradient split by field strength, on a field with a known gradient."""

import numpy as np

from experiments import quiet_sun
from solarjax.train import quality


def test_gradient_by_band_on_a_ramp_splits_a_uniform_gradient_by_pixel_share():
    # Br = 10 G per pixel along the columns, 0..1270 G: the gradient is 10 G/px everywhere (central differences
    # are exact on a linear field), and the bands hold 5, 15, 30 and 78 of the 128 columns.
    ramp = np.broadcast_to(10.0 * np.arange(128), (2, 128, 128)) / quality.GAUSS_PER_UNIT
    bands = quiet_sun.gradient_by_band(ramp[..., None])
    shares = [bands[name]["pixel_share"] for name in bands]
    np.testing.assert_allclose(shares, np.array([5, 15, 30, 78]) / 128)
    for band in bands.values():
        np.testing.assert_allclose(band["mean_gradient"], 10.0)
        np.testing.assert_allclose(band["contribution"], 10.0 * band["pixel_share"])
    np.testing.assert_allclose(sum(b["contribution"] for b in bands.values()), quality.mean_gradient(ramp).mean())
