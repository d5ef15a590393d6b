"""The one reader of SHARP Br query files (`solarjax.data.query_checks.read_br_queries`) that the CLI's
`search` and `Index.search_fits` share: what it returns on real files, and what it refuses by name."""

import numpy as np
import pytest
from astropy.io import fits

from solarjax.data import SharpReadError, preprocess_patch, read_sharp
from solarjax.data.query_checks import read_br_queries


def test_real_br_files_are_read_and_preprocessed_as_in_training(real_br_files):
    paths = real_br_files[:3]
    images, patches = read_br_queries(paths)
    assert images.shape == (3, 128, 128) and images.dtype == np.float32
    for image, patch, path in zip(images, patches, paths):
        expected = preprocess_patch(read_sharp(path)).image
        np.testing.assert_array_equal(image, expected)
        assert patch.meta["harpnum"] == int(path.name.split(".")[2])
        assert 0.1 < np.abs(image).max() <= 1.0


def test_other_segments_and_maps_without_data_are_refused_by_name(shared_data, real_br_files, tmp_path):
    bp = sorted((shared_data / "sharp_cea").glob("*.Bp.fits"))[0]
    with pytest.raises(ValueError, match=rf"{bp.name}: a Bp segment: the index holds Br patches"):
        read_br_queries([real_br_files[0], bp])
    blank = tmp_path / real_br_files[1].name
    with fits.open(real_br_files[1]) as hdus:
        index = next(i for i, h in enumerate(hdus) if h.data is not None)
        hdus[index].data = np.full_like(hdus[index].data, np.nan, dtype=np.float32)
        hdus.writeto(blank, output_verify="ignore")
    with pytest.raises(ValueError, match=rf"{blank.name}: the map has no finite pixel"):
        read_br_queries([blank])
    empty = tmp_path / "empty.Br.fits"
    empty.write_bytes(b"")
    with pytest.raises(SharpReadError, match="empty.Br.fits"):
        read_br_queries([empty])
