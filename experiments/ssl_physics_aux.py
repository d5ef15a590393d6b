"""Does a self-supervised physics head make the SimSiam search physical? (issue 16)

The exact quantities of a patch (`solarjax.physics`) are computed from the patch itself, label-free,
so predicting them from the encoder's features is a self-supervised target. This script trains the
demo's FULL SimSiam (300 steps at batch 64, width 16, the `search` augmentations) in several
variants on the same synthetic build, and scores each by the demo's retrieval evaluation
(`solarjax.retrieval.evaluate.evaluate_retrieval`, paired bootstrap 95% intervals) against pixel L2,
an 8x8 thumbnail, an untrained encoder of the same architecture, physics Euclidean and random:

  plain        the paper's SimSiam loss alone (``physics_aux_weight = 0``, whatever the config's default)
  aux<w>       the same plus w x the physics head's loss (`solarjax.train.simsiam.physics_aux_loss`)
  bigproj      the second design: a larger projector 1024-1024-256 with a 64-unit bottleneck
               predictor (the embedding searched stays the 128-d backbone features)

The aux weight is chosen on the validation split (`evaluate --split validation`); the test split
is scored only for the variants so chosen.

    nice -n 15 solarjax data build --config synthetic --data-dir /tmp/h16/tfds --num-examples 6000
    python experiments/ssl_physics_aux.py train plain --tfds-dir /tmp/h16/tfds --runs /tmp/h16/runs
    python experiments/ssl_physics_aux.py train aux1 --tfds-dir /tmp/h16/tfds --runs /tmp/h16/runs
    python experiments/ssl_physics_aux.py evaluate plain aux1 --split validation --tfds-dir ... --runs ... --out ...
    python experiments/ssl_physics_aux.py evaluate plain aux1 --split test --gan-workdir DEMO --tfds-dir ... \
        --runs ... --out ...

`--gan-workdir` (a demo directory with gan/) adds the paper's generated queries (500 from seed 23).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
from collections.abc import Sequence

import numpy as np

BIG_PROJECTOR = {"projector_dims": (1024, 1024, 256), "predictor_hidden": 64}
SCORED = ("tuf", "psep", "r_value")
RIVALS = ("pixel_l2", "thumbnail_8x8", "random_encoder")


def variant_config(variant: str, tfds_dir: pathlib.Path, seed: int):
    """The demo's FULL SimSiam config on `tfds_dir`, changed as `variant` says ('plain', 'aux<w>', 'bigproj')."""
    from solarjax import demo

    config = demo._simsiam_config(pathlib.Path(tfds_dir), demo.FULL)
    config.seed = seed
    config.keep_checkpoints = 8  # every 75-step checkpoint of the 300-step run stays scoreable
    config.physics_aux_weight = 0.0  # plain SimSiam unless the variant says otherwise (the config's default is 1)
    if variant.startswith("aux"):
        config.physics_aux_weight = float(variant[3:])
    elif variant == "bigproj":
        config.model.projector_dims = BIG_PROJECTOR["projector_dims"]
        config.model.predictor_hidden = BIG_PROJECTOR["predictor_hidden"]
    elif variant != "plain":
        raise ValueError(f"unknown variant {variant!r}: plain, aux<weight>, bigproj")
    return config


def run_dir(runs: pathlib.Path, variant: str, seed: int) -> pathlib.Path:
    return pathlib.Path(runs) / f"{variant}_s{seed}"


def train(args: argparse.Namespace) -> None:
    from solarjax.train import simsiam

    config = variant_config(args.variant, args.tfds_dir, args.seed)
    simsiam.train_and_evaluate(config, run_dir(args.runs, args.variant, args.seed))


def _split_arrays(tfds_dir: pathlib.Path, split: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    from solarjax import demo

    return demo._split_arrays(pathlib.Path(tfds_dir), split, keys)


def variant_comparison(
    query_values: dict[str, np.ndarray],
    database_values: dict[str, np.ndarray],
    top1: dict[tuple[str, int], np.ndarray],
    num_resamples: int = 1_000,
    seed: int = 0,
) -> dict:
    """Paired differences between runs searched with the same queries over the same table rows.

    Args:
      query_values: {quantity: [Q]} the queries' values; database_values: {quantity: [N]} the table's.
      top1: {(variant, seed): int [Q] top-1 rows of that run's SSL search (-1: none)}.
      num_resamples, seed: of the bootstrap (one set of query resamples per quantity, shared by every run).

    Returns:
      {quantity: {'n': common queries, 'runs': {run: {stat: interval}}, 'differences': {'a - b': {stat:
      interval}} for runs of one seed (each variant minus the first one listed), and 'mean over seeds: a - b'
      (the seeds' mean difference, every seed's run on the same resampled queries)}}.
    """
    from solarjax.retrieval import bootstrap

    runs = list(top1)
    variants = list(dict.fromkeys(variant for variant, _ in runs))
    seeds = list(dict.fromkeys(s for _, s in runs))
    report = {}
    for j, (name, x) in enumerate(query_values.items()):
        x = np.asarray(x, np.float64)
        table = np.asarray(database_values[name], np.float64)
        matched = {run: np.where(rows >= 0, table[np.maximum(rows, 0)], np.nan) for run, rows in top1.items()}
        keep = np.isfinite(x)
        for values in matched.values():
            keep &= np.isfinite(values)
        if keep.sum() < 3:
            continue
        indices = bootstrap.resample_indices(int(keep.sum()), num_resamples, seed + j)
        entry = {"n": int(keep.sum()), "runs": {}, "differences": {}}
        resampled = {}
        for run, values in matched.items():
            label = f"{run[0]}_s{run[1]}"
            entry["runs"][label] = {}
            for stat, function in bootstrap.STATISTICS.items():
                value = float(function(x[keep], values[keep]))
                resampled[run, stat] = function(x[keep][indices], values[keep][indices])
                entry["runs"][label][stat] = bootstrap.percentile_interval(value, resampled[run, stat])
        for variant in variants[1:]:
            for stat in bootstrap.STATISTICS:
                per_seed = []
                for s in seeds:
                    if (variant, s) not in top1 or (variants[0], s) not in top1:
                        continue
                    a, b = entry["runs"][f"{variant}_s{s}"][stat], entry["runs"][f"{variants[0]}_s{s}"][stat]
                    difference = resampled[(variant, s), stat] - resampled[(variants[0], s), stat]
                    entry["differences"].setdefault(f"{variant}_s{s} - {variants[0]}_s{s}", {})[stat] = (
                        bootstrap.percentile_interval(a["value"] - b["value"], difference)
                    )
                    per_seed.append((a["value"] - b["value"], difference))
                if per_seed:
                    entry["differences"].setdefault(f"mean over seeds: {variant} - {variants[0]}", {})[stat] = (
                        bootstrap.percentile_interval(
                            float(np.mean([v for v, _ in per_seed])), np.mean([d for _, d in per_seed], axis=0)
                        )
                    )
        report[name] = entry
    return report


def format_comparison(comparison: dict, statistic: str = "pearson") -> str:
    """Runs and their differences (rows) x quantities (columns): 'value [low, high]'."""
    from solarjax.retrieval import bootstrap
    from solarjax.retrieval.evaluate import QUANTITY_LABELS

    names = list(comparison)
    if not names:
        return "(no quantity with 3 common queries)"
    rows = list(comparison[names[0]]["runs"]) + list(comparison[names[0]]["differences"])
    lines = [["run"] + [f"{QUANTITY_LABELS.get(n, n)} (n={comparison[n]['n']})" for n in names]]
    for row in rows:
        cells = [row]
        for n in names:
            entry = comparison[n]["runs"].get(row) or comparison[n]["differences"].get(row)
            cells.append(bootstrap.format_interval(entry[statistic]) if entry else "-")
        lines.append(cells)
    widths = [max(len(line[j]) for line in lines) for j in range(len(lines[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines)


def compare_results(results: Sequence[dict]) -> dict:
    """`variant_comparison` of every run of one or more `evaluate` outputs (same queries and table),
    per query set, printed as tables.

    Returns:
      {query set: `variant_comparison` report}.
    """
    first = results[0]
    comparisons = {}
    for name, quantities in first["queries"].items():
        top1 = {}
        for result in results:
            if result["queries"].get(name) is None or not all(
                np.array_equal(
                    np.asarray(result["queries"][name][k], np.float64), np.asarray(v, np.float64), equal_nan=True
                )
                for k, v in quantities.items()
            ):
                raise ValueError(f"the {name!r} queries differ between the results compared")
            for run, entry in result["variants"].items():
                variant, _, seed = run.rpartition("_s")
                top1[variant, int(seed)] = np.asarray(entry[name]["top1"], np.int64)
        top1 = dict(sorted(top1.items(), key=lambda item: (item[0][0] != "plain", item[0])))
        comparisons[name] = variant_comparison(
            {k: np.asarray(v, np.float64) for k, v in quantities.items()},
            {k: np.asarray(v, np.float64) for k, v in first["database"].items()},
            top1,
        )
        for statistic in ("pearson", "spearman"):
            print(f"=== {name} queries: runs and paired differences, top-1 {statistic}", flush=True)
            print(format_comparison(comparisons[name], statistic), flush=True)
    return comparisons


def compare(args: argparse.Namespace) -> dict:
    """Paired comparison of the runs of several `evaluate` outputs (e.g. one per seed)."""
    results = [json.loads(pathlib.Path(path).read_text()) for path in args.results]
    comparison = compare_results(results)
    if args.out is not None:
        from solarjax.jsonable import jsonable

        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(jsonable(comparison), indent=1))
        print(f"wrote {args.out}")
    return comparison


def evaluate(args: argparse.Namespace) -> dict:
    """Every variant's run (each seed) scored on the same queries of each split against the same baselines,
    and the variants' paired differences per seed and averaged over seeds."""
    from solarjax import demo, physics, ssl
    from solarjax.retrieval import DATASET_FEATURES, build_index, embed_dataset
    from solarjax.retrieval import evaluate as evaluate_lib

    scored_names = evaluate_lib.SEARCH_QUANTITIES
    database = _split_arrays(args.tfds_dir, "train", ("image", *scored_names))
    query_sets = {}
    for split in args.split:
        queries = _split_arrays(args.tfds_dir, split, ("image", *physics.QUANTITY_NAMES))
        query_sets[split] = (queries["image"], {k: queries[k] for k in physics.QUANTITY_NAMES})
    if args.gan_workdir is not None:
        from solarjax import gan
        from solarjax.steering import directions as directions_lib

        generator = gan.load(args.gan_workdir / "gan")
        z = directions_lib.sample_latents(500, generator.latent_dim, seed=23)
        generated = np.asarray(generator.generate(z))
        query_sets["generated"] = (generated, {k: np.asarray(v) for k, v in physics.quantities(generated).items()})
    methods = ("ssl", "pixel_l2", "thumbnail_8x8", "random_encoder", "physics_euclidean", "random")
    results: dict = {
        "splits": list(args.split),
        "step": args.step,
        "seeds": list(args.seeds),
        "variants": {},
        "queries": {name: {k: quantities[k] for k in scored_names} for name, (_, quantities) in query_sets.items()},
        "database": {k: database[k] for k in scored_names},
    }
    baselines = None
    for variant in args.variants:
        for seed in args.seeds:
            directory = run_dir(args.runs, variant, seed)
            encoder = ssl.load(directory, step=args.step if args.step is not None else "latest")
            if baselines is None:  # an untrained encoder of the plain architecture, shared by every variant
                plain_model = {k: v for k, v in encoder.config["model"].items() if k != "physics_head"}
                plain_model.update(variant_config("plain", args.tfds_dir, seed).model.to_dict())
                baselines = evaluate_lib.BaselineFeatures(
                    database["image"], random_encoder=ssl.random_init(plain_model)
                )
            with tempfile.TemporaryDirectory() as scratch:  # the demo's index stage, for this encoder
                table = embed_dataset(
                    pathlib.Path(scratch) / "table",
                    encoder.embed,
                    encoder.fingerprint,
                    demo._split_batches(args.tfds_dir, "train", DATASET_FEATURES),
                    dataset="sharp_patches/synthetic:train",
                )
                index = build_index(table)
                entry = {"step": encoder.step}
                for name, (images, quantities) in query_sets.items():
                    report = evaluate_lib.evaluate_retrieval(
                        images,
                        quantities,
                        index,
                        encoder,
                        database_images=database["image"],
                        methods=methods,
                        baselines=baselines,
                        quantity_names=scored_names,
                    )
                    entry[name] = {
                        "correlations": report["correlations"],
                        "intervals": report["intervals"],
                        "top1": report["top1"]["ssl"],
                    }
                    print(f"--- {variant} seed {seed} step {encoder.step}, {name} queries", flush=True)
                    print(evaluate_lib.format_interval_table(report["intervals"]))
                    print(evaluate_lib.format_difference_table(report["intervals"], "ssl"), flush=True)
            results["variants"][f"{variant}_s{seed}"] = entry
    results["comparison"] = compare_results([results])
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / (
        f"ssl_physics_aux_{'+'.join(args.split)}_step{args.step or 'latest'}_"
        f"{'+'.join(args.variants)}_s{'+'.join(map(str, args.seeds))}.json"
    )
    from solarjax.jsonable import jsonable

    path.write_text(json.dumps(jsonable(results), indent=1))
    print(f"wrote {path}")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser("train", help="train one variant")
    train_parser.add_argument("variant", help="plain, aux<weight> (e.g. aux1), bigproj")
    eval_parser = commands.add_parser("evaluate", help="score trained variants")
    eval_parser.add_argument("variants", nargs="+")
    eval_parser.add_argument(
        "--split",
        choices=("validation", "test"),
        nargs="+",
        required=True,
        help="held-out splits whose patches are the queries (the choice is made on validation)",
    )
    eval_parser.add_argument("--out", type=pathlib.Path, required=True)
    eval_parser.add_argument("--gan-workdir", type=pathlib.Path, help="demo directory holding gan/")
    eval_parser.add_argument("--seeds", type=int, nargs="+", default=[23])
    eval_parser.add_argument("--step", type=int, help="checkpoint step scored for every variant (default: latest)")
    compare_parser = commands.add_parser("compare", help="paired comparison of the runs of several evaluate outputs")
    compare_parser.add_argument("results", nargs="+", type=pathlib.Path, help="evaluate's JSON outputs")
    compare_parser.add_argument("--out", type=pathlib.Path, help="JSON file to write")
    for sub in (train_parser, eval_parser):
        sub.add_argument("--tfds-dir", type=pathlib.Path, required=True)
        sub.add_argument("--runs", type=pathlib.Path, required=True)
    train_parser.add_argument("--seed", type=int, default=23)
    args = parser.parse_args(argv)
    if args.command == "compare":
        missing = [str(path) for path in args.results if not path.is_file()]
        if missing:
            parser.error(f"no such result file: {', '.join(missing)}")
        compare(args)
        return 0
    if not args.tfds_dir.is_dir():
        parser.error(f"--tfds-dir {args.tfds_dir}: no such directory")
    train(args) if args.command == "train" else evaluate(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
