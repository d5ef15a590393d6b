"""`physics.quantities` on NumPy batches (chunked, overlapped transfer) equals the one-call path.

The chunk size is shrunk to 4 images so that a dozen patches exercise several chunks, both
staging buffers, the zero-copy path and the zero-padded last chunk.
"""

import math

import numpy as np
import pytest

from solarjax import physics
from solarjax.data import preprocess_patch, read_sharp

CHUNK = 4


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(physics, "HOST_CHUNK_IMAGES", CHUNK)


@pytest.fixture(scope="module")
def real_patches(real_br_files) -> np.ndarray:
    """Nine real SHARP Br frames, preprocessed to [9, 128, 128] float32."""
    images = [preprocess_patch(read_sharp(path)).image for path in real_br_files[::4][:9]]
    return np.stack(images).astype(np.float32)


def _analytic_fields(size: int = 128) -> np.ndarray:
    """[4, size, size] float32: an E-W bipole, a tilted bipole, a unipolar blob, a zero field."""
    rows, cols = np.indices((size, size), dtype=np.float64)

    def blob(row, col, width, peak):
        return peak * np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * width**2))

    return np.stack(
        [
            blob(64, 40, 6, 0.9) + blob(64, 88, 6, -0.9),
            blob(50, 40, 8, 0.7) + blob(80, 90, 5, -1.0),
            blob(64, 64, 10, 0.8),
            np.zeros((size, size)),
        ]
    ).astype(np.float32)


def _assert_same(got: dict, expected: dict, rtol: float = 1e-6) -> None:
    assert set(got) == set(physics.QUANTITY_NAMES) == set(expected)
    for name in physics.QUANTITY_NAMES:
        got_values, expected_values = np.asarray(got[name]), np.asarray(expected[name])
        assert got_values.shape == expected_values.shape, name
        assert got_values.dtype == expected_values.dtype, name
        np.testing.assert_allclose(got_values, expected_values, rtol=rtol, atol=1e-6, equal_nan=True, err_msg=name)


@pytest.fixture(scope="module")
def batch(real_patches) -> np.ndarray:
    """13 patches (3 full chunks of 4 and a padded one of 1): real, then analytic."""
    return np.concatenate([real_patches, _analytic_fields()])


def test_real_and_analytic_patches_match_the_one_call_path(small_chunks, batch):
    assert batch.shape == (13, 128, 128)
    assert physics._streams_from_host(batch)
    expected = physics._quantities_jit(batch)
    got = physics.quantities(batch)
    _assert_same(got, expected)
    # the analytic fields give their known answers through the chunked path too
    tuf = np.asarray(got["tuf"])
    assert math.isnan(tuf[-1]) and math.isnan(tuf[-2])  # unipolar, zero field: undefined
    assert abs(float(got["tilt"][-4])) < 1e-5  # east-west bipole: no tilt
    assert float(got["lead_polarity"][-4]) == pytest.approx(-48.0, abs=0.05)  # + at col 40, - at 88
    assert float(got["tilt"][-3]) > 0  # negative blob at a larger row index


def test_float64_input_matches_the_one_call_path(small_chunks, batch):
    wide = batch.astype(np.float64)
    _assert_same(physics.quantities(wide), physics._quantities_jit(wide))


def test_aligned_float32_input_goes_without_copy_and_is_left_unchanged(small_chunks, batch):
    aligned = physics._aligned_empty(batch.shape, np.float32)
    aligned[...] = batch
    assert physics._zero_copy_ready(aligned[:CHUNK], np.float32)
    before = aligned.copy()
    _assert_same(physics.quantities(aligned), physics._quantities_jit(batch))
    np.testing.assert_array_equal(aligned, before)


def test_unaligned_strided_and_channel_inputs(small_chunks, batch):
    unaligned = np.frombuffer(
        np.concatenate([np.zeros(1, np.float32), batch.ravel()]).tobytes()[4:], np.float32
    ).reshape(batch.shape)
    expected = physics._quantities_jit(batch)
    _assert_same(physics.quantities(unaligned), expected)
    _assert_same(physics.quantities(batch[..., None]), expected)  # [N, H, W, 1]
    doubled = np.stack([batch, batch], axis=1)[:, 0]  # non-contiguous view
    _assert_same(physics.quantities(doubled), expected)


def test_small_and_non_float_inputs_keep_the_one_call_path(small_chunks, batch):
    assert not physics._streams_from_host(batch[:CHUNK])  # at most one chunk: one call
    assert not physics._streams_from_host(batch.astype(np.int32))
    with pytest.raises(TypeError, match="floating point"):
        physics.quantities(np.ones((2 * CHUNK, 8, 8), np.int32))
    with pytest.raises(ValueError, match="threshold"):
        physics.quantities(batch, threshold=-1.0)


def test_aligned_empty_is_aligned():
    for shape in [(3, 5, 7), (1,), (4, 128, 128)]:
        array = physics._aligned_empty(shape, np.float32)
        assert array.shape == shape and array.flags.c_contiguous
        assert array.ctypes.data % 64 == 0
