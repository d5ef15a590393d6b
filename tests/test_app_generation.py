"""The app's slider paths take the evaluated step length with as few compiled step counts as possible."""

import pytest

from solarjax.app import generation
from solarjax.steering import local


@pytest.mark.parametrize("alpha, steps", [(0.0, 3), (0.5, 3), (-1.5, 3), (1.51, 6), (-3.0, 6)])
def test_local_step_count_keeps_steps_at_most_the_evaluated_length(alpha, steps):
    count = generation.local_step_count(alpha, local.DEFAULT_STEP)
    assert count == steps
    assert abs(alpha) / count <= local.DEFAULT_STEP + 1e-6
    assert abs(generation.ALPHA_LIMIT) / generation.LOCAL_STEP_COUNTS[-1] <= local.DEFAULT_STEP
