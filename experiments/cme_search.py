""" "Find CMEs like this one": SimSiam on synthetic CME difference images, scored with the CME quantities.

    python -m experiments.cme_search --workdir runs/cme --out runs/cme/search [--num-examples 2500 --steps 200]
        [--physics-aux-weight 1.0]

The same machinery as for magnetograms, on the coronagraph family: the `cme_patches/synthetic` dataset
(built into WORKDIR/tfds unless already there at this size), a SimSiam encoder trained with
`experiments/configs/simsiam_cme_synthetic.py` (WORKDIR/ssl_seed<seed>_width<width>; a run found there is
resumed, so a second call only evaluates), an index of the train split's embeddings, and a search of every
test CME (the queries) in it.

Scoring (`solarjax.cme_retrieval`): for each method, the top-1 match of every query; the Pearson and
Spearman correlations between the query's and the match's central position angle (circular), angular
width and front height, measured on the images with `solarjax.cme_physics` (and, second table, the
synthetic truth), with 95% paired bootstrap intervals over the queries. Methods: ssl (the trained
encoder's backbone features, exact Euclidean top-1), pixel_l2, thumbnail_8x8, random_encoder (an untrained
encoder of the same architecture) and random (`solarjax.retrieval.evaluate` baselines). No
hyper-parameter is chosen on these data: the config's are fixed in advance. ``--physics-aux-weight`` > 0
adds the self-supervised physics head (``physics_targets = 'cme'``: each view's own cos/sin CPA, width,
front height and log excess, `solarjax.cme_physics.ssl_targets`; weight 1 as chosen on SHARP validation).

Writes to ``--out``: cme_index.npz (embeddings, ids and quantities of the indexed rows, the encoder's
fingerprint), cme_search.json (both tables with intervals, sizes, seconds), cme_search.png (queries and
their top-5 SSL matches with CPA / width / height); prints the tables.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

CONFIG_PATH = pathlib.Path(__file__).parent / "configs" / "simsiam_cme_synthetic.py"
METHODS = ("ssl", "pixel_l2", "thumbnail_8x8", "random_encoder", "random")
QUANTITIES = ("cpa_deg", "width_deg", "front_height_rsun", "excess")


def _arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workdir",
        type=pathlib.Path,
        required=True,
        help="holds tfds/ and ssl_seed<seed>_width<width>/ (made if absent)",
    )
    parser.add_argument("--out", type=pathlib.Path, required=True, help="folder for the JSON, PNG and index")
    parser.add_argument("--num-examples", type=int, default=2500, help="synthetic CMEs over all splits (default 2500)")
    parser.add_argument("--steps", type=int, default=200, help="SimSiam steps (default 200)")
    parser.add_argument("--width", type=int, default=8, help="ResNet-18 width (default 8)")
    parser.add_argument(
        "--seed",
        type=int,
        default=23,
        help="training and baseline seed (default 23; the data are the synthetic set 23)",
    )
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument(
        "--physics-aux-weight",
        type=float,
        default=0.0,
        help="weight of the CME physics head (default 0: plain SimSiam; 1.0: the head)",
    )
    args = parser.parse_args(argv)
    if args.num_examples < 50 or args.steps < 1 or args.width < 1 or not args.physics_aux_weight >= 0:
        parser.error("need --num-examples >= 50, --steps >= 1, --width >= 1 and --physics-aux-weight >= 0")
    return args


def load_split(data_dir: pathlib.Path, split: str) -> dict[str, np.ndarray]:
    """Images [N, 128, 128, 1], ids, the measured quantities and the truth of a cme_patches/synthetic split."""
    from solarjax.cme_retrieval import load_split as load

    return load(data_dir, split)


def ensure_dataset(data_dir: pathlib.Path, num_examples: int) -> None:
    """Builds cme_patches/synthetic of `num_examples` (the config's seed, 23) unless data_dir holds exactly that."""
    import tensorflow_datasets as tfds

    import data_builders  # noqa: F401
    from data_builders.cme_patches import build

    builder = tfds.builder("cme_patches/synthetic", data_dir=data_dir)
    if builder.is_prepared() and sum(s.num_examples for s in builder.info.splits.values()) == num_examples:
        return
    build("synthetic", data_dir, num_examples=num_examples)


def train_encoder(
    ssl_dir: pathlib.Path,
    data_dir: pathlib.Path,
    heldout: dict,
    steps: int,
    width: int,
    seed: int,
    physics_aux_weight: float = 0.0,
):
    """Trains (or resumes) the config's SimSiam in `ssl_dir`, monitored on held-out CME quantities."""
    from solarjax.train import loop, simsiam

    config = loop.load_config_file(CONFIG_PATH)
    config.total_steps, config.seed = steps, seed
    config.model.width = width
    config.data.data_dir = str(data_dir)
    config.eval_every = max(steps // 3, 1)
    if physics_aux_weight > 0:
        config.physics_aux_weight, config.physics_targets = physics_aux_weight, "cme"
    monitored = {name: heldout[name] for name in ("width_deg", "front_height_rsun", "excess")}
    count = min(config.knn.num_patches, len(heldout["image"]))
    held = simsiam.HeldOut.from_images(heldout["image"][:count], {k: v[:count] for k, v in monitored.items()})
    simsiam.train_and_evaluate(config, ssl_dir, heldout=held)


def top1_matches(queries: dict, database: dict, encoder, untrained, seed: int) -> dict[str, np.ndarray]:
    """int [Q] top-1 database row of every query, per method."""
    from solarjax.cme_retrieval import search_database, top_matches
    from solarjax.retrieval.table import embed_images

    searched = search_database(database["image"], database["embedding"], untrained)
    query_embedding = embed_images(encoder.embed, queries["image"])
    matches = top_matches(queries["image"], query_embedding, searched, untrained, seed)
    return {name: matches[name][:, 0] for name in METHODS}


def rare_case_recall(database: dict, untrained, seed: int, resamples: int) -> dict:
    """Recall of the planted double CMEs of the database in the top 5% of each rarity ranking
    (`solarjax.cme_mining`): k-NN distance (k = `cme_mining.KNN_K`, chosen in `experiments.cme_mining`) in
    the SSL, pixel, thumbnail and untrained-encoder spaces, the property outlier score of the measured
    quantities, the secondary-front share, the demo's ranking (SSL k-NN + secondary front) and random."""
    from solarjax import cme_mining
    from solarjax.retrieval.evaluate import thumbnails
    from solarjax.retrieval.table import embed_images

    is_rare = database["true_rare"] == 1
    if not is_rare.any():
        return {}
    images = database["image"]
    archive = cme_mining.archive_rarity(database["embedding"], images)
    scores = {
        "ssl_knn+secondary_front": archive["combined"],
        "ssl_knn": archive["ssl_knn"],
        "secondary_front": archive["secondary_front"],
        "pixel_knn": cme_mining.knn_rarity(images.reshape(len(images), -1)),
        "thumbnail_knn": cme_mining.knn_rarity(thumbnails(images)),
        "untrained_knn": cme_mining.knn_rarity(embed_images(untrained.embed, images)),
        "property_outlier": cme_mining.property_rarity(database),
        "random": np.random.default_rng(seed).random(len(images)),
    }
    return {
        name: cme_mining.recall_at_top(score, is_rare, resamples=resamples, seed=seed) for name, score in scores.items()
    }


def plot_examples(queries: dict, database: dict, encoder, path: pathlib.Path, count: int = 4, k: int = 5) -> None:
    """`count` queries (rows) next to their top-`k` SSL matches, titled with CPA / width / front height."""
    from matplotlib.figure import Figure

    from solarjax.retrieval.evaluate import feature_neighbours
    from solarjax.retrieval.table import embed_images

    picked = np.linspace(0, len(queries["image"]) - 1, count).astype(int)
    rows = feature_neighbours(embed_images(encoder.embed, queries["image"][picked]), database["embedding"], k)

    def title(columns, i):
        return f"{columns['cpa_deg'][i]:.0f} / {columns['width_deg'][i]:.0f} / {columns['front_height_rsun'][i]:.1f}"

    figure = Figure(figsize=(1.9 * (k + 1), 2.1 * count), layout="compressed")
    axes = figure.subplots(count, k + 1, squeeze=False)
    for r, q in enumerate(picked):
        panels = [(queries["image"][q], f"query\n{title(queries, q)}")]
        panels += [(database["image"][row], f"#{rank}\n{title(database, row)}") for rank, row in enumerate(rows[r], 1)]
        for ax, (image, text) in zip(axes[r], panels):
            ax.imshow(image[..., 0], cmap="gray", vmin=-0.6, vmax=0.6)
            ax.set_title(text, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    figure.suptitle("CME search: test query and top-5 SSL matches (CPA deg / width deg / front height Rsun)")
    figure.savefig(path, dpi=90)


def main(argv=None) -> dict:
    args = _arguments(argv)
    from solarjax import cme_retrieval, ssl
    from solarjax.retrieval.table import embed_images

    args.out.mkdir(parents=True, exist_ok=True)
    data_dir = args.workdir / "tfds"
    seconds = {}
    started = time.perf_counter()
    ensure_dataset(data_dir, args.num_examples)
    database, heldout, queries = (load_split(data_dir, split) for split in ("train", "validation", "test"))
    seconds["data"] = time.perf_counter() - started

    started = time.perf_counter()
    head = f"_aux{args.physics_aux_weight:g}" if args.physics_aux_weight > 0 else ""
    ssl_dir = args.workdir / f"ssl_seed{args.seed}_width{args.width}{head}"
    train_encoder(ssl_dir, data_dir, heldout, args.steps, args.width, args.seed, args.physics_aux_weight)
    seconds["train"] = time.perf_counter() - started

    started = time.perf_counter()
    encoder = ssl.load(ssl_dir)
    database["embedding"] = embed_images(encoder.embed, database["image"])
    np.savez(
        args.out / "cme_index.npz",
        embedding=database["embedding"],
        id=database["id"],
        fingerprint=encoder.fingerprint,
        **{name: database[name] for name in QUANTITIES},
    )
    untrained = ssl.random_init(encoder.config["model"], seed=args.seed)
    matches = top1_matches(queries, database, encoder, untrained, args.seed)
    seconds["search"] = time.perf_counter() - started

    started = time.perf_counter()
    reports = {}
    for label, prefix in (("measured", ""), ("truth", "true_")):

        def columns(split, prefix=prefix):
            return {name: split[prefix + name] for name in ("cpa_deg", "width_deg", "front_height_rsun")}

        reports[label] = cme_retrieval.score_matches(
            cme_retrieval.scoring_values(columns(queries)),
            cme_retrieval.scoring_values(columns(database)),
            matches,
            num_resamples=args.resamples,
            seed=args.seed,
        )
    plot_examples(queries, database, encoder, args.out / "cme_search.png")
    mining = rare_case_recall(database, untrained, args.seed, args.resamples)
    seconds["score"] = time.perf_counter() - started

    sizes = {
        "database": len(database["image"]),
        "queries": len(queries["image"]),
        "steps": args.steps,
        "width": args.width,
        "seed": args.seed,
        "resamples": args.resamples,
        "encoder_step": encoder.step,
        "physics_aux_weight": args.physics_aux_weight,
    }
    lines = [f"CME search, top-1 agreement (95% paired bootstrap): {sizes}"]
    for label, report in reports.items():
        lines += [
            "",
            f"quantities {label} ({'cme_physics on the images' if label == 'measured' else 'synthetic truth'}):",
            cme_retrieval.format_table(report, METHODS),
            cme_retrieval.format_differences(report, "ssl", METHODS[1:]),
        ]
    lines += ["", "rare-case mining: recall of the planted double CMEs of the database in the top 5% (bootstrap 95%):"]
    lines += [
        f"  {name:18s} {m['value']:.3f} [{m['low']:.3f}, {m['high']:.3f}] ({m['rare']} rare, top {m['top']})"
        for name, m in mining.items()
    ]
    print("\n".join(lines))
    summary = {
        "sizes": sizes,
        "reports": reports,
        "mining": mining,
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "encoder_fingerprint": encoder.fingerprint,
    }
    (args.out / "cme_search.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
