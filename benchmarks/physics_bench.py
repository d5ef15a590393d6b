"""Throughput of `solarjax.physics.quantities` against the per-image NumPy/SciPy reference."""
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.reference_physics import random_bipoles, reference_quantities_batch
from solarjax import physics


def _seconds(function, *args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(function(*args))
    return time.perf_counter() - start


def quantities_throughput(images: int = 10_000, reference_images: int = 500, rounds: int = 3,
                          seed: int = 0) -> dict:
    """Images per second of jitted `quantities` on [images, 128, 128] float32 synthetic bipoles,
    and of the reference on the first `reference_images` of them (its rate extrapolates: it is
    a per-image loop). The two are timed in alternating rounds, so that both see the same load
    from other processes; the speed-up is the median of the per-round ratios. Also reports the
    largest disagreement between the two on the reference subset.
    """
    batch = random_bipoles(np.random.default_rng(seed), images)
    device_batch = jax.device_put(jnp.asarray(batch))
    compile_seconds = _seconds(physics.quantities, device_batch)  # warm up on the timed shape
    jax_rates, reference_rates = [], []
    for _ in range(rounds):
        reference_rates.append(reference_images /
                               _seconds(reference_quantities_batch, batch[:reference_images]))
        jax_rates.append(images / _seconds(physics.quantities, device_batch))
    speedups = [fast / slow for fast, slow in zip(jax_rates, reference_rates)]
    expected = reference_quantities_batch(batch[:reference_images])
    got = physics.quantities(device_batch[:reference_images])
    disagreement = {
        name: float(np.nanmax(np.abs(np.asarray(got[name], np.float64) - expected[name]))
                    / np.nanmax(np.abs(expected[name])))
        for name in physics.QUANTITY_NAMES}
    return {
        'images': images,
        'image_shape': [128, 128],
        'dtype': 'float32',
        'reference_images': reference_images,
        'rounds': rounds,
        'first_call_seconds': compile_seconds,
        'jax_images_per_s': jax_rates,
        'reference_images_per_s': reference_rates,
        'speedup_per_round': speedups,
        'speedup_median': statistics.median(speedups),
        'max_disagreement_over_scale': disagreement,
        'load_average_after': list(os.getloadavg()),
    }
