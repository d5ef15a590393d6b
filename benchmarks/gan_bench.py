"""Benchmark `gan.train_step`: train images/s of the paper's 'simple' GAN, JAX against PyTorch.

Both sides run the same generator and discriminator, the same batch (32 real patches
128 x 128), the same losses and the same optimiser (Adam 5e-4): `solarjax.train.gan`'s jitted
step and `benchmarks.torch_gan_reference` (eager PyTorch, as the authors train; the two compute
the same numbers, see tests/test_gan_models.py). They run in one process, blocks of steps
interleaved (JAX, PyTorch, JAX, ...) so that a busy machine slows both alike. Reported on CPU:

  jax_images_per_s         conv_impl='matmul' (transposed convolutions by sub-pixel phases,
                           convolutions as patches @ kernel; the CPU default)
  torch_images_per_s       PyTorch (its default intra-op threads)
  ratio                    median over blocks of jax / torch of adjacent blocks (target >= 1.0)
  jax_xla_images_per_s     conv_impl='xla' (lax.conv_transpose / conv_general_dilated, what a
                           straightforward flax.linen model runs), and its ratio to PyTorch

images/s = batch * steps / seconds per block after a warm-up step (compilation excluded); medians
over blocks. On an accelerator the PyTorch baseline (CPU build) is skipped and JAX is timed at
batch 32 and at the largest power-of-two batch that fits, with the device's peak memory.

Run: ``python -m benchmarks.gan_bench [--batch 32] [--steps 4] [--blocks 5]`` (prints JSON); the
harness calls `run`. Needs ``pip install torch==2.13.0`` (CPU) for the comparison; never a
dependency.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Callable

import jax
import numpy as np

from solarjax.train import gan as gan_train
from solarjax.train import sharding

ADAM = (5e-4, 0.9, 0.999)


def _real_batch(batch: int, seed: int = 0) -> np.ndarray:
    """A fixed batch [B, 128, 128, 1] in [-1, 1] standing in for real patches."""
    return np.tanh(np.random.default_rng(seed).normal(size=(batch, 128, 128, 1))).astype(np.float32)


def jax_runner(conv_impl: str, batch: int) -> Callable[[int], None]:
    """``run(steps)``: that many jitted train steps on a fixed batch (warmed up, state donated)."""
    mesh = sharding.make_data_mesh()
    programs = gan_train.build_programs('simple', conv_impl, 100, ADAM, mesh)
    images = jax.device_put(_real_batch(batch), sharding.batch_sharded(mesh))
    holder = {'state': programs.init(jax.random.key(0))}

    def run(steps: int) -> None:
        state = holder['state']
        for _ in range(steps):
            state, metrics = programs.train_step(state, {'image': images}, gan_train.step_key(state))
        jax.block_until_ready(metrics)
        holder['state'] = state

    run(1)
    return run


def torch_runner(batch: int) -> Callable[[int], None]:
    """``run(steps)``: that many PyTorch train steps on a fixed batch (warmed up)."""
    import torch

    from benchmarks import torch_gan_reference

    trainer = torch_gan_reference.TorchGanTrainer(ADAM[0])
    real = torch.from_numpy(_real_batch(batch).transpose(0, 3, 1, 2).copy())

    def run(steps: int) -> None:
        for _ in range(steps):
            trainer.step(real)

    run(1)
    return run


def images_per_second(run: Callable[[int], None], batch: int, steps: int) -> float:
    start = time.perf_counter()
    run(steps)
    return batch * steps / (time.perf_counter() - start)


def _cpu_comparison(batch: int, steps: int, blocks: int, xla_blocks: int) -> dict:
    import torch

    runners = {'jax': jax_runner('matmul', batch), 'torch': torch_runner(batch),
               'jax_xla': jax_runner('xla', batch)}
    rates = {name: [] for name in runners}
    for block in range(blocks):
        rates['jax'].append(images_per_second(runners['jax'], batch, steps))
        rates['torch'].append(images_per_second(runners['torch'], batch, steps))
        if block < xla_blocks:  # the slow formulation: one step per block
            rates['jax_xla'].append(images_per_second(runners['jax_xla'], batch, 1))
    ratio = [j / t for j, t in zip(rates['jax'], rates['torch'])]
    xla_ratio = [j / t for j, t in zip(rates['jax_xla'], rates['torch'])]
    return {
        'jax_images_per_s': statistics.median(rates['jax']),
        'torch_images_per_s': statistics.median(rates['torch']),
        'ratio': statistics.median(ratio),
        'jax_xla_images_per_s': statistics.median(rates['jax_xla']),
        'jax_xla_ratio': statistics.median(xla_ratio),
        'blocks': {name: [round(r, 2) for r in values] for name, values in rates.items()},
        'torch_threads': torch.get_num_threads(),
    }


def _accelerator_figures(steps: int) -> dict:
    """Images/s and peak memory at batch 32 and at the largest power-of-two batch that fits."""
    device = jax.devices()[0]
    figures = {}
    batch, largest = 32, None
    while batch <= 65536:
        try:
            rate = images_per_second(jax_runner('xla', batch), batch, steps)
        except jax.errors.JaxRuntimeError as error:
            if 'RESOURCE_EXHAUSTED' not in str(error):
                raise
            break
        stats = device.memory_stats() or {}
        figures[str(batch)] = {'images_per_s': rate, 'peak_bytes_in_use': stats.get('peak_bytes_in_use')}
        largest = batch
        batch *= 2
    return {'by_batch': figures, 'largest_batch': largest}


def run(batch: int = 32, steps: int = 4, blocks: int = 5, xla_blocks: int = 3) -> dict:
    """The figures described in the module docstring (a JSON-serialisable dict)."""
    result = {'batch': batch, 'steps_per_block': steps, 'backend': jax.default_backend(),
              'devices': jax.device_count(), 'load_average_before': list(os.getloadavg())}
    if jax.default_backend() == 'cpu':
        result.update(_cpu_comparison(batch, steps, blocks, xla_blocks))
    else:
        result.update(_accelerator_figures(steps))
    result['load_average_after'] = list(os.getloadavg())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--steps', type=int, default=4, help='steps per timed block')
    parser.add_argument('--blocks', type=int, default=5, help='timed blocks per side')
    args = parser.parse_args()
    print(json.dumps(run(args.batch, args.steps, args.blocks), indent=2))


if __name__ == '__main__':
    main()
