"""Evaluation of steering: monotonicity, leakage, targeting, report and figures."""

import json

import numpy as np
import pytest
import scipy.stats
from helpers import toy_generator

from solarjax.steering import evaluate
from solarjax.steering.directions import fit_directions

ALPHAS = np.linspace(-3.0, 3.0, 7)


@pytest.fixture(scope="module")
def directions():
    return fit_directions(toy_generator(), n=1000, symmetry_latents=100, rotations=1)


def test_monotonicity_known_answers():
    up, down = np.arange(7.0), -(np.arange(7.0) ** 3)
    constant, undefined = np.ones(7), np.r_[np.nan, np.ones(6)]
    assert evaluate.monotonicity(np.stack([up, up]), ALPHAS) == pytest.approx(1.0)
    assert evaluate.monotonicity(np.stack([down]), ALPHAS) == pytest.approx(-1.0)
    assert evaluate.monotonicity(np.stack([up, constant]), ALPHAS) == pytest.approx(0.5)
    assert evaluate.monotonicity(np.stack([up, undefined]), ALPHAS) == pytest.approx(1.0)  # NaN row left out
    assert np.isnan(evaluate.monotonicity(np.stack([undefined]), ALPHAS))
    rows = np.random.default_rng(0).normal(size=(5, 7))
    expected = np.mean([scipy.stats.spearmanr(row, ALPHAS).statistic for row in rows])
    assert evaluate.monotonicity(rows, ALPHAS) == pytest.approx(expected, abs=1e-12)


def test_leakage_known_answers():
    # Target rises 2 units per alpha, p by 1 (opposite sign), r not at all; r's scale is irrelevant.
    values = {
        "q": np.stack([2.0 * ALPHAS, 4.0 * ALPHAS]),
        "p": np.stack([-ALPHAS, -2.0 * ALPHAS]),
        "r": np.zeros((2, 7)),
    }
    got = evaluate.leakage(values, ALPHAS, "q", {"q": 1.0, "p": 1.0, "r": 5.0})
    assert got == {"p": pytest.approx(0.5), "r": 0.0}
    # In units of prior standard deviations: p varies 4x more than q in the prior -> 4x less leakage.
    assert evaluate.leakage(values, ALPHAS, "q", {"q": 1.0, "p": 4.0, "r": 1.0})["p"] == pytest.approx(0.125)


def test_default_hold_leaves_out_parallel_normals(directions):
    held = evaluate.default_hold(directions, "psep")
    assert "lead_polarity" not in held  # both are the separation axis in the toy
    assert "tilt" in held and "psep" not in held


def test_directions_are_monotone_and_conditioning_cuts_leakage(directions):
    report = evaluate.evaluate_directions(
        toy_generator(),
        directions,
        names=("psep", "r_value"),
        n_latents=12,
        alphas=ALPHAS,
        hold={"psep": ("tilt",), "r_value": ("tuf",)},
    )
    assert report["psep"]["monotonicity"] > 0.95
    assert report["psep"]["target_change"] > 2.0  # prior standard deviations over alpha in [-3, 3]
    r = report["r_value"]
    assert r["held"] == ["tuf"]
    assert r["monotonicity_conditional"] > 0.7
    assert r["held_leakage"] > 0.1  # R's normal also moves TUF ...
    assert r["held_leakage_ratio"] < 0.5  # ... much less once TUF is held
    assert r["held_leakage_conditional"] == pytest.approx(r["leakage_conditional"]["tuf"])


def test_run_evaluation_writes_report_and_figures(directions, tmp_path):
    requests = (
        {"targets": {"tuf": ("rel", 0.3)}, "hold": ("psep",)},
        {"targets": {"tuf": ("abs", 10.0)}},
    )  # far outside the prior's range
    report = evaluate.run_evaluation(
        toy_generator(),
        directions,
        tmp_path,
        n_latents=6,
        alphas=np.linspace(-2, 2, 5),
        names=("tuf",),
        targeting_latents=6,
        requests=requests,
        steps=150,
    )
    on_disk = json.loads(
        (tmp_path / "report.json").read_text(),
        parse_constant=lambda c: pytest.fail(f"non-JSON constant {c} in report.json"),
    )
    assert on_disk["fingerprint"] == directions.fingerprint
    assert set(on_disk["seconds"]) == {"families", "targeting", "figures"}
    assert all(seconds >= 0 for seconds in on_disk["seconds"].values()) and on_disk["seconds"]["families"] > 0
    assert set(on_disk["families"]["results"]) == {"paper", "piecewise", "local"}
    assert set(on_disk["families"]["results"]["local"]) == {"tuf"}
    assert on_disk["best_method"] in evaluate.FAMILIES
    assert evaluate.load_best_method(tmp_path) == on_disk["best_method"]
    assert evaluate.load_best_method(tmp_path / "missing") == "paper"
    assert set(on_disk["diagnosis"]["quantities"]) == set(directions.names)
    targeting = on_disk["targeting"]
    assert targeting["requested"] == 12 and targeting["in_range"] == 6
    assert targeting["requests"][1]["in_range"] == 0 and targeting["requests"][1]["success_rate"] is None
    assert targeting["success_rate"] >= 5 / 6
    assert targeting["requests"][0]["median_abs_held_change"] < 0.03
    expected = {
        "latent_map_tuf.png",
        "latent_map_psep.png",
        "latent_map_r_value.png",
        "traversal_tuf.png",
        "traversal_psep.png",
        "traversal_r_value.png",
        "traversal_r_value_conditional.png",
        "traversal_tuf_local.png",
    }
    assert set(report["figures"]) == expected
    for name in expected:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_run_evaluation_refuses_other_generator(directions, tmp_path):
    with pytest.raises(ValueError, match="cannot evaluate generator"):
        evaluate.run_evaluation(toy_generator(amplitude=0.5), directions, tmp_path)


def test_undefined_traversals_count_as_failures():
    up = np.arange(7.0)
    rows = np.stack([up, np.r_[np.nan, up[1:]], np.ones(7), -up])
    np.testing.assert_allclose(evaluate.traversal_monotonicity(rows, ALPHAS), [1.0, 0.0, 0.0, -1.0])


def test_bootstrap_interval_known_answers():
    values = np.random.default_rng(0).normal(size=400)
    estimate, low, high = evaluate.bootstrap_interval(np.mean, [values], resamples=500)
    assert estimate == pytest.approx(values.mean())
    half_width = 1.96 * values.std() / np.sqrt(len(values))  # the normal-theory interval
    assert low == pytest.approx(estimate - half_width, abs=0.3 * half_width)
    assert high == pytest.approx(estimate + half_width, abs=0.3 * half_width)
    assert evaluate.bootstrap_interval(np.mean, [np.ones(20)], resamples=50) == (1.0, 1.0, 1.0)


def test_realism_of_unedited_patches_is_neutral():
    from helpers import LATENT_DIM

    from solarjax.steering.directions import map_generated, sample_latents

    z = sample_latents(64, LATENT_DIM, seed=5)
    data = map_generated(toy_generator(), sample_latents(64, LATENT_DIM, seed=6))
    same = evaluate.realism(toy_generator(), z, z, data)
    assert same["frechet_edited_unedited"] == pytest.approx(0.0, abs=1e-6)
    assert same["frechet_ratio"] == pytest.approx(1.0)
    assert same["ks_edited_unedited"]["tuf"] == 0.0
    moved = z.copy()
    moved[:, 0] += 3.0  # much more flux: off the data
    assert evaluate.realism(toy_generator(), moved, z, data)["frechet_ratio"] > 1.5


def test_families_on_the_same_latents_with_intervals(directions):
    report = evaluate.evaluate_families(
        toy_generator(),
        directions,
        names=("tuf",),
        n_latents=8,
        alphas=np.linspace(-2, 2, 5),
        hold={"tuf": ("psep",)},
        resamples=200,
    )
    assert report["settings"]["keep_norm"] is True
    for method in evaluate.FAMILIES:
        row = report["results"][method]["tuf"]
        assert row["monotonicity"]["low"] <= row["monotonicity"]["value"] <= row["monotonicity"]["high"]
        assert row["monotonicity"]["value"] > 0.9, method
        assert set(row["leakage"]) == {"psep"}
        assert row["realism"]["frechet_edited_unedited"] >= 0
    local = report["results"]["local"]["tuf"]
    assert local["monotonicity"]["value"] == pytest.approx(1.0) and local["leakage"]["psep"]["value"] < 0.05
    assert report["best"] in evaluate.FAMILIES


def test_wilson_interval_known_answers():
    from solarjax.steering.evaluate import wilson_interval

    low, high = wilson_interval(7, 10)  # textbook: 0.397 .. 0.892
    assert low == pytest.approx(0.3968, abs=1e-3) and high == pytest.approx(0.8922, abs=1e-3)
    assert wilson_interval(20, 20)[1] == 1.0 and wilson_interval(20, 20)[0] == pytest.approx(0.8389, abs=1e-3)
    assert all(np.isnan(wilson_interval(0, 0)))


def test_matched_rows_known_answers():
    reference = np.array([3.0, 1.0, np.nan, 2.0])
    rows = evaluate.matched_rows(reference, np.array([1.1, 2.6, np.nan, 10.0, -5.0]))
    np.testing.assert_array_equal(rows, [1, 0, 3, 0, 1])  # nearest; NaN -> the median (2.0); clipped ends
    with pytest.raises(ValueError, match="no finite reference"):
        evaluate.matched_rows(np.array([np.nan]), np.array([1.0]))


def _speckled_apply(params, z):
    """The toy bipole plus +-0.4 checkerboard speckle scaled by relu(z[99] - 4): off the manifold only where z[99]
    is far beyond anything z ~ N(0, I) draws."""
    import jax.numpy as jnp
    from helpers import SIZE, toy_apply

    images = toy_apply(params, z)
    checker = jnp.asarray((-1.0) ** (np.add.outer(np.arange(SIZE), np.arange(SIZE)) % 2), jnp.float32)
    speckle = 0.4 * jnp.clip(z[:, 99] - 4.0, 0.0, 1.0)[:, None, None, None] * checker[None, :, :, None]
    return images + speckle


def test_matched_realism_is_neutral_and_forgives_an_on_manifold_move():
    """Unedited against unedited is 1; a move to more flux that stays a toy bipole is far from the data as a
    whole (raw ratio > 1.5) but much nearer to data patches of the same flux. The generated baseline (unedited
    pool patches matched on the edited target values): exactly 1 when the pool is the edited latents, near 1 for
    that move, far above it for an edit that adds speckle the generator never makes at z ~ N(0, I)."""
    from helpers import LATENT_DIM

    from solarjax.steering.directions import LatentGenerator, map_generated, sample_latents

    speckled = LatentGenerator(
        _speckled_apply, toy_generator().params, fingerprint="toy-speckled", latent_dim=LATENT_DIM
    )
    z = sample_latents(64, LATENT_DIM, seed=5)
    data = map_generated(toy_generator(), sample_latents(256, LATENT_DIM, seed=6))
    values = evaluate.image_quantities(data)
    same = evaluate.matched_frechet_ratio(
        speckled, z, z, "tuf", data, values, pool=(z, evaluate.image_quantities(map_generated(speckled, z)))
    )
    assert same["matched_frechet_ratio"] == pytest.approx(1.0)
    assert same["generated_matched_ratio"] == pytest.approx(1.0)
    pool = evaluate.generated_pool(speckled, 256, seed=7)
    assert pool[0].shape == (256, LATENT_DIM) and pool[1]["tuf"].shape == (256,) and pool[0][:, 99].max() < 4.0
    moved = z.copy()
    moved[:, 0] += 1.5
    raw = evaluate.realism(toy_generator(), moved, z, data)["frechet_ratio"]
    matched = evaluate.matched_frechet_ratio(speckled, moved, z, "tuf", data, values, pool=pool)
    assert raw > 1.5 and matched["matched_frechet_ratio"] < 0.5 * raw
    assert matched["generated_matched_ratio"] < 2.0
    speckle = z.copy()
    speckle[:, 99] = 5.0
    off = evaluate.matched_frechet_ratio(speckled, speckle, z, "tuf", data, values, pool=pool)
    assert off["generated_matched_ratio"] > 50.0 * matched["generated_matched_ratio"]


def test_one_evaluations_memo_gives_the_same_figures_and_summarises_each_set_once():
    """`realism` and `matched_frechet_ratio` with a shared memo give the figures they give without one, and a
    second family's edit of the same base latents generates and summarises only its edited patches."""
    from helpers import LATENT_DIM

    from solarjax.steering.directions import map_generated, sample_latents

    generator = toy_generator()
    z = sample_latents(16, LATENT_DIM, seed=5)
    data = map_generated(generator, sample_latents(64, LATENT_DIM, seed=6))
    values = evaluate.image_quantities(data)
    pool = evaluate.generated_pool(generator, 64, seed=7)
    first, second = z.copy(), z.copy()
    first[:, 0] += 1.5
    second[:, 1] -= 1.5
    summaries: dict = {}
    for edited in (first, second):
        plain = {
            **evaluate.realism(generator, edited, z, data),
            **evaluate.matched_frechet_ratio(generator, edited, z, "tuf", data, values, pool=pool),
        }
        before = {key for key in summaries if key[0] == "generated"}
        memo = {
            **evaluate.realism(generator, edited, z, data, summaries=summaries),
            **evaluate.matched_frechet_ratio(generator, edited, z, "tuf", data, values, pool=pool, summaries=summaries),
        }
        for key in ("frechet_ratio", "frechet_edited_unedited", "matched_frechet_ratio", "generated_matched_ratio"):
            assert memo[key] == pytest.approx(plain[key], rel=1e-5), key
        added = {key for key in summaries if key[0] == "generated"} - before
        assert len(added) == (3 if edited is first else 2)  # z's patches are summarised once, for both edits
