"""Differentiable targeting of physical quantities (solarjax.steering.target)."""

import jax
import numpy as np
import pytest
from helpers import LATENT_DIM, toy_generator

from solarjax import physics
from solarjax.steering import target as target_lib
from solarjax.steering.directions import sample_latents
from solarjax.steering.target import parse_target, prior_scales, steer_to

N = 8
STEPS = 150


@pytest.fixture(scope="module", autouse=True)
def no_persistent_cache_writes():
    """XLA aborted the test process twice while serialising a `steer_to` CPU executable for the persistent
    compilation cache (JAX writes only programs that took longer than the cache's minimum compile time, so
    only on a loaded machine); this module's programs stay in the in-memory cache."""
    name = "jax_persistent_cache_min_compile_time_secs"
    previous = getattr(jax.config, name)
    jax.config.update(name, 1e9)
    yield
    jax.config.update(name, previous)


@pytest.fixture(scope="module")
def scales():
    return prior_scales(toy_generator())


@pytest.fixture(scope="module")
def z0():
    return sample_latents(N, LATENT_DIM, seed=5)


def test_more_flux_same_separation(scales, z0):
    result = steer_to(toy_generator(), z0, {"tuf": ("rel", 0.5)}, hold=["psep"], steps=STEPS, scales=scales)
    np.testing.assert_allclose(result.targets["tuf"], 1.5 * result.initial_quantities["tuf"], rtol=1e-6)
    assert result.success.mean() >= 0.9
    ratio = result.quantities["tuf"] / result.initial_quantities["tuf"]
    assert np.median(np.abs(ratio - 1.5)) < 0.01
    assert np.abs(result.held_change["psep"]).max() < 0.03  # PSEP held within 3%
    # The images really are the generator's patches of the returned latents.
    np.testing.assert_allclose(result.images, np.asarray(toy_generator()(result.latents)), atol=1e-5)
    # The prior term keeps the latents on the Gaussian shell.
    np.testing.assert_allclose(np.linalg.norm(result.latents, axis=1), np.sqrt(LATENT_DIM), rtol=0.05)
    assert result.loss[-1] < 0.01 * result.loss[0]
    assert result.loss.shape == (STEPS,)


def test_absolute_target_and_one_compilation(scales, z0):
    target = float(
        np.median(
            steer_to(toy_generator(), z0, {"psep": ("rel", 0.0)}, steps=3, rounds=1, scales=scales).initial_quantities[
                "psep"
            ]
        )
    )
    compiled = target_lib._steer_program._cache_size()
    result = steer_to(toy_generator(), z0, {"psep": ("abs", 1.2 * target)}, hold=["tuf"], steps=STEPS, scales=scales)
    assert target_lib._steer_program._cache_size() <= compiled + 1
    compiled = target_lib._steer_program._cache_size()
    again = steer_to(
        toy_generator(), z0[::-1].copy(), {"psep": ("abs", 0.9 * target)}, hold=["tuf"], steps=STEPS, scales=scales
    )
    other = steer_to(toy_generator(), z0, {"tuf": ("rel", 0.2), "tilt": ("rel", 0.0)}, steps=STEPS, scales=scales)
    # fewer latents than MIN_BATCH run padded in the same program, each latent as it ran among eight
    few = steer_to(toy_generator(), z0[:3], {"psep": ("abs", 1.2 * target)}, hold=["tuf"], steps=STEPS, scales=scales)
    assert target_lib._steer_program._cache_size() == compiled  # new values, targets and holds: the same program
    np.testing.assert_allclose(few.latents, result.latents[:3], atol=1e-5)
    assert other.success.mean() >= 0.8 and set(other.targets) == {"tuf", "tilt"} and other.held_change == {}
    for got, wanted in ((result, 1.2 * target), (again, 0.9 * target)):
        assert got.success.mean() >= 0.9
        np.testing.assert_allclose(np.median(got.quantities["psep"]), wanted, rtol=0.01)
        assert np.abs(got.held_change["tuf"]).max() < 0.05


def test_undefined_requests_fail_cleanly(scales):
    # A weak generator leaves some patches with an empty polarity: relative targets are undefined.
    weak = toy_generator(amplitude=0.17)
    z0 = sample_latents(16, LATENT_DIM, seed=3)
    result = steer_to(weak, z0, {"tuf": ("rel", 0.2)}, hold=["psep"], steps=30, scales=scales)
    undefined = ~np.isfinite(result.initial_quantities["tuf"])
    assert 0 < undefined.sum() < len(z0)
    assert not result.success[undefined].any()
    assert np.isfinite(result.latents).all()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("+50%", ("rel", 0.5)),
        ("-20%", ("rel", -0.2)),
        ("+2.5%", ("rel", 0.025)),
        ("x2", ("rel", 1.0)),
        ("0.3", ("abs", 0.3)),
        ("-1e-2", ("abs", -0.01)),
    ],
)
def test_parse_target(text, expected):
    kind, value = parse_target(text)
    assert kind == expected[0] and value == pytest.approx(expected[1])


def test_bad_requests(z0, scales):
    g = toy_generator()
    with pytest.raises(ValueError, match="not a relative change"):
        parse_target("lots")
    with pytest.raises(ValueError, match="unknown quantity 'flux'"):
        steer_to(g, z0, {"flux": ("rel", 0.5)}, scales=scales)
    with pytest.raises(ValueError, match="both targets and held"):
        steer_to(g, z0, {"tuf": ("rel", 0.5)}, hold=["tuf"], scales=scales)
    with pytest.raises(ValueError, match="'rel', v"):
        steer_to(g, z0, {"tuf": ("more", 0.5)}, scales=scales)
    with pytest.raises(ValueError, match="at least one target"):
        steer_to(g, z0, {}, scales=scales)
    with pytest.raises(ValueError, match=r"\[N, 100\]"):
        steer_to(g, z0[:, :10], {"tuf": ("rel", 0.5)}, scales=scales)
    with pytest.raises(ValueError, match="prior scale for 'psep'"):
        steer_to(g, z0, {"tuf": ("rel", 0.5)}, hold=["psep"], scales={"tuf": 1.0, "psep": float("nan")})
    with pytest.raises(ValueError, match="multiple of rounds"):
        steer_to(g, z0, {"tuf": ("rel", 0.5)}, steps=10, rounds=3, scales=scales)


@pytest.mark.skip(
    reason="XLA's CPU compiler aborted the process while compiling this steer_to program in 2 of 3 "
    "full-suite runs (compile, not cache read); kept out until the crash is reduced and reported"
)
def test_paper_generator_gradients_flow(scales):
    # Through the paper's flax generator (random parameters): finite latents, falling loss.
    import jax
    import jax.numpy as jnp

    from solarjax.models.gan import make_models
    from solarjax.steering.directions import LatentGenerator

    model, _ = make_models("simple", "matmul")
    generator = LatentGenerator(model.apply, model.init(jax.random.key(0), jnp.zeros((1, LATENT_DIM))), "random-simple")
    result = steer_to(
        generator, sample_latents(4, LATENT_DIM, seed=2), {"tuf": ("rel", 0.2)}, steps=30, rounds=1, scales=scales
    )
    assert np.isfinite(result.latents).all()
    assert result.loss[-1] < 0.75 * result.loss[0]


def test_selection_on_exact_quantities_recovers_misses_of_the_last_round(scales):
    """12 Adam steps undershoot +30% TUF (the last round's latents all miss, by 8-15%); the exact line
    search along the final displacement finds latents that meet it, and never loses a met request."""
    z0 = sample_latents(16, LATENT_DIM, seed=5)
    result = steer_to(toy_generator(), z0, {"tuf": ("rel", 0.3)}, hold=["psep"], steps=12, scales=scales)
    assert result.unrefined_success.sum() <= 2 and result.success.sum() >= 8
    assert np.all(result.success >= result.unrefined_success)
    np.testing.assert_array_equal(result.success, np.abs(result.relative_error["tuf"]) <= 0.05)
    exact = physics.quantities(toy_generator()(result.latents))  # the returned latents' own figures
    np.testing.assert_allclose(result.quantities["tuf"], np.asarray(exact["tuf"]), rtol=1e-4)


def test_trajectory_candidates_catch_an_oscillating_path(scales, monkeypatch):
    """Adam at learning rate 1 swings around +10% TUF; with every step of the round a candidate (no line
    search) the selection keeps the steps that met it (4 -> 12 of 16 on this toy), and it never picks a latent
    farther from the target than the last one (an offset like 1e6 + error in float32 once did)."""
    z0 = sample_latents(16, LATENT_DIM, seed=5)
    request = {"tuf": ("rel", 0.1)}
    kwargs = dict(steps=12, rounds=1, learning_rate=1.0, scales=scales)
    last = steer_to(toy_generator(), z0, request, refine=False, **kwargs)
    monkeypatch.setattr(target_lib, "LINE_SEARCH", ())
    monkeypatch.setattr(target_lib, "TRAJECTORY_CANDIDATES", 12)
    chosen = steer_to(toy_generator(), z0, request, **kwargs)
    assert np.all(np.abs(chosen.relative_error["tuf"]) <= np.abs(last.relative_error["tuf"]) + 1e-6)
    assert chosen.success.sum() >= last.success.sum() + 5
    np.testing.assert_array_equal(chosen.unrefined_success, last.success)  # same optimisation
