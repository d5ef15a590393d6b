"""Local steering paths and the family interface (solarjax.steering.local, solarjax.steering.families)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import LATENT_DIM, toy_generator

from solarjax import physics
from solarjax.steering import families, local
from solarjax.steering.directions import fit_directions, latent_quantities, sample_latents

ALPHAS = np.linspace(-2.0, 2.0, 9)


@pytest.fixture(scope="module")
def z():
    return sample_latents(6, LATENT_DIM, seed=3)


@pytest.fixture(scope="module")
def tuf_path(z):
    return local.local_traversal(toy_generator(), z, "tuf", hold=("psep",), alphas=ALPHAS)


def test_local_path_raises_the_target_and_holds_the_other(z, tuf_path):
    latents, values = tuf_path
    assert latents.shape == (6, 9, LATENT_DIM)
    np.testing.assert_allclose(latents[:, 4], z, atol=1e-6)  # alpha = 0 is the base latent
    assert np.all(np.diff(values["tuf"], axis=1) > 0)  # TUF rises at every step
    prior = latent_quantities(toy_generator(), sample_latents(128, LATENT_DIM, seed=0))
    tuf_change = (values["tuf"][:, -1] - values["tuf"][:, 0]) / np.nanstd(prior["tuf"])
    psep_change = np.abs(values["psep"][:, -1] - values["psep"][:, 0]) / np.nanstd(prior["psep"])
    assert np.all(tuf_change > 0.5)
    assert np.all(psep_change < 0.05 * tuf_change)  # PSEP held
    # The exact quantities returned are those of the returned latents.
    again = latent_quantities(toy_generator(), latents.reshape(-1, LATENT_DIM))["tuf"].reshape(6, 9)
    np.testing.assert_allclose(again, values["tuf"], rtol=1e-4)


def test_local_path_stays_on_the_shell(z, tuf_path):
    latents, _ = tuf_path
    norms = np.linalg.norm(latents.astype(np.float64), axis=-1)
    np.testing.assert_allclose(norms / np.linalg.norm(z, axis=1)[:, None], 1.0, atol=1e-5)


def test_local_direction_is_tangent_and_orthogonal_to_held_gradients(z):
    generator = toy_generator()
    point = jnp.asarray(z[0])
    names = ("tuf", "psep", "tilt")
    gradients = np.asarray(
        jax.jit(
            jax.jacrev(
                lambda v: jnp.stack(
                    [physics.smooth_quantities(generator.apply_fn(generator.params, v[None]))[n][0] for n in names]
                )
            )
        )(point)
    )
    direction = np.asarray(
        jax.jit(local.local_direction, static_argnums=(0, 3, 4))(
            generator.apply_fn, generator.params, point, "tuf", ("psep", "tilt")
        )
    )
    assert np.linalg.norm(direction) == pytest.approx(1.0, abs=1e-5)
    for gradient in gradients[1:]:
        assert abs(direction @ gradient) < 1e-4 * np.linalg.norm(gradient)
    assert abs(direction @ z[0]) < 1e-4 * np.linalg.norm(z[0])
    assert direction @ gradients[0] > 0  # it raises TUF


def test_off_grid_alphas_and_one_sided_paths(z, tuf_path):
    generator = toy_generator()
    latents, values = local.local_traversal(generator, z, "tuf", ("psep",), alphas=[-2.0, -0.7, 0.0, 0.3, 1.1, 2.0])
    assert latents.shape == (6, 6, LATENT_DIM)
    np.testing.assert_allclose(latents[:, [0, 2, 5]], tuf_path[0][:, [0, 4, 8]], atol=1e-6)  # grid points agree
    np.testing.assert_allclose(np.linalg.norm(latents, axis=-1) / np.linalg.norm(z, axis=1)[:, None], 1.0, atol=1e-5)
    assert np.all(np.diff(values["tuf"], axis=1) > 0)  # interpolated points in order
    raised = local.local_path(generator, z, "tuf", ("psep",), alphas=[0.0, 2.0])  # no downward half
    np.testing.assert_allclose(raised, tuf_path[0][:, [4, 8]], atol=1e-6)


def test_bad_local_arguments(z):
    with pytest.raises(ValueError, match="unknown quantity"):
        local.local_path(toy_generator(), z, "flux", alphas=[1.0])
    with pytest.raises(ValueError, match="step must be positive"):
        local.local_path(toy_generator(), z, "tuf", alphas=[1.0], step=0.0)
    with pytest.raises(ValueError, match="z must be"):
        local.local_path(toy_generator(), z[:, :5], "tuf", alphas=[1.0])


def test_every_family_through_one_interface(z):
    generator = toy_generator()
    directions = fit_directions(generator, n=600, symmetry_latents=64, rotations=1)
    for method in families.METHODS:
        latents = families.steer_latents(method, generator, directions, z, "tuf", hold=("psep",), alphas=ALPHAS)
        assert latents.shape == (6, 9, LATENT_DIM)
        np.testing.assert_allclose(
            np.linalg.norm(latents, axis=-1) / np.linalg.norm(z, axis=1)[:, None], 1.0, atol=1e-5
        )  # keep_norm by default
        values = latent_quantities(generator, latents.reshape(-1, LATENT_DIM))["tuf"].reshape(6, 9)
        assert np.mean(values[:, -1] > values[:, 0]) == 1.0, method
    with pytest.raises(ValueError, match="method must be one of"):
        families.steer_latents("global", generator, directions, z, "psep")
    with pytest.raises(ValueError, match="needs fitted directions"):
        families.steer_latents("paper", generator, None, z, "psep")


def test_a_path_that_also_differentiates_the_evaluations_quantities_reuses_its_program(z, tuf_path):
    """A traversal of one target with its hold (the report's figure) computes the same latents whether or not it
    also differentiates other quantities, and with the set an evaluation used it compiles nothing new."""
    generator, extra = toy_generator(), ("tuf", "psep", "area")
    local.local_traversal(generator, z, "psep", hold=("tuf",), alphas=ALPHAS, also_differentiate=extra)
    compiled = local.path_program._cache_size()
    latents = families.steer_latents(
        "local", generator, None, z, "tuf", hold=("psep",), alphas=ALPHAS, also_differentiate=extra
    )
    assert local.path_program._cache_size() == compiled
    np.testing.assert_allclose(latents, tuf_path[0], atol=1e-5)


def test_polarity_guard_keeps_both_polarities_while_lowering_flux():
    """A weak toy (peak field 110-330 G against the 150 G threshold): lowering TUF by 3 latent units empties
    the polarities of every path without the guard (every quantity undefined); the guard stops each polarity
    near `POLARITY_FLOOR`, keeps every patch defined, and TUF still falls monotonically."""
    generator = toy_generator(amplitude=0.22)
    z = np.array(sample_latents(4, LATENT_DIM, seed=7))
    z[:, 0] = -0.5  # start near 1.3 x threshold
    alphas = np.linspace(-3.0, 0.0, 7)
    _, unguarded = local.local_traversal(generator, z, "tuf", alphas=alphas, keep_polarities=False)
    assert np.all(np.isnan(unguarded["tuf"][:, 0]))  # both polarities gone at alpha -3
    latents, guarded = local.local_traversal(generator, z, "tuf", alphas=alphas)
    assert np.isfinite(guarded["tuf"]).all() and np.isfinite(guarded["area"]).all()
    assert np.all(np.diff(guarded["tuf"], axis=1) >= -1e-7)  # lower at every more negative alpha
    assert np.all(guarded["tuf"][:, 0] < 0.9 * guarded["tuf"][:, -1])  # and it did fall
    areas = np.asarray(local.polarity_areas(generator(latents[:, 0])))
    assert areas.min() > 0.5 * local.POLARITY_FLOOR  # held near the floor
    np.testing.assert_allclose(np.linalg.norm(latents, axis=-1) / np.linalg.norm(z, axis=1)[:, None], 1.0, atol=1e-5)


def test_polarity_areas_known_answers():
    image = np.zeros((1, 128, 128, 1), np.float32)
    image[0, :32, :, 0] = 1.0  # a quarter strongly positive
    image[0, 32:40, :, 0] = -1.0  # 1/16 strongly negative
    areas = np.asarray(local.polarity_areas(jnp.asarray(image)))
    zero = 1.0 / (1.0 + np.exp(local.POLARITY_SHARPNESS * 0.15))  # a zero pixel's soft weight
    np.testing.assert_allclose(areas[0], [0.25 + 0.6875 * zero, 0.0625 + 0.6875 * zero], rtol=1e-4)


@pytest.mark.parametrize("hold", [(), ("psep",)])
def test_batch_step_computes_only_the_rows_it_needs_and_equals_the_full_jacobian_step(hold):
    """`_batch_step_geometry` (the held rows only when something is held, the guard's rows only when an area
    of the batch is below the floor) equals `_step_geometry` (every row of the Jacobian) latent by latent:
    on a batch where the weak toy's lowered latents sit below the floor (the guard acts on them) and on one
    where every area is above it (the guard's rows are skipped)."""
    generator = toy_generator(amplitude=0.22)
    names = ("tuf", "psep")
    weights = jnp.asarray([1.0, 0.0], jnp.float32)
    mask = jnp.asarray([float(n in hold) for n in names], jnp.float32)
    batch = jax.jit(local._batch_step_geometry, static_argnums=(0, 3, 7))
    single = jax.jit(
        jax.vmap(local._step_geometry, in_axes=(None, None, 0, None, None, None, 0, None)), static_argnums=(0, 3, 7)
    )
    z = np.array(sample_latents(4, LATENT_DIM, seed=8))
    weak, strong = z.copy(), z.copy()
    weak[:, 0] = [-3.0, -1.5, 0.0, 1.0]  # peak field about 120 G to 260 G: the first two below the floor
    strong[:, 0] = 1.0
    sign = jnp.asarray([-1.0, -1.0, -1.0, 1.0], jnp.float32)  # lowering TUF shrinks the areas
    active = []
    for latents in (weak, strong):
        args = (generator.apply_fn, generator.params, jnp.asarray(latents), names, weights, mask, sign, True)
        got, expected = batch(*args), single(*args)
        for a, b in zip(jax.tree.leaves(got[:3]), jax.tree.leaves(expected[:3])):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-6)
        np.testing.assert_allclose(np.asarray(got[3]), np.asarray(expected[3])[:, 0], atol=1e-7)
        active.append(np.asarray(got[2][1]).min(axis=1) < 0)  # guard shortfall: the guard acted
    assert active[0][:2].all() and not active[0][2:].any() and not active[1].any(), active


def test_path_steps_match_the_evaluated_grid():
    assert [local.path_steps(a) for a in (0.0, 0.2, 0.5, 0.51, -1.5, 3.0)] == [1, 1, 1, 2, 3, 6]
    up, up_step, down, down_step = local._grid(np.array([-1.2, 3.0]), local.DEFAULT_STEP)
    assert (
        (up, down) == (local.path_steps(3.0), local.path_steps(-1.2))
        and up_step == pytest.approx(0.5)
        and down_step == pytest.approx(0.4)
    )


class _EnergyCritic:
    """A toy critic: logit = -1000 x mean squared field, so raising flux by brightening lowers it."""

    variables = jnp.float32(1000.0)

    @staticmethod
    def apply_fn(scale, images):
        return -scale * jnp.mean(images**2, axis=(1, 2, 3))


def test_realism_guard_keeps_the_critic_logit_at_its_start_while_the_target_still_moves(z):
    """Raising TUF by 2 latent units lowers the energy critic's logit by 4-7 on every unguarded path; with the critic
    as a guard it stays at its start on most paths (the median within 0.05) and falls by at most a third as much
    on any, TUF still rises (spread over more pixels at the same energy) and the paths stay on the shell."""
    generator = toy_generator()
    critic = _EnergyCritic()
    alphas = np.linspace(0.0, 2.0, 5)

    def logits(latents):
        images = generator(jnp.asarray(latents.reshape(-1, LATENT_DIM)))
        return np.asarray(critic.apply_fn(critic.variables, images)).reshape(latents.shape[:2])

    free, unguarded = local.local_traversal(generator, z, "tuf", alphas=alphas)
    latents, guarded = local.local_traversal(generator, z, "tuf", alphas=alphas, critic=critic)
    drop_free, drop_guarded = (logits(p)[:, -1] - logits(p)[:, 0] for p in (free, latents))
    assert np.all(drop_free < -4.0), drop_free
    assert np.all(drop_guarded > 0.35 * drop_free) and np.median(drop_guarded) > -0.05, (drop_guarded, drop_free)
    assert np.all(guarded["tuf"][:, -1] > guarded["tuf"][:, 0]), guarded["tuf"]
    np.testing.assert_allclose(np.linalg.norm(latents, axis=-1) / np.linalg.norm(z, axis=1)[:, None], 1.0, atol=1e-5)
