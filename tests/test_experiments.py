"""experiments/: each figure script on the quick demo (synthetic) and on the real SHARP frames (fits),
with small sizes; and the realism diagnostics against analytic answers."""

import json

import numpy as np
import pytest
import scipy.stats
from PIL import Image

from experiments import common, inversion_map, latent_maps, realism, retrieval_examples, traversals
from solarjax.train import quality


def _json(path):
    return json.loads(path.read_text())


def _common_args(workdir, out, *extra):
    return ["--workdir", str(workdir), "--out", str(out), *map(str, extra)]


@pytest.fixture(scope="module")
def fits_data_dir(tmp_path_factory, real_br_files):
    """sharp_patches/fits built from the 40 real Br frames (train 18, validation 11, test 11)."""
    from data_builders.sharp_patches import build

    data_dir = tmp_path_factory.mktemp("fits_tfds")
    build("fits", data_dir, manual_dir=real_br_files[0].parent)
    return data_dir


# ------------------------------------------------------------------------------ realism diagnostics
def _power_law_field(size: int, exponent: float, seed: int) -> np.ndarray:
    """A random field [size, size] whose power spectrum is |k|^exponent (random phases)."""
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(size) * size, np.fft.fftfreq(size) * size, indexing="ij"))
    amplitude = np.where(k > 0, np.maximum(k, 1e-9) ** (exponent / 2), 0.0)
    phases = np.exp(2j * np.pi * np.random.default_rng(seed).random((size, size)))
    return np.real(np.fft.ifft2(amplitude * phases))


@pytest.mark.parametrize("exponent", [0.0, -2.0, -3.0])
def test_spectral_slope_recovers_power_law(exponent):
    fields = np.stack([_power_law_field(128, exponent, seed) for seed in range(4)])
    fields = 0.5 * fields / np.abs(fields).max()
    k, power = quality.radial_power_spectrum(fields)
    assert k[0] == 1 and k[-1] == 64
    slopes = quality.spectral_slope(k, power)
    np.testing.assert_allclose(slopes, exponent, atol=0.25)


def test_noise_width_and_gradient_analytic():
    rng = np.random.default_rng(0)
    noise = 0.01 * rng.standard_normal((3, 128, 128))  # 10 G Gaussian noise, all quiet (|s| < 0.05 almost surely)
    np.testing.assert_allclose(quality.noise_width(noise), 10.0, rtol=0.03)
    ramp = np.broadcast_to(0.002 * np.arange(128.0), (2, 128, 128))  # Br grows 2 G per column
    np.testing.assert_allclose(quality.mean_gradient(ramp[..., None]), 2.0, rtol=1e-9)
    strong = np.full((1, 128, 128), 0.5)  # no quiet pixel
    assert np.isnan(quality.noise_width(strong)[0])


def test_two_sample_test_cannot_sort_one_distribution_and_sorts_smoothed_from_white_noise():
    """Two sets of white noise (20 G) cannot be told apart (accuracy near 0.5); white from power-law noise of the
    same rms (power |k|^-3, smooth) is sorted on the upper band powers, which the single-value ranking names."""
    rng = np.random.default_rng(0)
    white = [0.02 * rng.standard_normal((60, 128, 128, 1)) for _ in range(2)]
    smooth = np.stack([_power_law_field(128, -3.0, seed) for seed in range(60)])[..., None]
    smooth = 0.02 * smooth / smooth.std(axis=(1, 2, 3), keepdims=True)
    values = [realism.diagnostics(images) for images in (*white, smooth)]
    assert {"quiet_coherence", "log_band_power_k38-64", "orientation_contrast_k38-64"} <= set(values[0])
    same = realism.two_sample_test(values[0], values[1], resamples=200)
    assert same["patches"] == [60, 60]
    assert abs(same["logistic"]["accuracy"] - 0.5) < 0.2
    low, high = same["logistic"]["interval"]
    assert low <= same["logistic"]["accuracy"] <= high
    apart = realism.two_sample_test(values[0], values[2], resamples=200)
    assert apart["logistic"]["accuracy"] > 0.95 and apart["boosted_trees"]["accuracy"] > 0.95
    assert next(iter(apart["single_value"].values())) > 0.95


# ------------------------------------------------------------------------------------ the scripts
def test_realism_on_demo(demo_workdir, tmp_path):
    result = realism.main(_common_args(demo_workdir, tmp_path, "--num", 48))
    assert (tmp_path / "realism.png").stat().st_size > 10_000
    saved = _json(tmp_path / "realism.json")
    assert saved["num_real"] == saved["num_generated"] == 48
    assert set(saved["table"]) >= {"tuf", "psep", "r_value", *realism.DIAGNOSTICS}
    for name, row in saved["table"].items():
        assert row["ks"] is None or 0.0 <= row["ks"] <= 1.0, name
    # TUF is defined for every patch, so its KS distance (48 against 48) is a whole number of 48ths, above 0.
    tuf_ks = saved["table"]["tuf"]["ks"] * 48
    assert tuf_ks >= 1 and abs(tuf_ks - round(tuf_ks)) < 1e-6
    assert saved["table"]["noise_width_gauss"]["median_real"] > 0
    assert result["table"]["mean_gradient_gauss_per_pixel"]["ks"] >= 0


def test_latent_maps_on_demo(demo_workdir, tmp_path):
    latent_maps.main(_common_args(demo_workdir, tmp_path, "--num", 200, "--pairs", "tuf:psep"))
    saved = _json(tmp_path / "latent_maps.json")
    assert {"latent_map_tuf_psep.png", "latent_map_tuf.png", "latent_map_psep.png"} <= set(saved["figures"])
    assert all((tmp_path / f).is_file() for f in saved["figures"])
    generator = common.load_generator(demo_workdir)  # the cosine of the two unit normals, recomputed
    directions = common.load_directions(demo_workdir, generator)
    expected = float(directions.normal("tuf") @ directions.normal("psep"))
    assert saved["pairs"]["tuf:psep"]["cosine"] == pytest.approx(expected, abs=1e-6)
    tuf = saved["quantities"]["tuf"]
    assert 0.5 < tuf["boundary_accuracy"] <= 1.0  # the TUF boundary separates high from low flux
    assert tuf["spearman_with_x"] > 0.3


def test_boundary_line_holds_the_second_boundary(demo_workdir):
    generator = common.load_generator(demo_workdir)
    directions = common.load_directions(demo_workdir, generator)
    n_a, u, cosine = latent_maps.plane(directions, "tuf", "psep")
    n_b, c_a, c_b = directions.normal("psep"), directions.intercept("tuf"), directions.intercept("psep")
    z = np.random.default_rng(0).standard_normal((5, generator.latent_dim))
    z -= ((z @ n_b + c_b) / (n_b @ n_b))[:, None] * n_b  # onto psep's boundary
    np.testing.assert_allclose(z @ n_b + c_b, 0.0, atol=1e-9)
    x, y = z @ n_a + c_a, z @ u
    np.testing.assert_allclose(latent_maps.boundary_line(x, cosine, c_a, c_b), y, atol=1e-9)


def test_traversals_on_demo(demo_workdir, tmp_path):
    traversals.main(
        _common_args(
            demo_workdir, tmp_path, "--num", 8, "--traversals", "tuf", "tuf:psep", "--frames", 3, "--gif-frames", 4
        )
    )
    saved = _json(tmp_path / "traversals.json")
    assert saved["traversals"]["tuf"]["monotonicity"] > 0.8  # TUF grows along its normal
    assert saved["traversals"]["tuf"]["target_change"] > 0
    assert saved["traversals"]["tuf:psep"]["held"] == ["psep"]
    assert len(saved["traversals"]["tuf"]["curves"]["tuf"]["median"]) == 13
    gif = Image.open(tmp_path / "steered.gif")
    assert gif.n_frames == saved["gif"]["frames"] == 6  # -a..a in 4, back in 2
    assert (tmp_path / "traversals.png").stat().st_size > 10_000


def test_traversal_names_are_checked(demo_workdir, tmp_path):
    with pytest.raises(ValueError, match="no direction for \\['flux'\\]"):
        traversals.main(_common_args(demo_workdir, tmp_path, "--traversals", "flux"))
    with pytest.raises(SystemExit):
        traversals.main(_common_args(tmp_path / "missing", tmp_path))


def test_retrieval_examples_on_demo(demo_workdir, tmp_path):
    retrieval_examples.main(_common_args(demo_workdir, tmp_path, "--queries", "heldout", "--num", 40))
    saved = _json(tmp_path / "retrieval_examples.json")
    assert saved["rows"] == 800 and saved["database"] == "sharp_patches/synthetic:train"
    table = saved["sets"]["heldout"]["correlations"]
    assert set(table) == {"ssl", "pixel_l2", "physics_euclidean", "physics_mahalanobis", "random"}
    for method in table.values():
        for row in method.values():
            assert row["spearman"] is None or -1.0 <= row["spearman"] <= 1.0
    # Matching on the quantities themselves beats a random match.
    assert table["physics_euclidean"]["tuf"]["spearman"] > 0.9 > table["random"]["tuf"]["spearman"] + 0.3
    assert 0.0 <= saved["sets"]["heldout"]["truth_agreement"]["ssl"]["truth_n_bipoles"] <= 1.0
    for name in ("query_matches.png", "query_vs_match.png", "correlations.png"):
        assert (tmp_path / "heldout" / name).is_file()
    assert not (tmp_path / "table").exists()  # the work directory's index was used


def test_retrieval_and_inversion_on_real_sharps(demo_workdir, fits_data_dir, tmp_path):
    fits = ["--dataset", "fits", "--data-dir", fits_data_dir]
    retrieval_examples.main(
        _common_args(demo_workdir, tmp_path / "retrieval", *fits, "--queries", "generated", "--num", 8)
    )
    saved = _json(tmp_path / "retrieval" / "retrieval_examples.json")
    assert saved["rows"] == 18 and saved["database"] == "sharp_patches/fits:train"
    assert (tmp_path / "retrieval" / "table" / "table.json").is_file()  # the real split, embedded
    generated = saved["sets"]["generated"]
    assert generated["queries"] == "8 generated patches, seed 23"
    assert generated["correlations"]["random"]["tuf"]["pairs"] <= 8
    assert (tmp_path / "retrieval" / "generated" / "query_matches.png").is_file()

    inversion_map.main(
        _common_args(demo_workdir, tmp_path / "inversion", *fits, "--num", 6, "--steps", 5, "--restarts", 1)
    )
    saved = _json(tmp_path / "inversion" / "inversion_map.json")
    assert saved["num_patches"] == 6 and len(saved["patches"]) == 6
    for row in saved["patches"]:
        assert row["error"] > 0 and -90 <= row["lon_deg"] <= 90 and -90 <= row["lat_deg"] <= 90
        assert row["harpnum"] > 0
    errors = [row["error"] for row in saved["patches"]]  # the saved correlation, recomputed from its rows
    abs_lon = [abs(row["lon_deg"]) for row in saved["patches"]]
    assert saved["spearman_error_vs_abs_lon"] == pytest.approx(
        scipy.stats.spearmanr(abs_lon, errors).statistic, abs=1e-9
    )
    assert (tmp_path / "inversion" / "inversion_map.png").is_file()
