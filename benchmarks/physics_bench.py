"""Throughput of `solarjax.physics.quantities` against the per-image NumPy/SciPy reference.

Each side runs in its own process (`benchmarks.isolated`), alternating over `rounds` rounds, with
the load average before and after each run and the cores other processes kept busy:

  reference  `benchmarks.reference_physics.reference_quantities_batch` on the first
             `reference_images` patches (a per-image loop: its rate extrapolates)
  jax        `physics.quantities` on all `images` patches [N, 128, 128], warmed up on that shape,
             in five ways timed in alternation inside the process (median over `blocks`):
               device           the batch already on the device (a jax.Array)
               host_f32         a float32 NumPy array, as users call it (chunked transfer
                                overlapped with computation, `physics._host_chunked`)
               host_f64         a float64 NumPy array, the same
               host_f32_whole   the path before chunking: the jitted kernel called on the whole
                                float32 NumPy array (JAX converts and copies it in one piece
                                before computing); `physics._quantities_jit` is that kernel
               host_f64_whole   the same on float64

The speed-ups are each JAX figure over the reference's images/s of the same round; their median
and flag ('idle' or 'loaded') come from `benchmarks.isolated.ratio_summary`. The JAX side also
reports the largest disagreement with the reference on the reference subset.

Run: ``python -m benchmarks.physics_bench [--images 10000] [--rounds 3]`` (prints JSON);
``--side jax|reference`` runs one side alone. The harness calls `quantities_throughput`.
"""

import argparse
import json
import os
import statistics
import time

import jax
import numpy as np

from benchmarks import isolated
from benchmarks.reference_physics import random_bipoles, reference_quantities_batch
from solarjax import physics

SIDES = ("jax", "reference")
JAX_WAYS = ("device", "host_f32", "host_f64", "host_f32_whole", "host_f64_whole")


def _seconds(function, *args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(function(*args))
    return time.perf_counter() - start


def jax_side(images: int, reference_images: int, blocks: int, seed: int) -> dict:
    """images/s of the five JAX ways (module docstring), alternated `blocks` times."""
    batch = random_bipoles(np.random.default_rng(seed), images)
    wide = batch.astype(np.float64)
    device_batch = jax.device_put(batch)
    ways = {
        "device": (physics.quantities, device_batch),
        "host_f32": (physics.quantities, batch),
        "host_f64": (physics.quantities, wide),
        "host_f32_whole": (physics._quantities_jit, batch),
        "host_f64_whole": (physics._quantities_jit, wide),
    }
    first_call = {name: _seconds(function, data) for name, (function, data) in ways.items()}
    seconds = {name: [] for name in ways}
    for block in range(blocks):
        order = list(ways) if block % 2 == 0 else list(reversed(ways))
        for name in order:
            function, data = ways[name]
            seconds[name].append(_seconds(function, data))
    expected = reference_quantities_batch(batch[:reference_images])
    got = physics.quantities(batch[:reference_images])
    disagreement = {
        name: float(
            np.nanmax(np.abs(np.asarray(got[name], np.float64) - expected[name])) / np.nanmax(np.abs(expected[name]))
        )
        for name in physics.QUANTITY_NAMES
    }
    result = {f"{name}_images_per_s": images / statistics.median(times) for name, times in seconds.items()}
    result.update(
        {
            "seconds_per_block": {name: [round(t, 4) for t in times] for name, times in seconds.items()},
            "first_call_seconds": first_call,
            "max_disagreement_over_scale": disagreement,
        }
    )
    return result


def reference_side(reference_images: int, blocks: int, seed: int) -> dict:
    """images/s of the per-image reference on `reference_images` patches (median over blocks)."""
    batch = random_bipoles(np.random.default_rng(seed), reference_images)
    times = [_seconds(reference_quantities_batch, batch) for _ in range(blocks)]
    return {
        "reference_images_per_s": reference_images / statistics.median(times),
        "seconds_per_block": [round(t, 4) for t in times],
    }


def quantities_throughput(
    images: int = 10_000,
    reference_images: int = 500,
    rounds: int = 3,
    blocks: int = 3,
    seed: int = 0,
    settle_s: float = 90.0,
) -> dict:
    """The figures of the module docstring (a JSON-serialisable dict)."""
    args = [
        "--images",
        str(images),
        "--reference-images",
        str(reference_images),
        "--blocks",
        str(blocks),
        "--seed",
        str(seed),
    ]
    runs = isolated.run_rounds("benchmarks.physics_bench", SIDES, rounds, args, settle_s=settle_s)
    cores = os.cpu_count() or 1
    speedups = {
        way: isolated.ratio_summary(
            runs, "jax", "reference", f"{way}_images_per_s", cores, denominator_metric="reference_images_per_s"
        )
        for way in JAX_WAYS
    }
    chunked_over_whole = {
        dtype: isolated.ratio_summary(
            runs,
            "jax",
            "jax",
            f"host_{dtype}_images_per_s",
            cores,
            denominator_metric=f"host_{dtype}_whole_images_per_s",
        )
        for dtype in ("f32", "f64")
    }
    return {
        "images": images,
        "image_shape": [128, 128],
        "reference_images": reference_images,
        "rounds": rounds,
        "blocks": blocks,
        "speedup_over_reference": speedups,
        "chunked_over_whole_array": chunked_over_whole,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--reference-images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=3, help="timed blocks per way and run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--settle", type=float, default=90.0, help="seconds to wait at most, before each run, for the load to fall"
    )
    parser.add_argument("--side", choices=SIDES, help="run this side alone and print its figures")
    args = parser.parse_args()
    if args.side == "jax":
        print(json.dumps(jax_side(args.images, args.reference_images, args.blocks, args.seed)))
    elif args.side == "reference":
        print(json.dumps(reference_side(args.reference_images, args.blocks, args.seed)))
    else:
        print(
            json.dumps(
                quantities_throughput(
                    args.images, args.reference_images, args.rounds, args.blocks, args.seed, args.settle
                ),
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
