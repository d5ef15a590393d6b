"""experiments.cme_search's search step on synthetic CMEs, with stand-in encoders (no training): every
image method finds a query's exact copy in the database, and the scoring sees it."""

import types

import numpy as np

from experiments import cme_search
from solarjax import cme_physics, cme_retrieval
from solarjax.data import cme_synthetic
from solarjax.retrieval.evaluate import thumbnails


def test_top1_matches_find_exact_copies_and_score_perfectly():
    batch = cme_synthetic.generate(40, seed=9)
    images = batch.images[..., None]
    measured = {k: np.asarray(v, np.float64) for k, v in cme_physics.quantities(images).items()}
    stand_in = types.SimpleNamespace(embed=lambda x: thumbnails(np.asarray(x)))  # an "encoder": 8x8 block means
    database = {"image": images, "embedding": thumbnails(images), **measured}
    picked = np.array([3, 17, 25, 31, 38])
    queries = {"image": images[picked], **{k: v[picked] for k, v in measured.items()}}
    matches = cme_search.top1_matches(queries, database, stand_in, stand_in, seed=0)
    assert list(matches) == list(cme_search.METHODS)
    for method in ("ssl", "pixel_l2", "thumbnail_8x8", "random_encoder"):
        np.testing.assert_array_equal(matches[method], picked)
    assert ((0 <= matches["random"]) & (matches["random"] < 40)).all()
    report = cme_retrieval.score_matches(
        cme_retrieval.scoring_values(queries),
        cme_retrieval.scoring_values(database),
        {m: matches[m] for m in ("ssl", "random")},
        num_resamples=50,
    )
    assert report["front_height_rsun"]["methods"]["ssl"]["pearson"]["value"] == 1.0
