"""solarjax.physics against the NumPy/SciPy reference, analytic patches and invariances."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from astropy.io import fits

from benchmarks.reference_physics import random_bipoles, reference_quantities_batch
from solarjax import physics

NAMES = physics.QUANTITY_NAMES


def _disc(shape, centre, radius, value):
    """Uniform disc of `value` on the pixels within `radius` of an integer `centre`."""
    rows, cols = np.indices(shape)
    inside = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2
    return np.where(inside, value, 0.0)


def _bipole(offset, shape=(128, 128), radius=6, field=0.6, centre=(60, 50)):
    """Positive disc at `centre`, negative disc at `centre + offset` (integers, in pixels)."""
    negative_centre = (centre[0] + offset[0], centre[1] + offset[1])
    return _disc(shape, centre, radius, field) + _disc(shape, negative_centre, radius, -field)


def _assert_quantities_close(actual, expected, rtol, atol_fraction):
    """Each quantity within rtol, plus atol_fraction of its largest magnitude; NaN where NaN."""
    for name in NAMES:
        got = np.asarray(actual[name], np.float64)
        want = np.asarray(expected[name], np.float64)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        scale = np.nanmax(np.abs(want))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol_fraction * scale, err_msg=name)


@pytest.fixture(scope="module")
def bipoles() -> np.ndarray:
    """70 random bipoles (not a multiple of the kernel's chunk) with undefined cases mixed in."""
    images = random_bipoles(np.random.default_rng(7), 70)
    images[3] = np.abs(images[3])  # positive only
    images[11] = 0.0  # empty
    images[25] = np.clip(images[25], -0.1, 1.0)  # negative pixels, none beyond the threshold
    return images


@pytest.fixture(scope="module")
def real_patches(real_br_files) -> np.ndarray:
    """The 40 real Br frames, preprocessed as the paper does: [40, 128, 128] float64."""
    patches = []
    with jax.enable_x64(True):
        for path in real_br_files:
            with fits.open(path) as hdul:
                br = np.asarray(hdul[1].data, np.float64)
            normalised = np.nan_to_num(np.clip(br, -1000.0, 1000.0) / 1000.0, nan=0.0)
            resized = jax.image.resize(jnp.asarray(normalised), (128, 128), "linear", antialias=True)
            patches.append(np.asarray(resized))
    return np.stack(patches)


def test_reference_sees_defined_and_undefined_bipoles(bipoles):
    reference = reference_quantities_batch(bipoles)
    undefined = np.isnan(reference["tuf"])
    assert list(np.flatnonzero(undefined)) == [3, 11, 25]
    assert np.all(reference["r_value"][~undefined] >= 0)
    assert np.any(reference["r_value"][~undefined] > 0) and np.any(reference["r_value"] == 0)


def test_parity_float64_random_bipoles(bipoles):
    expected = reference_quantities_batch(bipoles.astype(np.float64))
    with jax.enable_x64(True):
        got = physics.quantities(jnp.asarray(bipoles, jnp.float64))
        assert got["psep"].dtype == jnp.float64
    _assert_quantities_close(got, expected, rtol=1e-5, atol_fraction=1e-9)


def test_parity_float32_random_bipoles(bipoles):
    expected = reference_quantities_batch(bipoles.astype(np.float32))
    got = physics.quantities(jnp.asarray(bipoles, jnp.float32))
    assert got["psep"].dtype == jnp.float32
    _assert_quantities_close(got, expected, rtol=1e-4, atol_fraction=1e-5)


def test_parity_real_patches_float64(real_patches):
    expected = reference_quantities_batch(real_patches)
    assert np.count_nonzero(np.isnan(expected["tuf"])) == 2, "two small HARPs are unipolar"
    with jax.enable_x64(True):
        got = physics.quantities(jnp.asarray(real_patches))
    _assert_quantities_close(got, expected, rtol=1e-5, atol_fraction=1e-9)


def test_parity_real_patches_float32(real_patches):
    images = real_patches.astype(np.float32)
    expected = reference_quantities_batch(images)
    _assert_quantities_close(physics.quantities(images), expected, rtol=1e-4, atol_fraction=1e-5)
    assert np.count_nonzero(expected["r_value"] > 0) >= 30, "most ARs have touching polarities"


def test_parity_non_square_patches():
    images = random_bipoles(np.random.default_rng(3), 6, size=96)[:, :, 10:90]  # 96 x 80
    expected = reference_quantities_batch(images)
    with jax.enable_x64(True):
        got = physics.quantities(jnp.asarray(images, jnp.float64))
    _assert_quantities_close(got, expected, rtol=1e-5, atol_fraction=1e-9)


def test_analytic_disc_bipole():
    field, radius = 0.6, 6
    image = _bipole((24, 32), radius=radius, field=field)  # separation 40 pixels
    disc_pixels = np.count_nonzero(_disc((128, 128), (60, 50), radius, 1.0))
    with jax.enable_x64(True):
        q = {k: float(v[0]) for k, v in physics.quantities(jnp.asarray(image[None])).items()}
    assert q["tuf"] == pytest.approx(2 * disc_pixels * field / 128**2, rel=1e-12)
    assert q["tpf"] == pytest.approx(field, rel=1e-12)
    assert q["tnf"] == pytest.approx(field, rel=1e-12)
    assert q["net_flux"] == pytest.approx(0.0, abs=1e-9)
    assert q["psep"] == pytest.approx(40.0 / (128 * math.sqrt(2)), rel=1e-12)
    assert q["tilt"] == pytest.approx(math.asin(24.0 / 40.0), rel=1e-12)
    assert q["area"] == pytest.approx(2 * disc_pixels / 128**2, rel=1e-12)
    assert q["lead_polarity"] == pytest.approx(-32.0, rel=1e-12)
    assert q["r_value"] == 0.0


@pytest.mark.parametrize(
    "offset, degrees",
    [
        ((15, 26), 29.98),
        ((-15, 26), -29.98),
        ((15, -26), 29.98),
        ((20, 20), 45.0),
        ((30, 0), 90.0),
        ((-30, 0), -90.0),
        ((0, 30), 0.0),
    ],
)
def test_analytic_tilt(offset, degrees):
    image = _bipole(offset)
    with jax.enable_x64(True):
        q = physics.quantities(jnp.asarray(image[None]))
    assert float(q["tilt"][0]) == pytest.approx(math.atan2(offset[0], abs(offset[1])), abs=1e-12)
    assert math.degrees(float(q["tilt"][0])) == pytest.approx(degrees, abs=0.01)
    assert float(q["lead_polarity"][0]) == pytest.approx(-offset[1], abs=1e-9)


def test_analytic_tilt_of_thirty_degrees():
    """Two negative discs 20 columns apart whose fluxes put the negative centroid at
    (+20, +20 sqrt(3)) from the positive disc: 40 pixels away at exactly 30 degrees."""
    share = (20 * math.sqrt(3) - 20) / 20  # flux fraction of the far disc: 0.732...
    image = (
        _disc((128, 128), (60, 50), 6, 0.6)
        + _disc((128, 128), (80, 70), 6, -0.3)
        + _disc((128, 128), (80, 90), 6, -0.3 * share / (1 - share))
    )
    with jax.enable_x64(True):
        q = {k: float(v[0]) for k, v in physics.quantities(jnp.asarray(image[None])).items()}
    assert q["tilt"] == pytest.approx(math.radians(30.0), abs=1e-12)
    assert q["psep"] == pytest.approx(40.0 / (128 * math.sqrt(2)), rel=1e-12)
    assert q["lead_polarity"] == pytest.approx(-20 * math.sqrt(3), rel=1e-12)


@pytest.mark.parametrize("column_gap, expected_r", [(2, 0.5 + 0.7), (3, 0.5 + 0.7), (4, 0.0), (6, 0.0), (7, 0.0)])
def test_analytic_r_of_two_pixels(column_gap, expected_r):
    """Dilated 7 x 7 squares overlap when the pixels are <= 6 apart; the overlap holds the two
    pixels themselves only when they are <= 3 apart, and R sums |s| over the overlap only."""
    image = np.zeros((1, 32, 32))
    image[0, 10, 10] = 0.5
    image[0, 12, 10 + column_gap] = -0.7
    with jax.enable_x64(True):
        q = physics.quantities(jnp.asarray(image))
    assert float(q["r_value"][0]) == pytest.approx(expected_r, abs=1e-12)


def test_r_grows_from_zero_as_discs_touch():
    r_values = [
        float(physics.quantities(_bipole((0, gap))[None])["r_value"][0]) for gap in (40, 20, 15, 13)
    ]  # disc edges 27, 7, 2 and 0 pixels apart
    assert r_values[0] == 0.0 and r_values[1] == 0.0
    assert 0.0 < r_values[2] < r_values[3]


def test_undefined_when_a_polarity_is_empty():
    images = np.zeros((4, 40, 40), np.float32)
    images[1, 5:9, 5:9] = 0.8  # positive only
    images[2, 5:9, 5:9] = -0.8  # negative only
    images[3, 5:9, 5:9], images[3, 20, 20] = 0.8, -0.15  # -0.15 is not below -threshold
    q = physics.quantities(images)
    for name in NAMES:
        assert np.all(np.isnan(np.asarray(q[name]))), name


def test_tilt_undefined_when_centroids_coincide():
    image = np.zeros((1, 40, 40))
    image[0, 10, 10] = image[0, 10, 30] = 0.5  # positive centroid (10, 20)
    image[0, 5, 20] = image[0, 15, 20] = -0.5  # negative centroid (10, 20)
    q = physics.quantities(image)
    assert np.isnan(float(q["tilt"][0]))
    assert float(q["psep"][0]) == 0.0 and float(q["lead_polarity"][0]) == 0.0


def test_invariances(bipoles):
    images = jnp.asarray(bipoles, jnp.float32)
    q = physics.quantities(images)
    flipped = physics.quantities(-images)  # polarity flip
    for same in ("tuf", "psep", "area", "r_value"):
        np.testing.assert_allclose(flipped[same], q[same], rtol=1e-5, err_msg=same)
    for swapped_a, swapped_b in (("tpf", "tnf"), ("tnf", "tpf")):
        np.testing.assert_allclose(flipped[swapped_a], q[swapped_b], rtol=1e-5)
    for negated in ("net_flux", "tilt", "lead_polarity"):
        np.testing.assert_allclose(flipped[negated], -q[negated], rtol=1e-4, atol=1e-4, err_msg=negated)
    upside_down = physics.quantities(images[:, ::-1, :])
    np.testing.assert_allclose(upside_down["tilt"], -q["tilt"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(upside_down["lead_polarity"], q["lead_polarity"], rtol=1e-4, atol=1e-4)
    mirrored = physics.quantities(images[:, :, ::-1])
    np.testing.assert_allclose(mirrored["lead_polarity"], -q["lead_polarity"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mirrored["tilt"], q["tilt"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mirrored["r_value"], q["r_value"], rtol=1e-5)


def test_jit_and_channel_axis_and_chunking_agree(bipoles):
    images = jnp.asarray(bipoles, jnp.float32)
    eager = physics.quantities(images)
    jitted = jax.jit(physics.quantities)(images[..., None])
    one_by_one = [physics.quantities(images[i : i + 1]) for i in (0, 40, 69)]
    for name in NAMES:
        np.testing.assert_allclose(np.asarray(jitted[name]), np.asarray(eager[name]), rtol=1e-6)
        np.testing.assert_allclose(
            [float(q[name][0]) for q in one_by_one], np.asarray(eager[name])[[0, 40, 69]], rtol=1e-6, atol=1e-7
        )
        assert eager[name].shape == (70,)


@pytest.mark.parametrize("axis_type", ["Auto", "Explicit"])
def test_sharded_batch(bipoles, axis_type):
    images = jnp.asarray(bipoles[:16], jnp.float32)
    mesh = jax.make_mesh((4,), ("data",), axis_types=(getattr(jax.sharding.AxisType, axis_type),))
    sharded = jax.device_put(images, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    expected, got = physics.quantities(images), physics.quantities(sharded)
    for name in NAMES:
        np.testing.assert_allclose(np.asarray(got[name]), np.asarray(expected[name]), rtol=1e-6)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"\[N, H, W\].*\(128, 128\)"):
        physics.quantities(np.zeros((128, 128), np.float32))
    with pytest.raises(ValueError, match=r"\(2, 8, 8, 3\)"):
        physics.quantities(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(TypeError, match="int32"):
        physics.quantities(np.zeros((2, 8, 8), np.int32))
    with pytest.raises(ValueError, match="threshold"):
        physics.quantities(np.zeros((2, 8, 8), np.float32), threshold=-0.1)
    with pytest.raises(ValueError, match=r"\(0, 8, 8\)"):
        physics.quantities(np.zeros((0, 8, 8), np.float32))
    with pytest.raises(ValueError, match="1500 rows are too tall"):
        physics.quantities(np.zeros((1, 1500, 4), np.float32))
    with pytest.raises(ValueError, match=r"pixel_size_mm.*\(3,\)"):
        physics.physical_quantities(np.zeros((2, 8, 8), np.float32), [0.36, 0.36, 1.0])


def test_physical_quantities_of_a_disc_bipole():
    field, radius, row_mm, col_mm = 0.6, 6, 0.5, 0.25
    image = _bipole((24, 32), radius=radius, field=field)
    disc_pixels = np.count_nonzero(_disc((128, 128), (60, 50), radius, 1.0))
    pixel_cm2 = row_mm * col_mm * 1e16
    with jax.enable_x64(True):
        p = {k: float(v[0]) for k, v in physics.physical_quantities(jnp.asarray(image[None]), [row_mm, col_mm]).items()}
    assert p["unsigned_flux_mx"] == pytest.approx(2 * disc_pixels * 600.0 * pixel_cm2, rel=1e-12)
    assert p["net_flux_mx"] == pytest.approx(0.0, abs=1e-3)
    assert p["tpf_g"] == pytest.approx(600.0) and p["tnf_g"] == pytest.approx(600.0)
    assert p["psep_mm"] == pytest.approx(math.hypot(24 * row_mm, 32 * col_mm), rel=1e-12)
    assert p["tilt_rad"] == pytest.approx(math.atan2(24 * row_mm, 32 * col_mm), rel=1e-12)
    assert p["area_mm2"] == pytest.approx(2 * disc_pixels * row_mm * col_mm, rel=1e-12)
    assert p["lead_polarity_mm"] == pytest.approx(-32 * col_mm, rel=1e-12)
    assert p["r_value_mx"] == 0.0


def test_physical_quantities_match_normalised_ones(bipoles):
    images = jnp.asarray(bipoles)
    size = np.array([0.36, 0.36]) * 400 / 128  # a 400-pixel-wide SHARP patch resized to 128
    q = physics.quantities(images)
    p = physics.physical_quantities(images, size)
    per_image = physics.physical_quantities(images, np.tile(size, (len(bipoles), 1)))
    pixel_cm2 = size[0] * size[1] * 1e16
    np.testing.assert_allclose(p["unsigned_flux_mx"], q["tuf"] * 128**2 * 1000 * pixel_cm2, rtol=1e-5)
    np.testing.assert_allclose(p["psep_mm"], q["psep"] * 128 * math.sqrt(2) * size[0], rtol=1e-5)
    np.testing.assert_allclose(p["r_value_mx"], q["r_value"] * 1000 * pixel_cm2, rtol=1e-5)
    np.testing.assert_allclose(p["tilt_rad"], q["tilt"], rtol=1e-5, atol=1e-6)
    for name in p:
        np.testing.assert_allclose(np.asarray(per_image[name]), np.asarray(p[name]), rtol=1e-6)


def test_unsigned_flux_above_threshold_numpy_and_jax():
    br = np.array([[[100.0, -200.0], [np.nan, 1500.0]], [[-149.9, 150.0], [151.0, np.nan]]])
    expected = np.array([(200.0 + 1500.0) * 2e16, 151.0 * 2e16])
    np.testing.assert_allclose(physics.unsigned_flux_above_mx(br, 2e16), expected, rtol=1e-12)
    got = physics.unsigned_flux_above_mx(jnp.asarray(br, jnp.float32), 2e16)
    assert isinstance(got, jax.Array)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6)


def test_smooth_converges_to_exact(bipoles):
    images = jnp.asarray(bipoles[:24], jnp.float32)
    exact = physics.quantities(images)
    defined = ~np.isnan(np.asarray(exact["tuf"]))
    errors = {}
    for sharpness in (50.0, 500.0, 5000.0):
        approx = physics.smooth_quantities(images, sharpness=sharpness)
        errors[sharpness] = {
            name: np.median(np.abs(np.asarray(approx[name]) - np.asarray(exact[name]))[defined])
            / np.nanmax(np.abs(np.asarray(exact[name])))
            for name in NAMES
        }
    for name in NAMES:
        assert errors[5000.0][name] < 2e-3, (name, errors)
        if name != "tuf":  # tuf has no threshold: the smooth one is the exact one
            assert errors[5000.0][name] < errors[50.0][name], (name, errors)


def test_smooth_centroids_stay_in_the_patch_when_a_polarity_is_all_but_absent():
    # a broad negative plage and a weak positive speck swept through the amplitude where, with signed centroid
    # weights, the positive mask's negative tails cancel the speck's flux (the centroid went 59,000 px away)
    rows, cols = np.mgrid[0:128, 0:128] + 0.5
    negative = -0.4 * np.exp(-((rows - 64) ** 2 + (cols - 64) ** 2) / (2 * 30.0**2))
    speck = np.exp(-((rows - 20) ** 2 + (cols - 110) ** 2) / (2 * 1.5**2))
    fields = negative[None] + np.linspace(0.0, 0.1, 201)[:, None, None] * speck[None]
    smooth = physics.smooth_quantities(jnp.asarray(fields, jnp.float32))
    # no positive polarity to speak of: both centroids sit near the plage's (measured: psep 0.020, offset 2.6 px)
    assert float(jnp.max(smooth["psep"])) < 0.05
    assert float(jnp.max(jnp.abs(smooth["lead_polarity"]))) < 5.0
    gradient = jax.grad(lambda x: jnp.sum(physics.smooth_quantities(x)["psep"]))(jnp.asarray(fields, jnp.float32))
    assert np.all(np.isfinite(np.asarray(gradient))) and float(jnp.max(jnp.abs(gradient))) < 1.0


def test_smooth_gradients_finite_and_non_zero(bipoles):
    images = jnp.asarray(bipoles[2:6], jnp.float32).at[3].set(0.0)
    # [1] is positive only (bipoles[3]) and [3] is empty: undefined exactly, finite smoothly

    def totals(x):
        smooth = physics.smooth_quantities(x)
        return jnp.stack([jnp.sum(smooth[name]) for name in NAMES])

    gradients = np.asarray(jax.jit(jax.jacrev(totals))(images))  # [9, 4, 128, 128]
    assert np.all(np.isfinite(gradients))
    for name, gradient in zip(NAMES, gradients):
        assert np.any(gradient[:3] != 0), name
