"""Artefact identity is content: a generator's fingerprint covers its weights, so artefacts fitted on one
checkpoint are refused for another of the same architecture and config."""

import numpy as np
import pytest

from solarjax import gan, steering
from solarjax.fingerprint import config_fingerprint, weights_fingerprint
from solarjax.steering.directions import GeneratorMismatchError


def test_weights_fingerprint_follows_every_weight_and_label():
    weights = {"dense": {"kernel": np.ones((3, 2), np.float32), "bias": np.zeros(2, np.float32)}}
    base = weights_fingerprint("model", weights=weights)
    assert base == weights_fingerprint("model", weights={k: dict(v) for k, v in weights.items()})
    nudged = {"dense": {"kernel": weights["dense"]["kernel"].copy(), "bias": weights["dense"]["bias"]}}
    nudged["dense"]["kernel"][2, 1] += 1e-6
    assert weights_fingerprint("model", weights=nudged) != base
    assert weights_fingerprint("other model", weights=weights) != base
    assert (
        config_fingerprint({"a": 1, "b": [2]}) == config_fingerprint({"b": [2], "a": 1}) != config_fingerprint({"a": 2})
    )


def test_directions_of_one_checkpoint_are_refused_for_another_of_the_same_config(demo_workdir, tmp_path):
    steps = sorted(int(p.name) for p in (demo_workdir / "gan" / "checkpoints").iterdir() if p.name.isdigit())
    assert len(steps) >= 2
    first, last = gan.load(demo_workdir / "gan", step=steps[0]), gan.load(demo_workdir / "gan", step=steps[-1])
    assert first.config["model"] == last.config["model"]
    assert first.fingerprint != last.fingerprint
    assert gan.load(demo_workdir / "gan", step=steps[-1]).fingerprint == last.fingerprint
    directions = steering.fit_directions(first, quantities=("tuf",), n=256, diagnose=False, split=None)
    directions.save(tmp_path / "directions")
    assert steering.load_directions(tmp_path / "directions", first).fingerprint == first.fingerprint
    with pytest.raises(GeneratorMismatchError):
        steering.load_directions(tmp_path / "directions", last)
