"""Does a self-supervised physics head make the SimSiam search physical? (issue 16)

The exact quantities of a patch (`solarjax.physics`) are computed from the patch itself, label-free,
so predicting them from the encoder's features is a self-supervised target. This script trains the
demo's FULL SimSiam (300 steps at batch 64, width 16, the `search` augmentations) in several
variants on the same synthetic build, and scores each by the demo's retrieval evaluation
(`solarjax.retrieval.evaluate.evaluate_retrieval`, paired bootstrap 95% intervals) against pixel L2,
an 8x8 thumbnail, an untrained encoder of the same architecture, physics Euclidean and random:

  plain        today's recipe (``physics_aux_weight = 0``)
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


def evaluate(args: argparse.Namespace) -> dict:
    """Every variant's run scored on the same queries of `args.split` against the same baselines."""
    from solarjax import demo, physics, ssl
    from solarjax.retrieval import DATASET_FEATURES, build_index, embed_dataset
    from solarjax.retrieval import evaluate as evaluate_lib

    database = _split_arrays(args.tfds_dir, "train", ("image",))
    queries = _split_arrays(args.tfds_dir, args.split, ("image", *physics.QUANTITY_NAMES))
    query_sets = {"heldout": (queries["image"], {k: queries[k] for k in physics.QUANTITY_NAMES})}
    if args.gan_workdir is not None:
        from solarjax import gan
        from solarjax.steering import directions as directions_lib

        generator = gan.load(args.gan_workdir / "gan")
        z = directions_lib.sample_latents(500, generator.latent_dim, seed=23)
        generated = np.asarray(generator.generate(z))
        query_sets["generated"] = (generated, {k: np.asarray(v) for k, v in physics.quantities(generated).items()})
    methods = ("ssl", "pixel_l2", "thumbnail_8x8", "random_encoder", "physics_euclidean", "random")
    results: dict = {"split": args.split, "variants": {}}
    baselines = None
    for variant in args.variants:
        for seed in args.seeds:
            directory = run_dir(args.runs, variant, seed)
            encoder = ssl.load(directory, step=args.step if args.step is not None else "latest")
            if baselines is None:  # an untrained encoder of the plain architecture, shared by every variant
                plain_model = {k: v for k, v in encoder.config["model"].items() if k != "physics_head"}
                plain_model.update(variant_config("plain", args.tfds_dir, seed).model.to_dict())
                baselines = evaluate_lib.BaselineFeatures(
                    database["image"], random_encoder=ssl.random_init(plain_model))
            with tempfile.TemporaryDirectory() as scratch:  # the demo's index stage, for this encoder
                table = embed_dataset(pathlib.Path(scratch) / "table", encoder.embed, encoder.fingerprint,
                                      demo._split_batches(args.tfds_dir, "train", DATASET_FEATURES),
                                      dataset="sharp_patches/synthetic:train")
                index = build_index(table)
                entry = {}
                for name, (images, quantities) in query_sets.items():
                    report = evaluate_lib.evaluate_retrieval(
                        images, quantities, index, encoder, database_images=database["image"], methods=methods,
                        baselines=baselines, quantity_names=evaluate_lib.SEARCH_QUANTITIES)
                    entry[name] = {"correlations": report["correlations"], "intervals": report["intervals"]}
                    print(f"--- {variant} seed {seed}, {name} queries of {args.split}", flush=True)
                    print(evaluate_lib.format_interval_table(report["intervals"]))
                    print(evaluate_lib.format_interval_table(report["intervals"], "spearman"))
                    print(evaluate_lib.format_difference_table(report["intervals"], "ssl"))
                    print(evaluate_lib.format_difference_table(report["intervals"], "ssl", "spearman"), flush=True)
            results["variants"][f"{variant}_s{seed}"] = entry
    args.out.mkdir(parents=True, exist_ok=True)
    results["step"] = args.step
    path = args.out / f"ssl_physics_aux_{args.split}_step{args.step or 'latest'}_{'+'.join(args.variants)}.json"
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
    eval_parser.add_argument("--split", choices=("validation", "test"), required=True)
    eval_parser.add_argument("--out", type=pathlib.Path, required=True)
    eval_parser.add_argument("--gan-workdir", type=pathlib.Path, help="demo directory holding gan/")
    eval_parser.add_argument("--seeds", type=int, nargs="+", default=[23])
    eval_parser.add_argument("--step", type=int, help="checkpoint step scored for every variant (default: latest)")
    for sub in (train_parser, eval_parser):
        sub.add_argument("--tfds-dir", type=pathlib.Path, required=True)
        sub.add_argument("--runs", type=pathlib.Path, required=True)
    train_parser.add_argument("--seed", type=int, default=23)
    args = parser.parse_args(argv)
    if not args.tfds_dir.is_dir():
        parser.error(f"--tfds-dir {args.tfds_dir}: no such directory")
    train(args) if args.command == "train" else evaluate(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
