"""Benchmark `steering.invert`: batched GAN inversion against the paper's per-image, per-restart loop.

Both invert the same patches with the paper's generator (`solarjax.models.gan.SimpleGenerator`,
random parameters: the cost does not depend on their values; convolution arithmetic chosen for
the backend by `default_conv_impl`) and the paper's masked MSE, for the same number of steps:

  * solarjax: `solarjax.steering.invert` -- every patch x restart of the batch is one latent of
    one jitted XLA program (Adam, ``lax.scan`` over the steps, best restart picked on device);
  * the paper's loop: for each patch, for each restart, a jitted single SGD step (lr 0.01,
    momentum 0.9, as the authors' code) called from a Python loop ``steps`` times, then the final
    error, the best restart kept on the host. Jitting the step is the fair version of the
    authors' eager PyTorch loop: only the per-step dispatch remains.

Patches are synthetic active regions (`solarjax.data.synthetic`, always available). Each side is
warmed up on the shapes it times; the paper's loop is timed on ``loop_images`` patches and its
rate extrapolated (its cost is linear in the number of patches). Reported: patches/s of each,
and their ratio measured in the same run.

Run: ``python -m benchmarks.inversion_bench`` (prints JSON); the harness
``python -m benchmarks.run steering.inversion`` calls `run`.
"""

from __future__ import annotations

import argparse
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from solarjax.data import synthetic
from solarjax.models.gan import default_conv_impl, make_models
from solarjax.steering import LatentGenerator, invert, masked_mse

LATENT_DIM = 100
PAPER_LEARNING_RATE = 0.01
PAPER_MOMENTUM = 0.9


def paper_generator(seed: int = 0) -> LatentGenerator:
    """The paper's generator with random parameters, as a `LatentGenerator`."""
    generator, _ = make_models("simple", default_conv_impl())
    variables = generator.init(jax.random.key(seed), jnp.zeros((1, LATENT_DIM), jnp.float32))
    return LatentGenerator(generator.apply, variables, fingerprint=f"random-simple-generator-{seed}")


@functools.partial(jax.jit, static_argnums=0)
def _paper_step(apply_fn, params, z, momentum, target):
    """One SGD-with-momentum step on one latent [1, D] (the authors' optimiser and loss)."""
    grad = jax.grad(lambda z: masked_mse(apply_fn(params, z), target).sum())(z)
    optimiser = optax.sgd(PAPER_LEARNING_RATE, momentum=PAPER_MOMENTUM)
    updates, momentum = optimiser.update(grad, momentum)
    return optax.apply_updates(z, updates), momentum


@functools.partial(jax.jit, static_argnums=0)
def _paper_error(apply_fn, params, z, target):
    return masked_mse(apply_fn(params, z), target)[0]


def paper_loop(images: np.ndarray, generator: LatentGenerator, restarts: int, steps: int, seed: int = 0) -> np.ndarray:
    """The authors' inversion, one patch and one restart at a time: best latents [N, D]."""
    optimiser = optax.sgd(PAPER_LEARNING_RATE, momentum=PAPER_MOMENTUM)
    rng = np.random.default_rng(seed)
    best = []
    for image in images:
        target = jnp.asarray(image[None])
        candidates = []
        for _ in range(restarts):
            z = jnp.asarray(rng.normal(size=(1, LATENT_DIM)), jnp.float32)
            momentum = optimiser.init(z)
            for _ in range(steps):
                z, momentum = _paper_step(generator.apply_fn, generator.params, z, momentum, target)
            candidates.append((float(_paper_error(generator.apply_fn, generator.params, z, target)), z))
        best.append(np.asarray(min(candidates, key=lambda c: c[0])[1])[0])
    return np.stack(best)


def _timed(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def run(num_images: int = 8, loop_images: int = 2, restarts: int = 10, steps: int = 20, seed: int = 0) -> dict:
    """Patches/s of batched inversion and of the paper's loop, and their ratio (same run)."""
    generator = paper_generator(seed)
    images = synthetic.generate(num_images, seed).images[..., None]

    def batched():
        return invert(images, generator, restarts=restarts, steps=steps, batch_size=num_images).latents

    def loop():
        return paper_loop(images[:loop_images], generator, restarts, steps)

    batched()  # compile on the timed shapes
    paper_loop(images[:1], generator, 1, 2)  # compile the step and the error
    batched_seconds = _timed(batched)
    loop_seconds = _timed(loop)
    batched_rate = num_images / batched_seconds
    loop_rate = loop_images / loop_seconds
    return {
        "batched_images_per_s": batched_rate,
        "paper_loop_images_per_s": loop_rate,
        "speedup": batched_rate / loop_rate,
        "batched_seconds": batched_seconds,
        "paper_loop_seconds": loop_seconds,
        "num_images": num_images,
        "loop_images": loop_images,
        "restarts": restarts,
        "steps": steps,
        "conv_impl": default_conv_impl(),
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=8)
    parser.add_argument("--loop-images", type=int, default=2)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(run(args.num_images, args.loop_images, args.restarts, args.steps), indent=2))


if __name__ == "__main__":
    main()
