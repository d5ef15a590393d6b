"""The app's slider paths take the evaluated step length in one compiled program for every path length."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solarjax.app import generation
from solarjax.steering import local
from tests.helpers import toy_generator


@pytest.mark.parametrize("alpha, steps", [(0.1, 1), (0.5, 1), (-1.5, 3), (1.51, 4), (-3.0, 6)])
def test_local_step_count_is_the_evaluations_step_count(alpha, steps):
    count = generation.local_step_count(alpha)
    assert count == steps == local.path_steps(alpha)
    assert abs(alpha) / count <= local.DEFAULT_STEP + 1e-6
    assert generation.local_step_count(generation.ALPHA_LIMIT) == generation.LOCAL_PROGRAM_STEPS
    assert generation.local_step_count(2 * generation.ALPHA_LIMIT) == generation.LOCAL_PROGRAM_STEPS  # the cap


def test_a_short_path_in_the_long_program_is_the_short_program_and_compiles_once():
    generator = toy_generator()
    z0 = np.asarray(jax.random.normal(jax.random.key(3), (1, generator.latent_dim)), np.float32)
    names = ("tuf", "psep")
    args = (
        generator.apply_fn,
        generator.params,
        z0,
        jnp.float32(0.4),
        jnp.asarray([1.0, 0.0]),
        jnp.asarray([0.0, 1.0]),
    )
    short_z, short_q = local.path_program(*args, names=names, steps=3)
    compiled = None
    for active in (3, 5):
        long_z, long_q = local.path_program(*args, names=names, steps=6, active_steps=jnp.int32(active))
        compiled = compiled or local.path_program._cache_size()
        assert local.path_program._cache_size() == compiled  # one program for both lengths
        assert not np.allclose(long_z[:, active - 1], long_z[:, active])  # the last active step moved
        np.testing.assert_array_equal(long_z[:, active:], np.repeat(long_z[:, active : active + 1], 7 - active, 1))
        for name in names:
            assert np.isfinite(np.asarray(long_q[name][:, :active])).all()
            assert np.isnan(np.asarray(long_q[name][:, active:-1])).all()
        if active == 3:  # the path of 3 steps, taken by the 6-step program
            np.testing.assert_allclose(long_z[:, :4], short_z, atol=1e-6)
            for name in names:
                np.testing.assert_allclose(long_q[name][:, :3], short_q[name][:, :3], rtol=1e-5)
                np.testing.assert_allclose(long_q[name][:, -1], short_q[name][:, -1], rtol=1e-5)
