r"""Why do edited patches at |alpha| = 2 leave the data's Frechet distance? Move size against off-manifold texture.

Command::

    python -m experiments.steering_realism --tfds-dir /work/demo_s3/tfds --out results/steering_realism \
        --gan-run 24=RUN --gan-step 24=1100 --directions 24=DIRS [--quantities tuf area] \
        [--methods paper local local_critic] [--latents 100] [--pool 2000] [--resamples 200]

For each seed's GAN and each family and target quantity, the same base latents as `evaluate_families`
(seed 0) are moved plainly to alpha = +2 (even latents) and -2 (odd), as the realism guard does. Every
figure has a bootstrap 95% interval over the base latents (edited, unedited and their matched rows
resampled together; the data fixed):

* ``move_sd``: signed change of the target (towards the requested side) in prior standard deviations;
* ``frechet_ratio``: FD(edited, data) / FD(unedited, data) (the issue's guard);
* ``matched_ratio``: FD(edited, data matched on the target) / FD(unedited, data matched on its values);
* ``generated_ratio``: FD(edited, data matched on the target) / FD(unedited generated patches from a pool of
  ``--pool`` z ~ N(0, I) matched on the same target values, same data rows): does the edit make patches like
  those the GAN itself makes at that value;
* ``shift_ratio``: FD(edited, unedited) / FD(data matched on the edited values, data matched on the
  unedited values): how far the edit moves the patches against how far the same change of the target
  moves real patches;
* texture diagnostics of `solarjax.train.quality` (noise width of quiet pixels, mean gradient, share of
  pixels beyond +-500 G) and the GAN discriminator's mean logit (`solarjax.steering.critic`) of the edited,
  unedited, matched data and matched generated patches.

Writes OUT/steering_realism.json and .md, and OUT/edits_seed<S>_<quantity>.png (six base latents: the
unedited patch and the paper and local edits at alpha = +-2).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
from collections.abc import Sequence

import numpy as np

from solarjax.jsonable import jsonable

ALPHAS = np.array([-2.0, 0.0, 2.0])


def _fd(a: np.ndarray, b: np.ndarray) -> float:
    from solarjax.train import quality

    return quality.frechet_distance(*quality.gaussian_fit(a), *quality.gaussian_fit(b))


def _interval(statistic, count: int, resamples: int, seed: int = 0) -> dict[str, float]:
    """{'value', 'low', 'high'}: statistic(rows) on all rows and its percentile bootstrap 95% interval."""
    rng = np.random.default_rng(seed)
    draws = [statistic(rng.integers(0, count, count)) for _ in range(resamples)]
    low, high = np.percentile(np.asarray(draws, np.float64), [2.5, 97.5])
    return {"value": float(statistic(np.arange(count))), "low": float(low), "high": float(high)}


def measure(
    generator, directions, critic, method: str, name: str, z: np.ndarray, data: dict, pool: tuple, resamples: int
) -> tuple[dict, dict]:
    """The figures of one family and target on base latents z [N, D] (module docstring); and the images."""
    from solarjax.steering import evaluate, families
    from solarjax.steering.directions import map_generated
    from solarjax.train import quality

    encoder = quality.random_feature_encoder(0)
    if method == "local_critic":  # the local family with the realism guard (critic logit floor)
        from solarjax.steering import local

        latents, _ = local.local_traversal(generator, z, name, (), ALPHAS, critic=critic)
    else:
        latents, _ = families.steer_traversal(method, generator, directions, z, name, (), ALPHAS)
    count = len(z)
    sign = np.where(np.arange(count) % 2 == 0, 1.0, -1.0)
    edited_z = latents[np.arange(count), np.where(sign > 0, 2, 0)]
    sets = {"edited": map_generated(generator, edited_z), "unedited": map_generated(generator, latents[:, 1])}
    summaries = {key: quality.summarise([images], encoder) for key, images in sets.items()}
    edited_q, unedited_q = (np.asarray(summaries[k].quantities[name], np.float64) for k in ("edited", "unedited"))
    rows_e = evaluate.matched_rows(data["values"][name], edited_q)
    rows_u = evaluate.matched_rows(data["values"][name], unedited_q)
    pool_rows = evaluate.matched_rows(pool[1][name], edited_q)
    sets["data_matched"] = data["images"][rows_e]
    sets["generated_matched"] = map_generated(generator, pool[0][pool_rows])
    for key in ("data_matched", "generated_matched"):
        summaries[key] = quality.summarise([sets[key]], encoder)
    features = {key: s.features for key, s in summaries.items()}
    features["data_matched_unedited"] = data["features"][rows_u]
    e, u, de, du, ge = (
        features[k] for k in ("edited", "unedited", "data_matched", "data_matched_unedited", "generated_matched")
    )
    everything = data["features"]
    move = sign * (edited_q - unedited_q) / directions.std[name]
    figures = {
        "move_sd": _interval(lambda r: np.nanmedian(move[r]), count, resamples),
        "frechet_edited_data": _interval(lambda r: _fd(e[r], everything), count, resamples),
        "frechet_unedited_data": _interval(lambda r: _fd(u[r], everything), count, resamples),
        "frechet_ratio": _interval(lambda r: _fd(e[r], everything) / _fd(u[r], everything), count, resamples),
        "matched_ratio": _interval(lambda r: _fd(e[r], de[r]) / _fd(u[r], du[r]), count, resamples),
        "generated_ratio": _interval(lambda r: _fd(e[r], de[r]) / _fd(ge[r], de[r]), count, resamples),
        "shift_ratio": _interval(lambda r: _fd(e[r], u[r]) / _fd(de[r], du[r]), count, resamples),
        "texture": {
            key: {d: float(np.nanmean(summaries[key].diagnostics[d])) for d in TEXTURE}
            for key in ("edited", "unedited", "data_matched", "generated_matched")
        },
        "critic_logit": {key: float(np.mean(critic.logits(sets[key]))) for key in sets} if critic else {},
    }
    return figures, sets


TEXTURE = ("noise_width_gauss", "mean_gradient_gauss_per_pixel", "strong_pixel_fraction")


def plot_edits(sets_by_method: dict, path: pathlib.Path, columns: int = 6) -> None:
    """Rows: unedited, then each method's edit at alpha = +2 (even columns) / -2 (odd); six base latents."""
    from matplotlib.figure import Figure

    from solarjax import plotting

    rows = [("unedited", next(iter(sets_by_method.values()))["unedited"])] + [
        (f"{method} edit", sets["edited"]) for method, sets in sets_by_method.items()
    ]
    figure = Figure(figsize=(2.0 * columns + 1, 2.1 * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), columns)
    for r, (label, images) in enumerate(rows):
        for c in range(columns):
            field = plotting.show_field(axes[r, c], np.asarray(images[c]))
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(f"latent {c}, alpha {'+2' if c % 2 == 0 else '-2'}")
        axes[r, 0].set_ylabel(label)
    figure.colorbar(field, ax=axes, label="Br [G]", shrink=0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=70)


def run_seed(seed, gan_run, gan_step, directions_dir, reference, args) -> dict:
    from solarjax import gan
    from solarjax.steering import directions as directions_lib
    from solarjax.steering import evaluate
    from solarjax.steering.critic import load_critic
    from solarjax.steering.directions import sample_latents
    from solarjax.train import quality

    started = time.perf_counter()
    generator = gan.load(gan_run, step=gan_step)
    directions = directions_lib.load_directions(directions_dir, generator)
    critic = load_critic(generator)
    summary = quality.summarise(
        [reference[i : i + 256] for i in range(0, len(reference), 256)], quality.random_feature_encoder(0)
    )
    data = {"images": reference, "values": summary.quantities, "features": summary.features}
    pool = evaluate.generated_pool(generator, args.pool, seed=3)
    z = sample_latents(args.latents, generator.latent_dim, 0)
    result = {"seed": seed, "gan_run": str(gan_run), "gan_step": generator.step, "fingerprint": generator.fingerprint}
    result["critic_logit_data"] = float(np.mean(critic.logits(reference)))
    result["figures"] = {}
    for name in args.quantities:
        sets_by_method = {}
        for method in args.methods:
            figures, sets = measure(generator, directions, critic, method, name, z, data, pool, args.resamples)
            result["figures"].setdefault(method, {})[name] = figures
            sets_by_method[method] = sets
            print(f"seed {seed} {method} {name}: {json.dumps(jsonable(figures))}", flush=True)
        plot_edits(sets_by_method, args.out / f"edits_seed{seed}_{name}.png")
    result["seconds"] = time.perf_counter() - started
    return result


def _cell(f: dict) -> str:
    return f"{f['value']:.2f} [{f['low']:.2f}, {f['high']:.2f}]"


def markdown(runs: Sequence[dict]) -> str:
    lines = [
        "| seed | family | quantity | move (sd) | FD ratio | matched | generated | shift | FD edited-data | "
        "noise width e/u/data/gen (G) | gradient e/u/data/gen (G/px) | >500 G e/u/data/gen | D logit e/u/data/gen |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for method, rows in run["figures"].items():
            for name, f in rows.items():
                texture = [
                    "/".join(
                        f"{f['texture'][k][d]:.{3 if d == 'strong_pixel_fraction' else 1}f}"
                        for k in ("edited", "unedited", "data_matched", "generated_matched")
                    )
                    for d in TEXTURE
                ]
                logits = f["critic_logit"]
                lines.append(
                    f"| {run['seed']} | {method} | {name} | {_cell(f['move_sd'])} | {_cell(f['frechet_ratio'])} | "
                    f"{_cell(f['matched_ratio'])} | {_cell(f['generated_ratio'])} | {_cell(f['shift_ratio'])} | "
                    f"{f['frechet_edited_data']['value']:.3f} (unedited {f['frechet_unedited_data']['value']:.3f}) | "
                    + " | ".join(texture)
                    + " | "
                    + "/".join(
                        f"{logits.get(k, float('nan')):.2f}"
                        for k in ("edited", "unedited", "data_matched", "generated_matched")
                    )
                    + " |"
                )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> list[dict]:
    from experiments.steering_seeds import _reference_images, _seed_paths, _seed_steps

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tfds-dir", type=pathlib.Path, required=True)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--gan-run", action="append", default=[], metavar="SEED=PATH", required=True)
    parser.add_argument("--gan-step", action="append", default=[], metavar="SEED=STEP")
    parser.add_argument("--directions", action="append", default=[], metavar="SEED=PATH", required=True)
    parser.add_argument("--quantities", nargs="+", default=["tuf", "area"])
    parser.add_argument(
        "--methods", nargs="+", default=["paper", "local"], help="families; local_critic: local with the realism guard"
    )
    parser.add_argument("--latents", type=int, default=100)
    parser.add_argument("--pool", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=200)
    args = parser.parse_args(argv)
    try:
        runs, steps, dirs = (
            _seed_paths(args.gan_run, "--gan-run"),
            _seed_steps(args.gan_step),
            _seed_paths(args.directions, "--directions"),
        )
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    missing = sorted(set(runs) - set(dirs))
    if missing:
        parser.exit(2, f"error: no --directions for seed(s) {missing}\n")
    if not (args.tfds_dir / "sharp_patches").is_dir():
        parser.exit(2, f"error: {args.tfds_dir}: no sharp_patches dataset\n")
    args.out.mkdir(parents=True, exist_ok=True)
    reference = _reference_images(args.tfds_dir, 1000)
    results = []
    for seed, run in runs.items():
        results.append(run_seed(seed, run, steps.get(seed, "best"), dirs[seed], reference, args))
        (args.out / "steering_realism.json").write_text(json.dumps(jsonable(results), indent=1))
        (args.out / "steering_realism.md").write_text(markdown(results))
    return results


if __name__ == "__main__":
    main()
