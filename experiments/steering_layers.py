r"""Where a quantity becomes linear: held-out linear accuracy on pooled activations of each generator layer.

Command::

    python -m experiments.steering_layers --gan-dir demo_out/gan --out results/steering_layers.json \
        [--latents 2000] [--grid 4] [--seed 23] [--polarity-only]

The diagnosis of `solarjax.steering.diagnosis` finds no feature set of z (or of the first layer's
activations) on which a linear boundary orders TUF, PSEP, R or area of the new default generator.
This experiment asks the same question of every later layer. For ``--latents`` latents z ~ N(0, I)
the generator is run once with its layers' outputs captured (flax ``capture_intermediates``); each
layer output a [N, H, W, C] (LeakyReLU(0.2) applied, as the next layer sees it; the last layer is
taken before tanh) is pooled over a ``grid`` x ``grid`` of spatial blocks into three statistics per
block and channel: mean(a), mean(|a|), sqrt(mean(a^2)). Labels are above/below the median of the
exact quantity (as `fit_directions`, NaN left out), the split 80/20 seeded by ``--seed``, the
classifier a linear SVM (C = 1, standardised features, as the diagnosis). The JSON has, per layer,
the feature count and the held-out accuracy per quantity with its Wilson 95% interval, and per
quantity the first layer reaching 0.85.

``polarity_statistics`` (`solarjax.steering.diagnosis.polarity_statistics`, also a feature set of the
diagnosis in `fit_directions`) is one more feature set of the output (before tanh), built the way the
quantities are defined rather than by plain pooling: per 32-pixel block (``grid`` 4) the mean of a,
of |a| and |mean a|, the fractions of strong positive and strong negative pixels (|B| > 150 G, the
quantities' threshold), and two fine-scale statistics pooled from 4-pixel sub-blocks (``fine`` 32):
polarity mixing, mean(|a|) - |mean(a)|, and coexistence of the strong polarities, sqrt(fraction
positive x fraction negative). The JSON's ``polarity_statistics`` holds its held-out accuracy per
quantity (same labels, split and classifier).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from collections.abc import Sequence

import numpy as np

from solarjax.steering import diagnosis

QUANTITIES = ("tuf", "psep", "r_value", "area", "tilt")
LEAKY_SLOPE = 0.2
TARGET_ACCURACY = 0.85
POLARITY_FEATURES = "polarity_statistics"
"""Name of the `polarity_statistics` feature set among the layers' (it comes last)."""


def pooled_statistics(activations, grid: int, xp=np):
    """[N, 3 * grid * grid * C] block means of a, |a| and root mean square of a for activations [N, H, W, C]
    (or [N, F], pooled as F channels of one pixel); H and W must be multiples of ``grid``. ``xp``: numpy, or
    jax.numpy inside a jitted function."""
    a = activations if xp is not np else np.asarray(activations, np.float64)
    if a.ndim == 2:
        return xp.concatenate([a, xp.abs(a), xp.abs(a)], axis=1)
    n, height, width, channels = a.shape
    if height % grid or width % grid:
        raise ValueError(f"layer of {height} x {width} pixels cannot be split into {grid} x {grid} blocks")
    blocks = a.reshape(n, grid, height // grid, grid, width // grid, channels)
    stats = [blocks.mean(axis=(2, 4)), xp.abs(blocks).mean(axis=(2, 4)), xp.sqrt((blocks**2).mean(axis=(2, 4)))]
    return xp.concatenate([s.reshape(n, -1) for s in stats], axis=1)


polarity_statistics = diagnosis.polarity_statistics
"""The output's polarity statistics, as `fit_directions` computes them for its diagnosis (one definition)."""


def held_out_accuracy(features: np.ndarray, values: np.ndarray, train: np.ndarray, seed: int) -> tuple[float, int]:
    """(held-out accuracy, test count) of a linear SVM on standardised features, labels above the median of the
    finite values [N]; ``train`` [N] marks the training latents."""
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    defined = np.isfinite(values)
    high = values > np.median(values[defined])
    fit, test = train & defined, ~train & defined
    scaler = StandardScaler().fit(features[fit])
    model = LinearSVC(C=1.0, dual="auto", max_iter=20_000, random_state=seed)
    model.fit(scaler.transform(features[fit]), high[fit])
    predicted = model.predict(scaler.transform(features[test]))
    return float(np.mean(predicted == high[test])), int(test.sum())


def network_position(name: str) -> tuple[int, int, str]:
    """Sort key putting flax layer names in the generators' call order: Dense_i, then Conv2D_i, then the rest."""
    kind, _, index = name.partition("_")
    rank = {"Dense": 0, "Conv2D": 1}.get(kind, 2)
    return rank, int(index) if index.isdigit() else 0, name


def layer_features(trained, z: np.ndarray, grid: int, batch: int = 250) -> tuple[dict[str, np.ndarray], dict]:
    """For a `solarjax.gan.load` generator: `pooled_statistics` of every layer's output, name -> [N, F] in
    network order (LeakyReLU applied, as the next layer sees it; the last layer before tanh; the dense layer
    reshaped to its 16 x 16 grid when it has 256 * C units; layers in `network_position` order), and the exact quantities name -> [N]."""
    import flax
    import jax
    import jax.numpy as jnp
    import ml_collections

    from solarjax import physics
    from solarjax.train import gan as gan_train
    from solarjax.train import sharding

    module = gan_train.programs_for(ml_collections.ConfigDict(trained.config), sharding.make_data_mesh()).generator

    @jax.jit
    def run(z):
        images, state = module.apply(
            {"params": trained.params}, z, capture_intermediates=True, mutable=["intermediates"]
        )
        captured = {
            "/".join(k for k in path if k != "__call__"): v[0] if isinstance(v, tuple) else v
            for path, v in flax.traverse_util.flatten_dict(state["intermediates"]).items()
            if path[0] != "__call__"
        }
        pooled = {}
        for name, value in captured.items():
            if value.shape[1:] != images.shape[1:]:  # not the output (before tanh)
                value = jnp.where(value >= 0, value, LEAKY_SLOPE * value)
            if value.ndim == 2 and value.shape[1] % 256 == 0:
                value = value.reshape(value.shape[0], 16, 16, -1)
            pooled[name] = pooled_statistics(value, grid, xp=jnp)
        pooled[POLARITY_FEATURES] = polarity_statistics(images, grid, xp=jnp)
        return pooled, physics.quantities(images)

    features, quantities = {}, {}
    for start in range(0, len(z), batch):
        pooled, exact = run(jnp.asarray(z[start : start + batch], jnp.float32))
        for name, value in pooled.items():
            features.setdefault(name, []).append(np.asarray(value, np.float64))
        for name, value in exact.items():
            quantities.setdefault(name, []).append(np.asarray(value))
    order = sorted((k for k in features if k != POLARITY_FEATURES), key=network_position) + [POLARITY_FEATURES]
    return ({k: np.concatenate(features[k]) for k in order}, {k: np.concatenate(v) for k, v in quantities.items()})


def wilson(successes: float, trials: int, z: float = 1.959964) -> list[float]:
    """Wilson score 95% interval of a proportion."""
    if trials <= 0:
        return [float("nan"), float("nan")]
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return [float(centre - half), float(centre + half)]


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gan-dir", type=pathlib.Path, required=True, help="GAN run directory (with checkpoints/)")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="JSON file to write")
    parser.add_argument("--latents", type=int, default=2000, help="latents drawn (default 2000)")
    parser.add_argument("--grid", type=int, default=4, help="spatial blocks per side of the pooling (default 4)")
    parser.add_argument("--seed", type=int, default=23, help="seed of the latents and the split (default 23)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument(
        "--polarity-only", action="store_true", help="fit only the polarity statistics, not every layer (faster)"
    )
    args = parser.parse_args(argv)
    if not (args.gan_dir / "checkpoints").is_dir():
        parser.exit(2, f"steering_layers: no GAN checkpoints in {args.gan_dir / 'checkpoints'}\n")
    if args.out.exists() and not args.overwrite:
        parser.exit(2, f"steering_layers: {args.out} exists (pass --overwrite to replace it)\n")
    if args.latents < 50:
        parser.exit(2, f"steering_layers: --latents must be at least 50, got {args.latents}\n")
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    from solarjax import gan

    trained = gan.load(args.gan_dir)
    z = rng.normal(size=(args.latents, trained.latent_dim)).astype(np.float32)
    train = rng.random(args.latents) < 0.8
    pooled, quantities = layer_features(trained, z, args.grid)
    if args.polarity_only:
        pooled = {POLARITY_FEATURES: pooled[POLARITY_FEATURES]}
    layers = {}
    for name, features in pooled.items():  # the layers in call order, then the polarity statistics
        row = {"features": int(features.shape[1]), "accuracy": {}}
        for quantity in QUANTITIES:
            accuracy, count = held_out_accuracy(features, quantities[quantity], train, args.seed)
            row["accuracy"][quantity] = {"value": accuracy, "interval": wilson(accuracy * count, count), "test": count}
        layers[name] = row
        print(
            f"{name:>12} {row['features']:>6} features: "
            + "  ".join(f"{q} {row['accuracy'][q]['value']:.3f}" for q in QUANTITIES),
            flush=True,
        )
    polarity = layers.pop(POLARITY_FEATURES)
    first = {
        q: next((name for name, row in layers.items() if row["accuracy"][q]["value"] >= TARGET_ACCURACY), None)
        for q in QUANTITIES
    }  # None for every quantity with --polarity-only
    result = {
        "settings": vars(args) | {"gan_dir": str(args.gan_dir), "out": str(args.out)},
        "layers": layers,
        "first_layer_reaching_0.85": first,
        POLARITY_FEATURES: polarity,
        "seconds": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
