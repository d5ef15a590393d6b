"""`solarjax demo --dataset cme`: the method end to end on synthetic CME difference images, on a CPU.

The machinery of the SHARP demo (`solarjax.demo`), on the coronagraph family; stages cached by config
fingerprint (`solarjax.stages`) in `outdir/<stage>/stage.json`:

1. dataset     build `cme_patches/synthetic` (with its planted 1% of double CMEs) into `outdir/tfds`
2. gan         train the plain resize-convolution GAN (`gan:cme_synthetic`) on the CME images
3. directions  the paper (linear SVM) and local (gradient path) families of width, CPA, excess and front
               height, scored by monotonicity with bootstrap 95% intervals; a traversal figure
4. simsiam     SimSiam with the physics head predicting the CME quantities of each view
               (``physics_targets = 'cme'``: cos/sin CPA, width, front height, log excess)
5. index       `solarjax index build --dataset cme_patches` of the training split (table + index)
6. retrieval   test CMEs as queries: top-1 agreement of CPA, width, front height against pixel, thumbnail,
               untrained encoder and random (paired bootstrap); rare-case mining (recall of the planted
               double CMEs in the top 5% of each rarity ranking; the ranking reported is SSL k-NN combined
               with the secondary-front share, `cme_mining.archive_rarity`, and its top 12); a generated
               'wide and bright' query, and real held-out wide and bright CMEs as queries
7. report      `report.html` (self-contained) and `metrics.json`
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import logging
import os
import pathlib
import shutil
import time
from typing import Any

import numpy as np

from solarjax.stages import StageRunner, claimed


@dataclasses.dataclass(frozen=True)
class CmeDemoSize:
    """How much work each stage does; `QUICK` for smoke tests, `FULL` for the real demo."""

    num_examples: int  # synthetic CMEs over all splits (80/10/10)
    gan_steps: int  # GAN steps at batch 32
    directions_samples: int  # generated images for the linear SVMs
    steering_latents: int  # base latents of the monotonicity evaluation
    simsiam_steps: int  # SimSiam steps at batch 32
    simsiam_width: int  # ResNet-18 base width
    wide_bright_queries: int  # generated 'wide and bright' queries
    index_kind: str  # 'exact' or 'scann'


QUICK = CmeDemoSize(
    num_examples=600,
    gan_steps=30,
    directions_samples=300,
    steering_latents=4,
    simsiam_steps=10,
    simsiam_width=8,
    wide_bright_queries=4,
    index_kind="exact",
)
FULL = CmeDemoSize(
    num_examples=5_000,
    gan_steps=800,
    directions_samples=2_000,
    steering_latents=32,
    simsiam_steps=300,
    simsiam_width=8,
    wide_bright_queries=32,
    index_kind="scann",
)
STAGE_ESTIMATES_S = {
    "dataset": 40,
    "gan": 600,
    "directions": 240,
    "simsiam": 400,
    "index": 30,
    "retrieval": 120,
    "report": 1,
}
DEMO_ENTRIES = frozenset({*STAGE_ESTIMATES_S, "tfds", "report.html", "metrics.json"})
SEED = 23


def run_cme_demo(outdir: str | os.PathLike, *, quick: bool = False, log=logging.getLogger(__name__).info) -> dict:
    """Runs (or resumes) the CME demo into `outdir`; returns the metrics written to `metrics.json`."""
    outdir = pathlib.Path(outdir)
    with claimed(outdir, DEMO_ENTRIES):
        return _run(outdir, QUICK if quick else FULL, log)


def _run(outdir: pathlib.Path, size: CmeDemoSize, log) -> dict:
    quick = size is QUICK
    runner = StageRunner(outdir, total=7, log=log)
    scale = 0.1 if quick else 1.0
    tfds_dir = outdir / "tfds"
    started = time.perf_counter()
    results: dict[str, Any] = {}
    results["dataset"] = runner.run(
        "dataset",
        {"num_examples": size.num_examples, "builder_version": _builder_version()},
        lambda d: _stage_dataset(tfds_dir, size),
        estimate_s=STAGE_ESTIMATES_S["dataset"] * scale,
    )
    gan_config, simsiam_config = gan_config_of(tfds_dir, size), simsiam_config_of(tfds_dir, size)
    results["gan"] = runner.run(
        "gan",
        _fingerprint_view(gan_config),
        lambda d: _stage_gan(d, gan_config, tfds_dir),
        depends_on=("dataset",),
        estimate_s=STAGE_ESTIMATES_S["gan"] * scale,
        resumable=True,
    )
    results["directions"] = runner.run(
        "directions",
        {"samples": size.directions_samples, "latents": size.steering_latents, "version": 2},  # 2: local path 6 x 0.5
        lambda d: _stage_directions(d, outdir / "gan", size),
        depends_on=("gan",),
        estimate_s=STAGE_ESTIMATES_S["directions"] * scale,
    )
    results["simsiam"] = runner.run(
        "simsiam",
        _fingerprint_view(simsiam_config),
        lambda d: _stage_simsiam(d, simsiam_config),
        depends_on=("dataset",),
        estimate_s=STAGE_ESTIMATES_S["simsiam"] * scale,
        resumable=True,
    )
    results["index"] = runner.run(
        "index",
        {"kind": size.index_kind},
        lambda d: _stage_index(d, tfds_dir, outdir / "simsiam", size),
        depends_on=("simsiam",),
        estimate_s=STAGE_ESTIMATES_S["index"] * scale,
    )
    results["retrieval"] = runner.run(
        "retrieval",
        {"queries": size.wide_bright_queries, "version": 3},
        lambda d: _stage_retrieval(d, outdir, tfds_dir, size),
        depends_on=("gan", "directions", "index"),
        estimate_s=STAGE_ESTIMATES_S["retrieval"] * scale,
    )
    metrics = {
        "dataset_family": "cme_patches",
        "size": "quick" if quick else "full",
        "stage_seconds": _stage_seconds(outdir),
        **results,
    }
    runner.run(
        "report",
        {"metrics": metrics},
        lambda d: _stage_report(outdir, metrics),
        depends_on=("retrieval",),
        estimate_s=1,
    )
    log(f"CME demo finished in {time.perf_counter() - started:.0f} s: {outdir / 'report.html'}")
    return metrics


def _stage_seconds(outdir: pathlib.Path) -> dict[str, float]:
    return {
        record.parent.name: round(json.loads(record.read_text())["seconds"], 1)
        for record in sorted(outdir.glob("*/stage.json"))
        if record.parent.name != "report"
    }


def _builder_version() -> str:
    from data_builders.cme_patches.cme_patches_dataset_builder import Builder

    return str(Builder.VERSION)


def _fingerprint_view(config) -> dict:
    """A trainer config without its data directory (which moves with the output directory)."""
    view = config.to_dict()
    view["data"] = {k: v for k, v in view["data"].items() if k != "data_dir"}
    return view


def gan_config_of(tfds_dir: pathlib.Path, size: CmeDemoSize):
    """`gan:cme_synthetic` on `cme_patches/synthetic`; no quality evaluation in the trainer (its realism figures
    are Br physics): the last checkpoint is used and the GAN stage measures CME realism itself."""
    from solarjax import configs

    config = configs.load("gan:cme_synthetic", lock=False)
    config.total_steps = size.gan_steps
    config.data.data_dir = str(tfds_dir)
    config.data.dataset = "cme_patches"
    config.data.canonical_polarity = False
    config.eval_every = 0
    config.sample_every = max(size.gan_steps // 3, 1)
    config.checkpoint_every = max(size.gan_steps // 5, 1)
    config.log_every = max(size.gan_steps // 30, 1)
    return config


def simsiam_config_of(tfds_dir: pathlib.Path, size: CmeDemoSize):
    """`simsiam:cme_synthetic` with the physics head on the CME quantities (weight 1, as chosen on SHARP)."""
    from solarjax import configs

    config = configs.load("simsiam:cme_synthetic", lock=False)
    config.total_steps = size.simsiam_steps
    config.model.width = size.simsiam_width
    config.data.data_dir = str(tfds_dir)
    config.physics_aux_weight = 1.0
    config.physics_targets = "cme"
    config.checkpoint_every = max(size.simsiam_steps // 2, 1)
    config.log_every = max(size.simsiam_steps // 10, 1)
    return config


# ------------------------------------------------------------------------------------------ stages
def _stage_dataset(tfds_dir: pathlib.Path, size: CmeDemoSize) -> dict:
    import tensorflow_datasets as tfds

    from data_builders.cme_patches import build

    tfds.disable_progress_bar()
    started = time.perf_counter()
    info = build("synthetic", tfds_dir, num_examples=size.num_examples)
    return {
        "splits": {name: split.num_examples for name, split in info.splits.items()},
        "examples_per_second": round(size.num_examples / (time.perf_counter() - started), 1),
    }


def _stage_gan(stage_dir: pathlib.Path, config, tfds_dir: pathlib.Path) -> dict:
    from solarjax import gan
    from solarjax.cme_retrieval import load_split
    from solarjax.steering import directions as directions_lib
    from solarjax.train import gan as gan_train
    from solarjax.train import monitor
    from solarjax.train import quality as quality_lib

    gan_train.train_and_evaluate(config, stage_dir)
    generator = gan.load(stage_dir)
    data = load_split(tfds_dir, "validation")
    count = len(data["image"])
    z = directions_lib.sample_latents(count, generator.latent_dim, SEED)
    from solarjax import cme_steering

    generated = cme_steering.generated_quantities(generator, z)
    reference = {name: data[name] for name in ("cpa_deg", "width_deg", "front_height_rsun", "excess")}
    ks = quality_lib.ks_distances({k: generated[k] for k in reference}, reference)
    images = np.asarray(generator.generate(generator.sample_latents(8, seed=0)))
    monitor.save_comparison_grid(
        data["image"][:8],
        images,
        stage_dir / "realism_grid.png",
        columns=4,
        labels=("training CMEs", f"generated (step {generator.step})"),
    )
    defined = {k: float(np.isfinite(v).mean()) for k, v in generated.items()}
    return {
        "steps": config.total_steps,
        "step": generator.step,
        "arch": config.model.arch,
        "ks_cme_quantities": ks,
        "defined_fraction": defined,
        "compared_images": count,
    }


def _stage_directions(stage_dir: pathlib.Path, gan_dir: pathlib.Path, size: CmeDemoSize) -> dict:
    from solarjax import cme_steering, gan
    from solarjax.steering import directions as directions_lib

    generator = gan.load(gan_dir)
    paper = cme_steering.fit_paper_directions(generator, n=size.directions_samples, seed=SEED)
    np.savez(stage_dir / "paper_normals.npz", **{name: fit["normal"] for name, fit in paper.items()})
    report = cme_steering.evaluate_families(generator, paper, n_latents=size.steering_latents)
    z = directions_lib.sample_latents(size.steering_latents, generator.latent_dim, 7)  # evaluate_families' latents
    for name in ("width_deg", "excess"):
        cme_steering.plot_traversal(generator, z, stage_dir / f"traversal_{name}.png", name)
    return {
        "svm_test_accuracy": {name: fit["test_accuracy"] for name, fit in paper.items()},
        "monotonicity": report["results"],
        "best_method": report["best_method"],
        "alphas": report["alphas"],
        "n_latents": report["n_latents"],
        "tables": {
            "monotonicity (Spearman with alpha, bootstrap 95% over base latents)": cme_steering.monotonicity_table(
                report
            )
        },
    }


def _stage_simsiam(stage_dir: pathlib.Path, config) -> dict:
    from solarjax.train import simsiam

    simsiam.train_and_evaluate(config, stage_dir)
    rows = [json.loads(line) for line in (stage_dir / "metrics.jsonl").read_text().splitlines()]
    last = [row for row in rows if "loss" in row][-1]
    return {
        "steps": config.total_steps,
        "loss": last.get("loss"),
        "collapse": last.get("collapse"),
        "physics_aux": last.get("physics_aux"),
        "physics_targets": "cme",
    }


def _stage_index(stage_dir: pathlib.Path, tfds_dir: pathlib.Path, ssl_dir: pathlib.Path, size: CmeDemoSize) -> dict:
    """The train split embedded and indexed as `solarjax index build --dataset cme_patches` does."""
    from solarjax import ssl
    from solarjax.data import pipeline
    from solarjax.retrieval import build_index, embed_dataset
    from solarjax.retrieval.table import dataset_features

    encoder = ssl.load(ssl_dir)
    batches = pipeline.make_iterator(
        "train",
        batch_size=128,
        seed=0,
        data_dir=tfds_dir,
        config="synthetic",
        dataset="cme_patches",
        num_epochs=1,
        shuffle=False,
        drop_remainder=False,
        keys=dataset_features("cme_patches"),
    )
    built = stage_dir / "built"
    shutil.rmtree(built, ignore_errors=True)  # left by an interrupted run of this stage
    table = embed_dataset(
        built / "table",
        encoder.embed,
        encoder.fingerprint,
        batches,
        dataset="cme_patches/synthetic:train",
        dataset_name="cme_patches",
    )
    index = build_index(table, kind=size.index_kind)
    index.save(built / "index")
    return {"rows": int(index.table.num_rows), "kind": index.kind, "index_dir": str(built)}


def _stage_retrieval(stage_dir: pathlib.Path, outdir: pathlib.Path, tfds_dir: pathlib.Path, size: CmeDemoSize) -> dict:
    from solarjax import cme_mining, cme_physics, cme_retrieval, cme_steering, gan, ssl
    from solarjax.retrieval import load_index
    from solarjax.retrieval import ranking as ranking_lib
    from solarjax.retrieval.table import embed_images
    from solarjax.steering import directions as directions_lib

    encoder = ssl.load(outdir / "simsiam")
    index = load_index(outdir / "index" / "built" / "index", expected_fingerprint=encoder.fingerprint)
    database = cme_retrieval.load_split(tfds_dir, "train")
    queries = cme_retrieval.load_split(tfds_dir, "test")
    table_ids = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in index.table.column("id")])
    order = {row_id: i for i, row_id in enumerate(database["id"])}
    rows = np.array([order[i] for i in table_ids])  # table row -> database row
    embedding = np.empty((len(rows), index.table.dim), np.float32)
    embedding[rows] = index.table.all_embeddings()
    untrained = ssl.random_init(encoder.config["model"], seed=SEED)
    searched = cme_retrieval.search_database(database["image"], embedding, untrained)

    # 1. Search: test CMEs as queries, top-1 agreement of the measured quantities.
    matches = cme_retrieval.top_matches(
        queries["image"], embed_images(encoder.embed, queries["image"]), searched, untrained, SEED
    )
    names = ("cpa_deg", "width_deg", "front_height_rsun")
    search = {}
    for label, prefix in (("measured", ""), ("truth", "true_")):
        search[label] = cme_retrieval.score_matches(
            cme_retrieval.scoring_values({n: queries[prefix + n] for n in names}),
            cme_retrieval.scoring_values({n: database[prefix + n] for n in names}),
            {m: r[:, 0] for m, r in matches.items()},
            seed=SEED,
        )

    # 2. Rare-case mining over the indexed archive: the ranking reported (SSL k-NN combined with the
    # secondary-front share) and each alternative on the same rows.
    is_rare = database["true_rare"] == 1
    archive = cme_mining.archive_rarity(embedding, database["image"])
    rarity = {
        "ssl_knn+secondary_front": archive["combined"],
        "ssl_knn": archive["ssl_knn"],
        "secondary_front": archive["secondary_front"],
        "pixel_knn": cme_mining.knn_rarity(database["image"].reshape(len(rows), -1)),
        "thumbnail_knn": cme_mining.knn_rarity(searched.thumbnails),
        "untrained_knn": cme_mining.knn_rarity(searched.untrained_embedding),
        "property_outlier": cme_mining.property_rarity(database),
        "random": np.random.default_rng(SEED).random(len(rows)),
    }
    mining = (
        {name: cme_mining.recall_at_top(score, is_rare, seed=SEED) for name, score in rarity.items()}
        if is_rare.any()
        else {"skipped": "no planted rare CME in the indexed split"}
    )
    top12 = cme_mining.top_rows(archive["combined"])[:12]
    _plot_gallery(database, top12, archive, is_rare, stage_dir / "mining_gallery.png")
    top_of_ranking = [
        {
            "id": str(database["id"][row]),
            **{name: round(float(database[name][row]), 2) for name in ("cpa_deg", "width_deg", "front_height_rsun")},
            "ssl_knn": round(float(archive["ssl_knn"][row]), 3),
            "secondary_front": round(float(archive["secondary_front"][row]), 3),
            "planted_double": bool(is_rare[row]),
        }
        for row in top12
    ]

    # 3. Ranking modes: the hybrid weight and the default mode chosen on the validation split (never test),
    # saved beside the index for `solarjax search` and the app.
    validation = cme_retrieval.load_split(tfds_dir, "validation")
    ranking = cme_retrieval.choose_ranking(index, embed_images(encoder.embed, validation["image"]), validation)
    ranking_lib.save_ranking(outdir / "index" / "built", ranking)
    modes = {
        f"hybrid (weight {ranking.weight:g})": ranking.with_rank("hybrid"),
        "physics": ranking.with_rank("physics"),
    }

    def ranked_top10(images: np.ndarray) -> dict[str, np.ndarray]:
        """Database rows [Q, 10] of every search method and every ranking mode."""
        embedded = embed_images(encoder.embed, images)
        found = cme_retrieval.top_matches(images, embedded, searched, untrained, SEED, k=10)
        measured = {k: np.asarray(v, np.float64) for k, v in cme_physics.quantities(images).items()}
        for label, mode in modes.items():
            table_rows = cme_retrieval.ranked_rows(index, embedded, measured, mode, 10)
            found[label] = np.where(table_rows >= 0, rows[np.maximum(table_rows, 0)], -1)
        return found

    # 4. A generated 'wide and bright' query: latents steered locally until the measured width, then the
    # measured excess (holding width), reach the database's 90th percentiles.
    generator = gan.load(outdir / "gan")
    z = directions_lib.sample_latents(size.wide_bright_queries, generator.latent_dim, 202)
    targets = {name: float(np.nanpercentile(database[name], 90)) for name in ("width_deg", "excess")}
    query_latents, reached = cme_steering.steer_until(generator, z, targets)
    query_images = np.asarray(directions_lib.map_generated(generator, query_latents))
    query_values = cme_steering.generated_quantities(generator, query_latents)
    base_values = cme_steering.generated_quantities(generator, z)
    top10 = ranked_top10(query_images)
    truth_columns = {"true_width_deg": database["true_width_deg"], "true_excess": database["true_excess"]}
    # The same criterion with real held-out CMEs as queries: the test CMEs whose true width and excess are
    # both in the database's top quartile (what a generated query should look like; no GAN involved).
    real = np.flatnonzero(
        (queries["true_width_deg"] >= np.nanpercentile(database["true_width_deg"], 75))
        & (queries["true_excess"] >= np.nanpercentile(database["true_excess"], 75))
    )
    real_top10 = ranked_top10(queries["image"][real]) if len(real) else {}
    wide_bright = {
        "queries": size.wide_bright_queries,
        "targets_measured_90th_percentile": targets,
        "reached": float(reached.mean()),
        "query_width_deg": {
            "base": float(np.nanmedian(base_values["width_deg"])),
            "steered": float(np.nanmedian(query_values["width_deg"])),
        },
        "query_excess": {
            "base": float(np.nanmedian(base_values["excess"])),
            "steered": float(np.nanmedian(query_values["excess"])),
        },
        "database_75th_percentile": {k: float(np.nanpercentile(v, 75)) for k, v in truth_columns.items()},
        "top10_in_top_quartile": {
            m: cme_mining.top_quartile_share(r, truth_columns, seed=SEED) for m, r in top10.items()
        },
    }
    real_wide_bright = {
        "queries": int(len(real)),
        "top10_in_top_quartile": {
            m: cme_mining.top_quartile_share(r, truth_columns, seed=SEED) for m, r in real_top10.items()
        },
    }
    methods = cme_retrieval.SEARCH_METHODS
    tables = {
        f"search, quantities {label}: top-1 Pearson / Spearman (95% paired bootstrap)": cme_retrieval.format_table(
            report, methods
        )
        + "\n"
        + cme_retrieval.format_differences(report, "ssl", methods[1:])
        for label, report in search.items()
    }
    if is_rare.any():
        tables["mining: recall of the planted double CMEs in the top 5% (bootstrap 95%)"] = "\n".join(
            f"{name:24s} {m['value']:.3f} [{m['low']:.3f}, {m['high']:.3f}]  ({m['rare']} rare, top {m['top']})"
            for name, m in mining.items()
        )
    tables["mining: the 12 rarest CMEs (ssl_knn+secondary_front ranking) and their measured properties"] = "\n".join(
        f"{r['id']:24s} CPA {r['cpa_deg']:6.1f}  width {r['width_deg']:6.1f}  height {r['front_height_rsun']:4.2f}"
        f"  ssl_knn {r['ssl_knn']:.3f}  secondary front {r['secondary_front']:.2f}"
        + ("  (planted double)" if r["planted_double"] else "")
        for r in top_of_ranking
    )
    trials = ranking.validation["trials"]
    tables[
        f"ranking modes on {ranking.validation['queries']} validation queries: mean Spearman of true width, excess "
        f"and height, query vs top-1 (default rank {ranking.rank}, hybrid weight {ranking.weight:g})"
    ] = "\n".join(f"{name:15s} {trial['score']:.3f}" for name, trial in trials.items())
    tables["wide and bright query: steering targets (measured 90th percentiles of the database)"] = (
        f"width >= {targets['width_deg']:.1f} deg, excess >= {targets['excess']:.1f}: reached by "
        f"{wide_bright['reached']:.2f} of {size.wide_bright_queries} queries"
    )
    for label, result in (("generated", wide_bright), ("real held-out", real_wide_bright)):
        tables[
            f"wide and bright query ({label}, {result['queries']} queries): share of the top-10 in the top quartile "
            "(true width / true excess / both)"
        ] = "\n".join(
            f"{m:15s} "
            + "  ".join(f"{k} {v['value']:.2f} [{v['low']:.2f}, {v['high']:.2f}]" for k, v in shares.items())
            for m, shares in result["top10_in_top_quartile"].items()
        )
    return {
        "database": len(rows),
        "queries": len(queries["image"]),
        "search": search,
        "mining": mining,
        "top_of_ranking": top_of_ranking,
        "wide_and_bright": wide_bright,
        "wide_and_bright_real_query": real_wide_bright,
        "ranking": ranking.to_dict(),
        "tables": tables,
    }


def _plot_gallery(database: dict, rows: np.ndarray, scores: dict, is_rare: np.ndarray, path: pathlib.Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 3.4), layout="compressed")
    axes = figure.subplots(2, 6, squeeze=False).reshape(-1)
    for ax, row in zip(axes, rows):
        ax.imshow(database["image"][row][..., 0], cmap="gray", vmin=-0.6, vmax=0.6)
        ax.set_title(
            f"{'PLANTED ' if is_rare[row] else ''}w {database['width_deg'][row]:.0f} 2nd {scores['secondary_front'][row]:.2f}",
            fontsize=7,
            color="red" if is_rare[row] else "black",
        )
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(
        "the 12 rarest CMEs by SSL k-NN distance combined with the secondary-front share (2nd); red: a planted"
        " double CME"
    )
    figure.savefig(path, dpi=80)


_SECTIONS = (
    ("dataset", "Dataset: synthetic CME difference images (C2 field of view) with a planted 1% of double CMEs"),
    ("gan", "GAN on CME images: KS distances of the measured CME quantities, generated vs validation"),
    ("directions", "Steering: paper (linear SVM; sin CPA for the CPA) and local (gradient path) families"),
    ("simsiam", "SimSiam with the physics head on the CME quantities of each view"),
    ("index", "Index: `solarjax index build --dataset cme_patches` of the training split"),
    ("retrieval", "Search, rare-case mining and a generated 'wide and bright' query"),
)


def _stage_report(outdir: pathlib.Path, metrics: dict) -> dict:
    (outdir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    parts = [
        "<h1>solarjax CME demo report</h1>",
        f"<p>Size: <b>{metrics['size']}</b>. Every number is also in metrics.json.</p>",
        "<h2>Time per stage (s)</h2>",
        f"<pre>{html.escape(json.dumps(metrics['stage_seconds'], indent=1))}</pre>",
    ]
    for name, title in _SECTIONS:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        for caption, table in (metrics[name].get("tables") or {}).items():
            parts += [f"<h3>{html.escape(caption)}</h3>", f"<pre>{html.escape(table)}</pre>"]
        rest = {k: v for k, v in metrics[name].items() if k not in ("tables", "search")}
        parts.append(
            f"<details><summary>numbers</summary><pre>{html.escape(json.dumps(rest, indent=1, default=str))}"
            "</pre></details>"
        )
        for png in sorted((outdir / name).rglob("*.png"))[-6:]:
            data = base64.b64encode(png.read_bytes()).decode()
            caption = html.escape(png.relative_to(outdir).as_posix())
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}img{max-width:100%}"
        "figure{display:inline-block;margin:6px;max-width:48%}figcaption{font-size:small;color:#555}"
    )
    (outdir / "report.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>solarjax CME demo"
        f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>"
    )
    return {"report": str(outdir / "report.html")}
