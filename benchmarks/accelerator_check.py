"""Accelerator check: what solarjax does on the device at hand, in one run, as one JSON file.

Sections (each written to the JSON as soon as it is done, so a run cut short keeps what it measured):

  gan       images/s of one jitted GAN train step (G + D update) at each batch size in float32 and
            bfloat16 compute (`solarjax.models.precision`; parameters and Adam state float32), with
            the step's FLOPs (XLA's cost analysis of the compiled program), its compiled memory
            (arguments + outputs + temporaries), the device's peak bytes in use so far
            (`Device.memory_stats`, where the backend reports it) and MFU: achieved FLOP/s over
            (a) the FLOP/s of a large matmul measured on the same device in the same dtype and
            (b) the data-sheet peak of known devices (None otherwise).
  simsiam   the same for one SimSiam update (two views through ResNet-18 + heads, SGD).
  physics   images/s of `solarjax.physics.quantities` on 10^5 patches (128 x 128) on the device.
  inversion batched `steering.invert` against the paper's per-patch, per-restart loop
            (`benchmarks.inversion_bench.run`).
  search    exact top-10 on the device (one jitted matmul + `lax.top_k` per query batch) against
            ScaNN on the host CPU (tree + 4-bit AH + exact re-ranking, `benchmarks.scann_scale`) at
            10^6 stored 512-d vectors (cosine: unit rows), with ScaNN's recall@10 against the device's
            exact answer.

``--tiny`` runs every section at toy sizes with small stand-in models (reduced-width versions of
the project's modules) so that the whole script runs on a CPU in about a minute; ``make test`` runs
it so (tests/test_accelerator_check.py). Full sizes are meant for one GPU/TPU chip and take under 8
minutes there (`benchmarks/accelerator_check.sh`; see benchmarks/README.md).

Run: ``python -m benchmarks.accelerator_check --out accelerator_check.json [--tiny] [--sections gan search]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from solarjax.models import gan as gan_models
from solarjax.models.resnet import ResNet
from solarjax.models.simsiam import Predictor, Projector, SimSiam
from solarjax.train import gan as gan_train
from solarjax.train import simsiam as simsiam_train

SECTIONS = ("gan", "simsiam", "physics", "inversion", "search")
DTYPES = ("float32", "bfloat16")
# Dense data-sheet peaks in FLOP/s (no sparsity): float32 without tensor cores (XLA's default f32
# matmul precision on these GPUs may use TF32, so f32 MFU can exceed what this suggests) and bf16.
SPEC_PEAK_FLOPS = {
    "H100": {"float32": 67e12, "bfloat16": 989e12},
    "H200": {"float32": 67e12, "bfloat16": 989e12},
    "A100": {"float32": 19.5e12, "bfloat16": 312e12},
    "L4": {"float32": 30.3e12, "bfloat16": 121e12},
    "TPU v5 lite": {"float32": 197e12, "bfloat16": 197e12},
    "TPU v4": {"float32": 275e12, "bfloat16": 275e12},
}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Problem sizes of a run."""

    batches: tuple[int, ...]
    image_size: int
    physics_patches: int
    physics_chunk: int
    inversion: tuple[int, int, int, int]  # num_images, loop_images, restarts, steps
    search_rows: int
    search_queries: int
    matmul_size: int
    min_seconds: float  # timing window per configuration
    tiny_models: bool


FULL = Sizes(
    batches=(32, 64, 256, 1024),
    image_size=128,
    physics_patches=100_000,
    physics_chunk=10_000,
    inversion=(64, 2, 10, 20),
    search_rows=1_000_000,
    search_queries=1_000,
    matmul_size=8192,
    min_seconds=1.0,
    tiny_models=False,
)
TINY = Sizes(
    batches=(2,),
    image_size=32,
    physics_patches=64,
    physics_chunk=32,
    inversion=(2, 1, 2, 2),
    search_rows=4_000,
    search_queries=50,
    matmul_size=256,
    min_seconds=0.05,
    tiny_models=True,
)


# ----------------------------------------------------------------------------------- measuring
def compiled_figures(jitted: Callable, *args) -> tuple[Callable, dict]:
    """Compiles `jitted` for `args`: (compiled program, {compile_seconds, flops, compiled_memory_bytes})."""
    started = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    figures = {"compile_seconds": time.perf_counter() - started}
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older JAX: one dict per program
        cost = cost[0] if cost else {}
    figures["flops"] = float(cost.get("flops", float("nan"))) if cost else float("nan")
    memory = compiled.memory_analysis()
    figures["compiled_memory_bytes"] = (
        None
        if memory is None
        else int(
            memory.argument_size_in_bytes
            + memory.output_size_in_bytes
            + memory.temp_size_in_bytes
            - memory.alias_size_in_bytes
        )
    )
    return compiled, figures


def device_peak_bytes() -> int | None:
    """Peak bytes in use on the first device so far (None where the backend does not report it)."""
    stats = jax.devices()[0].memory_stats()
    return None if not stats or "peak_bytes_in_use" not in stats else int(stats["peak_bytes_in_use"])


def time_calls(call: Callable[[], Any], min_seconds: float, min_calls: int = 3) -> tuple[float, int]:
    """(median seconds per call, calls) of `call` (which blocks) run for at least min_seconds and min_calls."""
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - started < min_seconds:
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), len(times)


def measured_matmul_flops(size: int, dtype: str) -> float:
    """FLOP/s of a jitted [size, size] @ [size, size] matmul in `dtype` on the default device."""
    a = jax.random.normal(jax.random.key(0), (size, size), dtype)
    b = jax.random.normal(jax.random.key(1), (size, size), dtype)
    matmul = jax.jit(lambda x, y: x @ y)
    jax.block_until_ready(matmul(a, b))
    seconds, _ = time_calls(lambda: jax.block_until_ready(matmul(a, b)), 0.5)
    return 2.0 * size**3 / seconds


def spec_peak_flops(dtype: str) -> float | None:
    """Data-sheet peak FLOP/s of the first device in `dtype`, if it is in `SPEC_PEAK_FLOPS`."""
    kind = jax.devices()[0].device_kind
    for name, peaks in SPEC_PEAK_FLOPS.items():
        if name.lower() in kind.lower():
            return peaks[dtype]
    return None


def _step_figures(step_seconds: float, batch: int, figures: dict, peaks: dict, dtype: str) -> dict:
    achieved = figures["flops"] / step_seconds
    spec = spec_peak_flops(dtype)
    return {
        "images_per_s": batch / step_seconds,
        "step_seconds": step_seconds,
        "achieved_flops_per_s": achieved,
        "mfu_vs_measured_matmul": achieved / peaks[dtype],
        "mfu_vs_spec": None if spec is None else achieved / spec,
        "device_peak_bytes": device_peak_bytes(),
    }


def _guarded(function: Callable[[], dict]) -> dict:
    """`function()`, or {'error': message} when it fails (e.g. out of device memory at a large batch)."""
    try:
        return function()
    except Exception as error:  # noqa: BLE001 - reported in the JSON, the run goes on
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}


# ------------------------------------------------------------------------------------- models
class _TinySimSiam(SimSiam):
    """SimSiam on a 1-stage ResNet (stand-in for --tiny; same interface and heads)."""

    def setup(self):
        self.backbone = ResNet(input_channels=self.input_channels, width=self.width, stage_sizes=(1,))
        self.projector = Projector(dims=tuple(self.projector_dims))
        self.predictor = Predictor(hidden=self.predictor_hidden, out=self.projector_dims[-1])
        self.physics = nn.Dense(self.physics_head) if self.physics_head else None


def gan_models_for(sizes: Sizes, arch: str) -> tuple[Any, Any, str]:
    """(generator, discriminator, description); --tiny: reduced widths of the resize-conv pair."""
    conv_impl = gan_models.default_conv_impl()
    if sizes.tiny_models:
        generator = gan_models.ResizeConvGenerator(
            conv_impl=conv_impl, base_channels=4, block_channels=(), upsample_output=True
        )
        discriminator = gan_models.SpectralNormDiscriminator(conv_impl=conv_impl, channels=(4,))
        return generator, discriminator, f"tiny resize_conv pair (one layer each, width 4), conv_impl={conv_impl}"
    generator, discriminator = gan_models.make_models(arch, conv_impl)
    return generator, discriminator, f"{arch}, conv_impl={conv_impl}"


def simsiam_model_for(sizes: Sizes) -> tuple[SimSiam, str]:
    if sizes.tiny_models:
        return _TinySimSiam(width=4, projector_dims=(16, 16, 8), predictor_hidden=8), "tiny 1-stage ResNet width 4"
    return SimSiam(), "ResNet-18 + projector 512-512-100 + predictor 100-128-100"


# ------------------------------------------------------------------------------------ sections
def gan_section(sizes: Sizes, peaks: dict, arch: str = "simple") -> dict:
    """GAN train-step figures at each batch size and compute dtype."""
    generator, discriminator, description = gan_models_for(sizes, arch)
    latent_dim = 100
    tx = optax.adam(5e-4, b1=0.5)
    state0 = gan_train.init_state(generator, discriminator, tx, tx, jax.random.key(0), latent_dim)
    results = []
    for dtype in DTYPES:
        step = jax.jit(
            gan_train.make_train_step(generator, discriminator, tx, tx, latent_dim, compute_dtype=dtype),
            donate_argnums=0,
        )
        for batch in sizes.batches:

            def measure():
                images = jax.device_put(jnp.tanh(jax.random.normal(jax.random.key(batch), (batch, 128, 128, 1))))
                holder = {"state": jax.tree.map(jnp.copy, state0)}
                compiled, figures = compiled_figures(step, holder["state"], {"image": images}, jax.random.key(1))

                def call():
                    holder["state"], metrics = compiled(
                        holder["state"], {"image": images}, gan_train.step_key(holder["state"])
                    )
                    jax.block_until_ready(metrics)

                call()  # warm-up
                seconds, calls = time_calls(call, sizes.min_seconds)
                return {**figures, **_step_figures(seconds, batch, figures, peaks, dtype), "timed_steps": calls}

            results.append({"batch": batch, "compute_dtype": dtype, **_guarded(measure)})
    return {"model": description, "optimizer": "Adam 5e-4, b1 0.5", "results": results}


def simsiam_section(sizes: Sizes, peaks: dict) -> dict:
    """SimSiam update figures (views given) at each batch size and compute dtype."""
    model, description = simsiam_model_for(sizes)
    size = sizes.image_size
    results = []
    for dtype in DTYPES:
        for batch in sizes.batches:

            def measure():
                optimizer = simsiam_train.make_optimizer(simsiam_train.paper_learning_rate(batch))
                holder = {"state": simsiam_train.init_state(model, optimizer, jax.random.key(0), size)}
                update = jax.jit(
                    functools.partial(simsiam_train.update, model, optimizer, compute_dtype=dtype), donate_argnums=0
                )
                view1 = jnp.tanh(jax.random.normal(jax.random.key(2), (batch, size, size, 1)))
                view2 = jnp.tanh(jax.random.normal(jax.random.key(3), (batch, size, size, 1)))
                compiled, figures = compiled_figures(update, holder["state"], view1, view2)

                def call():
                    holder["state"], metrics = compiled(holder["state"], view1, view2)
                    jax.block_until_ready(metrics)

                call()
                seconds, calls = time_calls(call, sizes.min_seconds)
                return {**figures, **_step_figures(seconds, batch, figures, peaks, dtype), "timed_steps": calls}

            results.append({"batch": batch, "compute_dtype": dtype, **_guarded(measure)})
    return {
        "model": f"{description}, {size}x{size}x1 views",
        "optimizer": "SGD momentum 0.9, wd 5e-4",
        "results": results,
    }


def physics_section(sizes: Sizes) -> dict:
    """images/s of `physics.quantities` over `physics_patches` patches held on the device, in chunks."""
    from benchmarks.reference_physics import random_bipoles
    from solarjax import physics

    base = random_bipoles(np.random.default_rng(0), min(sizes.physics_chunk, 10_000)).astype(np.float32)
    repeats = -(-sizes.physics_patches // len(base))
    patches = jnp.tile(jax.device_put(base), (repeats, 1, 1))[: sizes.physics_patches]
    chunks = [
        patches[start : start + sizes.physics_chunk] for start in range(0, sizes.physics_patches, sizes.physics_chunk)
    ]
    quantities = jax.jit(physics.quantities)
    started = time.perf_counter()
    jax.block_until_ready(quantities(chunks[0]))
    compile_seconds = time.perf_counter() - started

    def call():
        jax.block_until_ready([quantities(chunk) for chunk in chunks])

    seconds, calls = time_calls(call, sizes.min_seconds, min_calls=2)
    return {
        "patches": sizes.physics_patches,
        "chunk": sizes.physics_chunk,
        "image_shape": [128, 128],
        "compile_seconds": compile_seconds,
        "seconds": seconds,
        "images_per_s": sizes.physics_patches / seconds,
        "timed_passes": calls,
        "device_peak_bytes": device_peak_bytes(),
    }


def inversion_section(sizes: Sizes) -> dict:
    """`benchmarks.inversion_bench.run` at the run's sizes (--tiny: with the tiny generator)."""
    from benchmarks import inversion_bench

    num_images, loop_images, restarts, steps = sizes.inversion
    if not sizes.tiny_models:
        return inversion_bench.run(num_images=num_images, loop_images=loop_images, restarts=restarts, steps=steps)
    from solarjax.data import synthetic
    from solarjax.steering import LatentGenerator, invert

    generator_module = gan_models_for(sizes, "simple")[0]
    variables = generator_module.init(jax.random.key(0), jnp.zeros((1, inversion_bench.LATENT_DIM)))
    generator = LatentGenerator(generator_module.apply, variables, fingerprint="tiny-random-generator")
    images = synthetic.generate(num_images, 0).images[..., None]

    def batched():
        return invert(images, generator, restarts=restarts, steps=steps, batch_size=num_images).latents

    batched()
    inversion_bench.paper_loop(images[:1], generator, 1, 2)  # compile the loop's step and error
    started = time.perf_counter()
    jax.block_until_ready(batched())
    batched_seconds = time.perf_counter() - started
    started = time.perf_counter()
    inversion_bench.paper_loop(images[:loop_images], generator, restarts, steps)
    loop_seconds = time.perf_counter() - started
    return {
        "batched_images_per_s": num_images / batched_seconds,
        "paper_loop_images_per_s": loop_images / loop_seconds,
        "speedup": (num_images / batched_seconds) / (loop_images / loop_seconds),
        "batched_seconds": batched_seconds,
        "paper_loop_seconds": loop_seconds,
        "num_images": num_images,
        "loop_images": loop_images,
        "restarts": restarts,
        "steps": steps,
        "generator": "tiny",
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
    }


def exact_top_k_on_device(database: jax.Array, queries: np.ndarray, k: int, query_batch: int = 250) -> np.ndarray:
    """Exact L2 top-k rows [Q, k] with the database [N, D] held on the device."""
    norms = jnp.sum(database * database, axis=1)

    @jax.jit
    def top_k(batch):
        scores = norms[None, :] - 2.0 * (batch @ database.T)
        return jax.lax.top_k(-scores, k)[1]

    out = []
    for start in range(0, len(queries), query_batch):
        batch = np.zeros((query_batch, queries.shape[1]), np.float32)
        chunk = queries[start : start + query_batch]
        batch[: len(chunk)] = chunk
        out.append(np.asarray(top_k(jnp.asarray(batch)))[: len(chunk)])
    return np.concatenate(out).astype(np.int64)


def search_section(sizes: Sizes) -> dict:
    """Exact top-10 on the device against ScaNN (AH + exact re-ranking) on the host at search_rows."""
    from benchmarks import scann_scale

    k, rows, num_queries = scann_scale.K, sizes.search_rows, sizes.search_queries
    mixture = scann_scale.SpectrumMixture(seed=0)
    started = time.perf_counter()
    database = scann_scale.unit_rows(scann_scale.spectrum_mixture(rows, mixture=mixture))  # cosine
    queries = scann_scale.unit_rows(mixture.draw(num_queries, seed=[0, 3]))
    generate_seconds = time.perf_counter() - started
    on_device = jax.device_put(database)
    exact_top_k_on_device(on_device, queries[:10], k)  # compile
    truth, device_seconds = None, float("inf")
    for _ in range(2):
        started = time.perf_counter()
        truth = exact_top_k_on_device(on_device, queries, k)
        device_seconds = min(device_seconds, time.perf_counter() - started)
    check = min(num_queries, 50)
    numpy_truth = scann_scale.exact_numpy_top_k(database, queries[:check], k)
    agreement = float(scann_scale.recall_per_query(truth[:check], numpy_truth).mean())
    del on_device

    num_leaves = int(np.clip(round(2 * np.sqrt(rows)), 16, 100_000))
    started = time.perf_counter()
    searcher = scann_scale.build_ah_searcher(database, num_leaves, min(rows, max(100_000, 50 * num_leaves)))
    build_seconds = time.perf_counter() - started
    leaves, rerank = max(1, round(0.02 * num_leaves)), 200
    scann_scale.ah_search(searcher, database, queries, leaves, rerank)
    started = time.perf_counter()
    found = scann_scale.ah_search(searcher, database, queries, leaves, rerank)
    scann_seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "dim": int(database.shape[1]),
        "queries": num_queries,
        "k": k,
        "data": "benchmarks.scann_scale.SpectrumMixture",
        "generate_seconds": generate_seconds,
        "device_exact_queries_per_s": num_queries / device_seconds,
        "device_exact_agreement_with_numpy": agreement,
        "scann_cpu_queries_per_s": num_queries / scann_seconds,
        "scann_build_seconds": build_seconds,
        "scann_recall_at_10": float(scann_scale.recall_per_query(found, truth).mean()),
        "scann_params": {
            "num_leaves": num_leaves,
            "leaves_to_search": leaves,
            "rerank": rerank,
            "dims_per_block": 2,
            "bits": 4,
        },
        "device_over_scann_queries_per_s": (num_queries / device_seconds) / (num_queries / scann_seconds),
        "cpu_threads": len(os.sched_getaffinity(0)),
    }


# ---------------------------------------------------------------------------------------- main
def machine() -> dict:
    device = jax.devices()[0]
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_threads": len(os.sched_getaffinity(0)),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def run(
    tiny: bool = False,
    sections: tuple[str, ...] = SECTIONS,
    out: str | os.PathLike | None = None,
    gan_arch: str = "simple",
) -> dict:
    """Runs the sections; returns the report (and rewrites `out` after each section)."""
    sizes = TINY if tiny else FULL
    started = time.perf_counter()
    report: dict = {
        "mode": "tiny" if tiny else "full",
        "sizes": dataclasses.asdict(sizes),
        "machine": machine(),
        "section_seconds": {},
    }

    def save():
        report["total_seconds"] = time.perf_counter() - started
        if out is not None:
            pathlib.Path(out).write_text(json.dumps(report, indent=1, default=float) + "\n")

    needs_peaks = {"gan", "simsiam"} & set(sections)
    if needs_peaks:
        report["measured_matmul_flops_per_s"] = {
            dtype: measured_matmul_flops(sizes.matmul_size, dtype) for dtype in DTYPES
        }
        report["spec_peak_flops_per_s"] = {dtype: spec_peak_flops(dtype) for dtype in DTYPES}
    runners = {
        "gan": lambda: gan_section(sizes, report["measured_matmul_flops_per_s"], gan_arch),
        "simsiam": lambda: simsiam_section(sizes, report["measured_matmul_flops_per_s"]),
        "physics": lambda: physics_section(sizes),
        "inversion": lambda: inversion_section(sizes),
        "search": lambda: search_section(sizes),
    }
    for name in sections:
        print(f"accelerator_check: {name} ...", file=sys.stderr, flush=True)
        section_started = time.perf_counter()
        report[name] = _guarded(runners[name])
        report["section_seconds"][name] = time.perf_counter() - section_started
        save()
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="accelerator_check.json", help="JSON report (rewritten after each section)")
    parser.add_argument("--tiny", action="store_true", help="toy sizes and models: runs on a CPU in about a minute")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--gan-arch", default="simple", choices=sorted(gan_models.ARCHITECTURES))
    args = parser.parse_args(argv)
    report = run(args.tiny, tuple(args.sections), args.out, args.gan_arch)
    print(f"wrote {args.out} ({report['total_seconds']:.0f} s)", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
