"""Tests of solarjax.data.preprocess: known answers, parity with jax.image.resize, physical units."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from solarjax.data import (
    NORMALISATION_GAUSS,
    PreprocessedPatch,
    SharpPatch,
    preprocess,
    preprocess_patch,
    read_sharp,
    resize_taps,
)


@pytest.fixture(scope="module")
def real_patches(shared_data) -> dict[str, SharpPatch]:
    """Three shapes: 387x704 with 46% NaN, 460x1167 (the largest), 105x163 (the smallest)."""
    folder = shared_data / "sharp_cea"
    names = {
        "nan": "1422.20120306_142400",
        "large": "1449.20120306_142400",
        "small": "1445.20120306_142400",
    }
    return {key: read_sharp(folder / f"hmi.sharp_cea_720s.{name}_TAI.Br.fits") for key, name in names.items()}


def _jax_reference(br_gauss: np.ndarray, size: int) -> np.ndarray:
    normalised = np.nan_to_num(np.clip(br_gauss, -1000.0, 1000.0) / 1000.0, nan=0.0).astype(np.float32)
    return np.asarray(jax.image.resize(normalised, (size, size), method="linear", antialias=True))


@pytest.mark.parametrize("field_gauss, expected", [(2000.0, 1.0), (-2000.0, -1.0), (500.0, 0.5), (0.0, 0.0)])
@pytest.mark.parametrize("shape", [(300, 500), (105, 163), (50, 70), (128, 128)])
def test_constant_field_known_answer(field_gauss, expected, shape):
    image = preprocess(np.full(shape, field_gauss, np.float32))
    assert image.shape == (128, 128) and image.dtype == np.float32
    np.testing.assert_allclose(image, expected, rtol=0, atol=1e-6)


def test_output_shape_dtype_and_range(real_patches):
    for patch in real_patches.values():
        for size in (128, 64, 200):
            image = preprocess(patch.data, size=size)
            assert image.shape == (size, size) and image.dtype == np.float32
            assert np.isfinite(image).all()
            assert -1.0 <= image.min() < 0.0 < image.max() <= 1.0


def test_nan_becomes_zero_before_the_resize():
    assert np.array_equal(preprocess(np.full((40, 90), np.nan)), np.zeros((128, 128), np.float32))
    field = np.full((200, 400), 1000.0)
    field[:, :200] = np.nan  # no data on the left half
    image = preprocess(field)
    assert np.isfinite(image).all()
    np.testing.assert_array_equal(image[:, :63], 0.0)
    np.testing.assert_allclose(image[:, 65:], 1.0, atol=1e-6)
    # The edge is blended (NaN as 0); NaN -> 0 after the resize would zero every output near it.
    np.testing.assert_allclose(image[:, 63:65], np.tile([0.1146, 0.8854], (128, 1)), atol=1e-3)


def test_clipping_at_1000_gauss():
    field = np.array([[-5000.0, -1000.0, -400.0, 0.0, 400.0, 1000.0, 5000.0]]).repeat(7, axis=0)
    image = preprocess(field, size=7)
    np.testing.assert_allclose(image[0], [-1.0, -1.0, -0.4, 0.0, 0.4, 1.0, 1.0], atol=1e-7)
    assert NORMALISATION_GAUSS == 1000.0


def test_same_size_is_the_identity():
    rng = np.random.default_rng(0)
    field = rng.uniform(-900.0, 900.0, size=(128, 128))
    np.testing.assert_allclose(preprocess(field), field / 1000.0, atol=1e-7)


def test_linear_ramp_is_sampled_at_the_output_pixel_centres():
    """A symmetric filter reproduces a linear field exactly away from the borders (ratio 8: taps
    symmetric about each centre)."""
    width, size = 1024, 128
    field = np.tile(0.5 * np.arange(width), (64, 1))  # G, below the clip level
    image = preprocess(field, size=size)
    ratio = width / size
    centres = (np.arange(size) + 0.5) * ratio - 0.5
    interior = (centres - ratio >= 0) & (centres + ratio <= width - 1)
    assert interior.sum() > 120
    np.testing.assert_allclose(image[:, interior], np.tile(0.0005 * centres[interior], (size, 1)), atol=1e-6)


def test_resize_of_a_smooth_field_keeps_its_mean():
    rows, cols = np.mgrid[0:460, 0:1167]
    field = 200.0 + 600.0 * np.sin(2 * np.pi * cols / 1167 * 3) * np.cos(2 * np.pi * rows / 460 * 2)
    image = preprocess(field)
    assert image.mean() == pytest.approx(field.mean() / 1000.0, abs=2e-3)
    assert image.max() == pytest.approx(0.8, abs=0.01) and image.min() == pytest.approx(-0.4, abs=0.01)


def test_antialiasing_removes_a_checkerboard():
    """Downsampling 387x704 -> 128 (factors 3.02, 5.5): plain bilinear sampling aliases, ours averages."""
    rows, cols = np.mgrid[0:387, 0:704]
    checkerboard = np.where((rows + cols) % 2 == 0, 500.0, -500.0)
    image = preprocess(checkerboard)
    assert np.abs(image).max() < 0.01
    normalised = (checkerboard / 1000.0).astype(np.float32)
    aliased = np.asarray(jax.image.resize(normalised, (128, 128), method="linear", antialias=False))
    assert np.abs(aliased).max() > 0.2


def test_parity_with_jax_image_resize_antialiased(real_patches):
    for patch in real_patches.values():
        for size in (128, 300):
            np.testing.assert_allclose(preprocess(patch.data, size), _jax_reference(patch.data, size), atol=2e-5)


@settings(max_examples=40, deadline=None)
@given(
    field=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=300),
        elements=st.one_of(st.floats(-1e5, 1e5), st.just(np.nan), st.just(np.inf), st.just(-np.inf)),
    ),
    size=st.integers(1, 160),
)
def test_any_field_maps_into_the_unit_range_and_polarity_flip_is_negation(field, size):
    image = preprocess(field, size)
    assert image.shape == (size, size) and np.isfinite(image).all()
    assert np.abs(image).max() <= 1.0 + 1e-6
    np.testing.assert_array_equal(preprocess(-field, size), -image)


def test_resize_taps_rows_sum_to_one():
    for input_size, output_size in [(1167, 128), (105, 128), (128, 128), (7, 3), (1, 5)]:
        indices, weights = resize_taps(input_size, output_size)
        assert indices.shape == weights.shape and indices.shape[0] == output_size
        assert indices.min() >= 0 and indices.max() < input_size
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
        assert (weights >= 0).all()


def test_preprocess_patch_keeps_physical_units(real_patches):
    patch = real_patches["large"]
    result = preprocess_patch(patch)
    assert isinstance(result, PreprocessedPatch)
    assert result.original_shape == (460, 1167)
    np.testing.assert_array_equal(result.image, preprocess(patch.data))
    row_mm, col_mm = patch.meta["pixel_size_mm"]
    assert result.pixel_size_mm == pytest.approx((row_mm * 460 / 128, col_mm * 1167 / 128))
    assert result.meta == patch.meta and result.meta is not patch.meta
    # Flux of the clipped |B| in Mx is recovered from the image and the new pixel size.
    unsigned = SharpPatch(data=np.abs(patch.data), meta=patch.meta, path=patch.path, segment="Br")
    unsigned_result = preprocess_patch(unsigned)
    pixel_area_after_cm2 = unsigned_result.pixel_size_mm[0] * unsigned_result.pixel_size_mm[1] * 1e16
    flux_after = unsigned_result.image.sum(dtype=np.float64) * NORMALISATION_GAUSS * pixel_area_after_cm2
    flux_before = np.nansum(np.minimum(np.abs(patch.data), 1000.0), dtype=np.float64) * patch.meta["pixel_area_cm2"]
    assert flux_after == pytest.approx(flux_before, rel=0.01)


def test_preprocess_patch_without_plate_scale():
    patch = SharpPatch(data=np.ones((30, 40), np.float32), meta={}, path=None, segment="Br")
    result = preprocess_patch(patch, size=16)
    assert result.pixel_size_mm is None and result.original_shape == (30, 40)


@pytest.mark.parametrize(
    "field, size, message",
    [
        (np.zeros((3, 4, 5)), 128, r"\[H, W\] field, got shape \(3, 4, 5\)"),
        (np.zeros((0, 5)), 128, r"got shape \(0, 5\)"),
        (np.zeros((10, 10)), 0, "positive integer, got 0"),
        (np.zeros((10, 10)), 12.5, "positive integer, got 12.5"),
    ],
)
def test_bad_input_is_refused(field, size, message):
    with pytest.raises(ValueError, match=message):
        preprocess(field, size)
