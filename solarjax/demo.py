"""`solarjax demo`: the whole method end to end on the embedded synthetic default, on a CPU.

Stages (each cached by its config fingerprint in `outdir/<stage>/stage.json`; a rerun skips finished
stages, an interrupted trainer resumes from its checkpoints and any other stage reruns from scratch):

1. dataset     build `sharp_patches/synthetic` (TFDS, array_record) into `outdir/tfds`
2. gan         train the paper's GAN (orbax checkpoints, metrics.jsonl, sample grids)
3. directions  fit SVM normals of every physical quantity and diagnose them; paper, piecewise and local
               steering compared (monotonicity, leakage, realism, 95% intervals); targeting
4. simsiam     train the SimSiam encoder on the training split
5. index       embed the training split into a table and build the search index
6. retrieval   steered generated queries -> top-1 real match; correlations next to baselines
7. real        the real SHARP frames (if found): physics, embedding, same-region precision@1
8. report      `report.html` (self-contained) and `metrics.json`
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import time
from typing import Any

import numpy as np

from solarjax import report as demo_report
from solarjax.stages import StageRunner, claimed

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
"""The checkout (or site-packages, installed): only to find ../shared/data/sharp_cea beside a checkout."""


@dataclasses.dataclass(frozen=True)
class DemoSize:
    """How much work each stage does; `QUICK` for smoke tests, `FULL` for the real demo."""

    num_patches: int  # synthetic patches over all splits (80/10/10)
    gan_steps: int  # GAN train steps at batch 32
    gan_eval_samples: int  # generated patches for the KS / Frechet figures
    directions_samples: int  # latents for the SVMs (the paper: 10,000)
    steering_latents: int  # base latents of the monotonicity / leakage evaluation
    targeting_latents: int
    simsiam_steps: int  # SimSiam train steps at batch 64
    simsiam_width: int  # ResNet-18 base width (64 = the paper's ResNet-18)
    num_queries: int  # generated queries of the retrieval evaluation
    steer_steps: int  # Adam steps per round of differentiable targeting
    steer_rounds: int  # targeting rounds (each corrects the smooth target by the exact error)
    steered_queries: int  # steered latents searched in the retrieval stage


QUICK = DemoSize(
    num_patches=1_000,
    gan_steps=60,
    gan_eval_samples=256,
    directions_samples=400,
    steering_latents=8,
    targeting_latents=4,
    simsiam_steps=10,
    simsiam_width=8,
    num_queries=64,
    steer_steps=40,
    steer_rounds=1,
    steered_queries=8,
)
FULL = DemoSize(
    num_patches=6_000,
    gan_steps=1_400,  # the default's candidate runs met every numeric target at 1,400 on two seeds, not at 700
    gan_eval_samples=1_000,
    directions_samples=10_000,
    steering_latents=100,
    targeting_latents=20,
    simsiam_steps=300,
    simsiam_width=16,
    num_queries=500,
    steer_steps=150,
    steer_rounds=3,
    steered_queries=32,
)
STAGE_ESTIMATES_S = {  # idle 2-core CPU, FULL size (benchmarks/README.md): the best figures measured with these defaults
    "dataset": 18,
    "gan": 615,  # 1,400 steps and two evaluations: 10.2 min alone (session 22's default; session 23's untimed idle)
    "directions": 900,  # more than 810: unfinished after 13.5 min with nothing else running (session 14)
    "simsiam": 240,
    "index": 10,
    "retrieval": 180,
    "real": 15,
    "report": 1,
}
QUICK_STAGE_ESTIMATES_S = {  # QUICK size in a fresh `make test` with nothing else running (session 15): mostly compilation
    "dataset": 6,
    "gan": 280,
    "directions": 310,
    "simsiam": 90,
    "index": 5,
    "retrieval": 150,
    "real": 12,
    "report": 1,
}


DEMO_ENTRIES = frozenset({*STAGE_ESTIMATES_S, "tfds", "report.html", "metrics.json"})
"""What a demo writes in its output directory (an older demo's output there is reused)."""


def _load_config(name: str):
    """The packaged config `solarjax.configs.<name>` (unlocked: the demo sizes it)."""
    from solarjax import configs

    return configs.load(name, lock=False)


def _last_metrics(workdir: pathlib.Path, prefix: str) -> dict:
    """The last metrics.jsonl line that has a key starting with `prefix`."""
    found = {}
    path = workdir / "metrics.jsonl"
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if any(k.startswith(prefix) for k in row):
            found = row
    return found


def run_demo(
    outdir: str | os.PathLike,
    *,
    quick: bool = False,
    fits_dir: str | os.PathLike | None = None,
    log=logging.getLogger(__name__).info,
) -> dict:
    """Runs (or resumes) the demo into `outdir`; returns the metrics written to `metrics.json`.

    Args:
      outdir: output directory (stages, `report.html`, `metrics.json`).
      quick: the smoke-test size (4-9 min on an idle 2-core CPU, half of it XLA compilation) instead of the
        full demo (about 26 min there: the GAN stage 10.2 min; the sum of `STAGE_ESTIMATES_S` bounds it).
      fits_dir: real SHARP Br FITS files for the 'real' stage (default: ../shared/data/sharp_cea
        beside the repository when present; the stage is skipped when there are none).
      log: where progress lines go (default: the ``solarjax.demo`` logger at INFO; the CLI shows them).
    """
    outdir = pathlib.Path(outdir)
    with claimed(outdir, DEMO_ENTRIES):
        return _run_demo(outdir, QUICK if quick else FULL, fits_dir, log)


def _run_demo(outdir: pathlib.Path, size: DemoSize, fits_dir, log) -> dict:
    quick = size is QUICK
    if fits_dir is None:
        default = REPO_ROOT.parent / "shared" / "data" / "sharp_cea"
        fits_dir = os.environ.get("SOLARJAX_DEMO_FITS", default if default.is_dir() else None)
    runner = StageRunner(outdir, total=8, log=log)

    def estimate(name):
        return (QUICK_STAGE_ESTIMATES_S if quick else STAGE_ESTIMATES_S)[name]

    tfds_dir = outdir / "tfds"
    started = time.perf_counter()
    results: dict[str, Any] = {}
    results["dataset"] = runner.run(
        "dataset",
        {"num_patches": size.num_patches, "builder_version": _builder_version()},
        lambda d: _stage_dataset(d, tfds_dir, size),
        estimate_s=estimate("dataset"),
    )
    gan_config, simsiam_config = _gan_config(tfds_dir, size), _simsiam_config(tfds_dir, size)
    results["gan"] = runner.run(
        "gan",
        _trainer_fingerprint_view(gan_config),
        lambda d: _stage_gan(d, gan_config, size),
        depends_on=("dataset",),
        estimate_s=estimate("gan"),
        resumable=True,
    )
    results["directions"] = runner.run(
        "directions",
        {**dataclasses.asdict(size), "steering_families": 1},
        lambda d: _stage_directions(d, outdir / "gan", size),
        depends_on=("gan",),
        estimate_s=estimate("directions"),
    )
    results["simsiam"] = runner.run(
        "simsiam",
        _trainer_fingerprint_view(simsiam_config, step_count_name="num_steps"),
        lambda d: _stage_simsiam(d, simsiam_config, size),
        depends_on=("dataset",),
        estimate_s=estimate("simsiam"),
        resumable=True,
    )
    results["index"] = runner.run(
        "index",
        {},
        lambda d: _stage_index(d, tfds_dir, outdir / "simsiam"),
        depends_on=("simsiam",),
        estimate_s=estimate("index"),
    )
    results["retrieval"] = runner.run(
        "retrieval",
        {"num_queries": size.num_queries},
        lambda d: _stage_retrieval(d, outdir, tfds_dir, size),
        depends_on=("gan", "directions", "index"),
        estimate_s=estimate("retrieval"),
    )
    results["real"] = runner.run(
        "real",
        {"fits_dir": str(fits_dir) if fits_dir else None},
        lambda d: _stage_real(d, fits_dir, outdir),
        depends_on=("simsiam", "retrieval"),
        estimate_s=estimate("real"),
    )
    metrics = {
        "size": "quick" if quick else "full",
        "stage_seconds": _stage_seconds(outdir),
        **results,
    }
    runner.run(
        "report",
        {"metrics": metrics, "layout": demo_report.VERSION},
        lambda d: _stage_report(outdir, metrics),
        depends_on=("retrieval", "real"),
        estimate_s=estimate("report"),
    )
    log(f"demo finished in {time.perf_counter() - started:.0f} s: {outdir / 'report.html'}")
    return metrics


def _stage_seconds(outdir: pathlib.Path) -> dict[str, float]:
    seconds = {}
    for record in sorted(outdir.glob("*/stage.json")):
        if record.parent.name == "report":
            continue
        seconds[record.parent.name] = round(json.loads(record.read_text())["seconds"], 1)
    return seconds


# ------------------------------------------------------------------------------------------ stages
def _stage_dataset(stage_dir: pathlib.Path, tfds_dir: pathlib.Path, size: DemoSize) -> dict:
    import tensorflow_datasets as tfds

    from data_builders.sharp_patches import build
    from data_builders.sharp_patches.sharp_patches_dataset_builder import FRAMES_PER_REGION

    tfds.disable_progress_bar()
    started = time.perf_counter()
    info = build("synthetic", tfds_dir, num_examples=size.num_patches)
    seconds = time.perf_counter() - started
    frames = FRAMES_PER_REGION
    return {
        "splits": {name: split.num_examples for name, split in info.splits.items()},
        "regions": {name: -(-split.num_examples // frames) for name, split in info.splits.items()},
        "frames_per_region": frames,
        "patches_per_second": round(size.num_patches / seconds, 1),
    }


def _builder_version() -> str:
    """The `sharp_patches` builder version: a new version rebuilds the dataset (and every stage after it)."""
    from data_builders.sharp_patches.sharp_patches_dataset_builder import Builder

    return str(Builder.VERSION)


def _trainer_fingerprint_view(config, step_count_name: str = "total_steps") -> dict:
    """A trainer config as the stage fingerprint sees it: every field but the data directory (which
    moves with the output directory), so an edited experiment config retrains and a moved demo does not.
    `step_count_name`: the name ``total_steps`` goes by in the view (SimSiam's stage keeps ``num_steps``,
    its name before the configs were unified, so demo outputs made before stay valid)."""
    view = config.to_dict()
    view[step_count_name] = view.pop("total_steps")
    view["data"] = {k: v for k, v in view["data"].items() if k != "data_dir"}
    return view


def _gan_config(tfds_dir: pathlib.Path, size: DemoSize):
    """`solarjax.configs.gan_synthetic` sized for the demo."""
    config = _load_config("gan_synthetic")
    config.total_steps = size.gan_steps
    config.data.data_dir = str(tfds_dir)
    config.eval_every = max(size.gan_steps // 2, 1)  # the realism score picks the better of two checkpoints
    config.sample_every = max(size.gan_steps // 3, 1)
    config.checkpoint_every = max(size.gan_steps // 5, 1)
    config.log_every = max(size.gan_steps // 30, 1)
    config.quality.num_samples = size.gan_eval_samples
    config.quality.num_reference = size.gan_eval_samples
    return config


def _stage_gan(stage_dir: pathlib.Path, config, size: DemoSize) -> dict:
    from solarjax import gan
    from solarjax.train import gan as gan_train
    from solarjax.train import loop, monitor
    from solarjax.train import quality as quality_lib

    gan_train.train_and_evaluate(config, stage_dir)
    generator = gan.load(stage_dir)  # the checkpoint that config.quality.best_metric ranks best
    evaluations = [
        row
        for row in map(json.loads, (stage_dir / "metrics.jsonl").read_text().splitlines())
        if "quality/ks_mean" in row
    ]
    chosen = next((row for row in evaluations if row["step"] == generator.step), evaluations[-1])
    figures = {k[len("quality/") :]: v for k, v in chosen.items() if k.startswith("quality/")}
    speed = _last_metrics(stage_dir, "images_per_second")
    data = np.asarray(next(loop.pipeline_iterator_factory(config)())["image"])[:8]
    generated = np.asarray(generator.generate(generator.sample_latents(8, seed=0)))
    monitor.save_comparison_grid(
        data,
        generated,
        stage_dir / "realism_grid.png",
        columns=4,
        labels=("training patches", f"generated (step {generator.step})"),
    )
    samples = sorted((stage_dir / "samples").glob("*.png"))
    return {
        "steps": size.gan_steps,
        "arch": config.model.arch,
        "best_step": generator.step,
        "realism_score": figures.get("realism_score"),
        "realism": quality_lib.realism_table(figures),
        "ks": {k.split("/")[-1]: v for k, v in figures.items() if k.startswith("ks/")},
        "frechet": figures.get("frechet"),
        "images_per_second": speed.get("images_per_second"),
        "samples_png": str(samples[-1]) if samples else None,
    }


def _stage_directions(stage_dir: pathlib.Path, gan_dir: pathlib.Path, size: DemoSize) -> dict:
    """SVM directions with their diagnosis, the three steering families compared, targeting.

    Work on FULL: fitting 10,000 latents plus the diagnosis (2,000 negated and 2,000 rotated
    latents, 54 linear SVMs), the family comparison on the 5 target quantities (paper and piecewise
    7 alphas x 100 latents x 2 each; local paths of 12 gradient steps x 100 latents x 2), realism
    (1,500 edited patches), targeting and figures as before.
    """
    from solarjax import gan
    from solarjax.steering import directions as directions_lib
    from solarjax.steering import evaluate

    generator = gan.load(gan_dir)
    started = time.perf_counter()
    directions = directions_lib.fit_directions(generator, n=size.directions_samples)
    directions.save(stage_dir / "directions")
    fit_seconds = time.perf_counter() - started
    reference, count = [], 0
    for batch in _split_batches(gan_dir.parent / "tfds", "train", ("image",)):  # data patches, realism guard
        reference.append(np.asarray(batch["image"]))
        count += len(reference[-1])
        if count >= size.gan_eval_samples:
            break
    reference = np.concatenate(reference)[: size.gan_eval_samples]
    report = evaluate.run_evaluation(  # alpha -3..3 in steps of 1 keeps the three families' cost near one's at 13
        generator,
        directions,
        stage_dir / "evaluation",
        n_latents=size.steering_latents,
        alphas=np.linspace(-3.0, 3.0, 7),
        targeting_latents=size.targeting_latents,
        reference_images=reference,
        steps=size.steer_steps,
        rounds=size.steer_rounds,
    )
    return {
        "best_method": report["best_method"],
        **_directions_tables(directions, report),
        "targeting": {
            k: report["targeting"].get(k)
            for k in ("success_rate", "success_interval", "unrefined_success_rate", "in_range", "requested")
        },
        "report": report,
        "seconds": {"fit": round(fit_seconds, 1), **report["seconds"]},
        "directions_dir": str(stage_dir / "directions"),
        "figures_dir": str(stage_dir / "evaluation"),
    }


def _interval_text(figure: dict | None) -> str:
    if not figure or figure.get("value") is None:
        return "n/a"
    return f"{figure['value']:.3f} [{figure['low']:.3f}, {figure['high']:.3f}]"


def _directions_tables(directions, report: dict) -> dict:
    """The report's tables: the diagnosis per quantity and the families side by side with 95% intervals."""
    diagnosis = directions.diagnosis.get("quantities", {})
    diagnosis_table = {
        name: {
            "svm_accuracy_z": row["accuracy"]["z"],
            "svm_accuracy_z_norm": row["accuracy"]["z_norm"],
            "svm_accuracy_folded": row["accuracy"]["folded"],
            "svm_accuracy_folded_norm": row["accuracy"]["folded_norm"],
            "svm_accuracy_quadratic": row["accuracy"].get("quadratic"),
            "svm_accuracy_hidden": row["accuracy"].get("hidden"),
            "svm_accuracy_polarity_statistics": row["accuracy"].get("polarity_statistics"),
            "piecewise_accuracy": directions.piecewise_accuracy.get(name),
            "odd_fraction": row["odd_fraction"],
            "corr_q(z)_q(-z)": row["corr_negation"],
            "corr_q(z)_q(Qz)": row["corr_rotation"],
            "structure": row["structure"],
            "best_features": row.get("best_features"),
        }
        for name, row in diagnosis.items()
    }
    families_table = {}
    for method, rows in report["families"]["results"].items():
        for name, row in rows.items():
            realism = row["realism"]
            families_table[f"{method}: {name}"] = {
                "monotonicity": _interval_text(row["monotonicity"]),
                "monotonicity_held": _interval_text(row["monotonicity_conditional"]),
                "held": ", ".join(row["held"]),
                "max_leakage_sd_per_sd": _interval_text(
                    max(row["leakage"].values(), key=lambda v: v["value"], default=None)
                ),
                "undefined_fraction": row["undefined_fraction"],
                "frechet_ratio_|alpha|=2": realism.get("frechet_ratio"),
                "frechet_ratio_matched_on_target": realism.get("matched_frechet_ratio"),
                "ks_ratio_mean_|alpha|=2": realism.get("ks_ratio_mean"),
            }
    return {
        "generator_odd_fraction": directions.diagnosis.get("generator_odd_fraction"),
        "diagnosis": diagnosis_table,
        "families": families_table,
    }


def _simsiam_config(tfds_dir: pathlib.Path, size: DemoSize):
    """`solarjax.configs.simsiam_synthetic` sized for the demo."""
    config = _load_config("simsiam_synthetic")
    config.total_steps = size.simsiam_steps
    config.model.width = size.simsiam_width
    config.data.data_dir = str(tfds_dir)
    config.eval_every = size.simsiam_steps
    config.checkpoint_every = max(size.simsiam_steps // 4, 1)
    config.log_every = max(size.simsiam_steps // 20, 1)
    config.knn.num_patches = min(config.knn.num_patches, size.num_patches // 10)
    return config


def _stage_simsiam(stage_dir: pathlib.Path, config, size: DemoSize) -> dict:
    from solarjax.train import simsiam

    simsiam.train_and_evaluate(config, stage_dir)
    last = _last_metrics(stage_dir, "loss")
    knn = _last_metrics(stage_dir, "knn/")
    return {
        "steps": size.simsiam_steps,
        "loss": last.get("loss"),
        "collapse": last.get("collapse"),
        "images_per_second": last.get("images_per_second"),
        "knn": {k: v for k, v in knn.items() if k.startswith("knn/")},
    }


def _split_batches(tfds_dir: pathlib.Path, split: str, keys: tuple[str, ...], batch_size: int = 128):
    from solarjax.data import pipeline

    return pipeline.make_iterator(
        split,
        batch_size=batch_size,
        seed=0,
        data_dir=tfds_dir,
        config="synthetic",
        num_epochs=1,
        shuffle=False,
        drop_remainder=False,
        keys=keys,
    )


TRUTH_COLUMNS = ("truth_n_bipoles", "truth_delta", "truth_hemisphere")


def _stage_index(stage_dir: pathlib.Path, tfds_dir: pathlib.Path, simsiam_dir: pathlib.Path) -> dict:
    from solarjax import ssl
    from solarjax.retrieval import DATASET_FEATURES, build_index, embed_dataset

    encoder = ssl.load(simsiam_dir)
    batches = _split_batches(tfds_dir, "train", (*DATASET_FEATURES, *TRUTH_COLUMNS))
    table = embed_dataset(
        stage_dir / "table", encoder.embed, encoder.fingerprint, batches, dataset="sharp_patches/synthetic:train"
    )
    index = build_index(table)
    index.save(stage_dir / "index")
    return {"rows": table.num_rows, "kind": index.kind, "encoder": encoder.fingerprint}


def _split_arrays(tfds_dir: pathlib.Path, split: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Every example of a split, in dataset order, as arrays (small splits only)."""
    parts: dict[str, list] = {key: [] for key in keys}
    for batch in _split_batches(tfds_dir, split, keys):
        for key in keys:
            parts[key].append(np.asarray(batch[key]))
    return {key: np.concatenate(values) for key, values in parts.items()}


def _stage_retrieval(stage_dir: pathlib.Path, outdir: pathlib.Path, tfds_dir: pathlib.Path, size: DemoSize) -> dict:
    from solarjax import gan, physics, ssl
    from solarjax.retrieval import embed_images, evaluate, load_index
    from solarjax.retrieval import ranking as ranking_lib
    from solarjax.steering import directions as directions_lib
    from solarjax.steering import target

    encoder = ssl.load(outdir / "simsiam")
    index = load_index(outdir / "index" / "index", expected_fingerprint=encoder.fingerprint)
    database_images = _split_arrays(tfds_dir, "train", ("image",))["image"]
    generator = gan.load(outdir / "gan")
    directions_lib.load_directions(outdir / "directions" / "directions", generator)  # fingerprint check
    # Baselines of the same table: 8x8 thumbnails and an untrained encoder of the same architecture.
    baselines = evaluate.BaselineFeatures(database_images, random_encoder=ssl.random_init(encoder.config["model"]))

    # Hybrid weight and default ranking chosen on the validation split (never test); saved beside the index.
    validation = _split_arrays(tfds_dir, "validation", ("image", *physics.QUANTITY_NAMES, *TRUTH_COLUMNS))
    ranking = ranking_lib.choose_ranking(
        index,
        np.asarray(embed_images(encoder.embed, validation["image"])),
        {k: validation[k] for k in physics.QUANTITY_NAMES},
        query_truth={k: validation[k] for k in TRUTH_COLUMNS},
    )
    ranking_lib.save_ranking(outdir / "index", ranking)
    common = dict(
        database_images=database_images,
        methods=evaluate.BASELINE_METHODS,
        ranking=ranking,
        baselines=baselines,
        quantity_names=evaluate.SEARCH_QUANTITIES,
    )

    # The paper's protocol: generated queries from a fixed seed, top-1 match.
    z = directions_lib.sample_latents(size.num_queries, generator.latent_dim, seed=23)
    generated = np.asarray(generator.generate(z))
    generated_q = {k: np.asarray(v) for k, v in physics.quantities(generated).items()}
    paper = evaluate.evaluate_retrieval(
        generated, generated_q, index, encoder, out_dir=stage_dir / "generated", **common
    )

    # Steered queries ("+50% TUF, polarity separation held") searched the same way.
    steered = target.steer_to(
        generator,
        z[: size.steered_queries],
        {"tuf": ("rel", 0.5)},
        hold=["psep"],
        steps=size.steer_steps,
        rounds=size.steer_rounds,
    )
    steered_report = evaluate.evaluate_retrieval(
        steered.images, steered.quantities, index, encoder, out_dir=stage_dir / "steered", **common
    )

    # Held-out synthetic patches as queries: their ground truth and plate scale (flux in Mx) are known.
    test = _split_arrays(tfds_dir, "test", ("image", "unsigned_flux_mx", *physics.QUANTITY_NAMES, *TRUTH_COLUMNS))
    train_flux = _split_arrays(tfds_dir, "train", ("unsigned_flux_mx",))["unsigned_flux_mx"]
    heldout = evaluate.evaluate_retrieval(
        test["image"],
        {k: test[k] for k in ("unsigned_flux_mx", *physics.QUANTITY_NAMES)},
        index,
        encoder,
        query_truth={k: test[k] for k in TRUTH_COLUMNS},
        out_dir=stage_dir / "heldout",
        **{
            **common,
            "quantity_names": (*evaluate.SEARCH_QUANTITIES, "unsigned_flux_mx"),
            "database_quantities": {"unsigned_flux_mx": train_flux},
        },
    )
    reports = {"generated": paper, "steered": steered_report, "heldout": heldout}
    tables = {}
    for name, report in reports.items():
        tables[f"{name}: top-1 Pearson, 95% interval"] = evaluate.format_interval_table(report["intervals"])
        tables[f"{name}: top-1 Spearman, 95% interval"] = evaluate.format_interval_table(
            report["intervals"], "spearman"
        )
        for subject in ("ssl", "hybrid"):
            tables[f"{name}: {subject} minus each method, Pearson (paired)"] = evaluate.format_difference_table(
                report["intervals"], subject
            )
    if heldout.get("truth_intervals"):
        tables["heldout: ground truth of the match (fraction equal)"] = evaluate.format_interval_table(
            heldout["truth_intervals"]
        )
    return {
        "ranking": ranking.to_dict(),
        "generated": paper,
        "steered": {**steered_report, "steering_success_rate": float(np.mean(steered.success))},
        "heldout": heldout,
        "tables": tables,
    }


REAL_KEYWORDS = ("USFLUX", "R_VALUE", "AREA_ACR", "MEANGBZ")


def _stage_real(stage_dir: pathlib.Path, fits_dir, outdir: pathlib.Path, encoder=None) -> dict:
    """Real SHARP frames of `fits_dir` searched among themselves by `encoder` (default: outdir/simsiam's
    latest) and every baseline, the hybrid's weight from outdir/index/ranking.json."""
    if fits_dir is None:
        return {"skipped": "no real SHARP files found (pass --fits-dir)"}
    from solarjax import physics, ssl
    from solarjax.data import preprocess_patch, read_sharp_folder
    from solarjax.retrieval import build_table_from_arrays, evaluate, real_checks
    from solarjax.retrieval import ranking as ranking_lib

    folder = read_sharp_folder(fits_dir)
    prepared = [preprocess_patch(p) for p in folder.patches]
    images = np.stack([p.image for p in prepared])[..., None]
    quantities = {k: np.asarray(v, np.float64) for k, v in physics.quantities(images).items()}
    # Physical units where the plate scale is known: flux in Mx of the full-resolution patch above 150 G
    # (before clipping and resizing; SHARP's USFLUX-like sum), PSEP in Mm, R in Mx, area in Mm^2.
    pixel_sizes = np.array([p.pixel_size_mm if p.pixel_size_mm is not None else (np.nan, np.nan) for p in prepared])
    known = np.isfinite(pixel_sizes).all(axis=1)
    physical = {
        k: np.where(known, np.asarray(v, np.float64), np.nan)
        for k, v in physics.physical_quantities(images, np.nan_to_num(pixel_sizes, nan=1.0)).items()
    }
    quantities["unsigned_flux_mx"] = np.array(
        [
            float(physics.unsigned_flux_above_mx(np.asarray(p.data, np.float64), p.meta["pixel_area_cm2"]))
            if "pixel_area_cm2" in p.meta
            else np.nan
            for p in folder.patches
        ]
    )
    encoder = encoder or ssl.load(outdir / "simsiam")
    embeddings = np.asarray(encoder.embed(images))
    random_embeddings = np.asarray(ssl.random_init(encoder.config["model"]).embed(images))
    rows = [
        {
            "dataset": "fits",
            "example_index": i,
            "harpnum": p.meta["harpnum"],
            "noaa_ar": p.meta["noaa_ar"],
            "t_rec": p.meta["t_rec"].isoformat(),
            "lat_deg": p.meta["lat_deg"],
            "lon_deg": p.meta["lon_deg"],
            "source": "fits",
            **{k: float(quantities[k][i]) for k in physics.QUANTITY_NAMES},
        }
        for i, p in enumerate(folder.patches)
    ]
    build_table_from_arrays(stage_dir / "table", embeddings, rows, encoder.fingerprint)
    region = np.array([p.meta["harpnum"] for p in folder.patches])
    times = [p.meta["t_rec"] for p in folder.patches]
    # The hybrid: the validation-chosen weight; its quantities in physical units (patch sizes differ, so
    # normalised TUF and area are not comparable between frames): log10 flux and R in Mx, PSEP in Mm,
    # log10 area in Mm^2.
    ranking = ranking_lib.load_ranking(outdir / "index")
    hybrid_values = np.stack(
        [
            np.log10(np.maximum(quantities["unsigned_flux_mx"], 1.0)),
            physical["psep_mm"],
            np.log10(np.maximum(physical["r_value_mx"], 1.0)),
            np.log10(np.maximum(physical["area_mm2"], 1e-3)),
        ],
        axis=1,
    )
    rankers = {
        "ssl": real_checks.feature_ranker(embeddings),
        "hybrid": real_checks.hybrid_ranker(embeddings, hybrid_values, ranking.weight, ranking.candidates),
        "pixel_l2": real_checks.feature_ranker(images.reshape(len(images), -1)),
        "thumbnail_8x8": real_checks.feature_ranker(evaluate.thumbnails(images)),
        "random_encoder": real_checks.feature_ranker(random_embeddings),
        "physics_euclidean": real_checks.feature_ranker(real_checks.physics_features(hybrid_values)),
    }
    same_region = real_checks.same_region_precision(rankers, region, times)
    keywords = {k: np.array([p.meta.get(k, np.nan) for p in folder.patches], np.float64) for k in REAL_KEYWORDS}
    scored = {**keywords, **{k: quantities[k] for k in (*evaluate.SEARCH_QUANTITIES, "unsigned_flux_mx")}}
    real_to_real = real_checks.keyword_agreement(rankers, region, scored)
    header = {k: real_to_real["intervals"][k] for k in REAL_KEYWORDS if k in real_to_real["intervals"]}
    computed = {k: v for k, v in real_to_real["intervals"].items() if k not in REAL_KEYWORDS}
    tables = {
        f"same region >= {same_region['min_gap_hours']:g} h away, precision@1 ({same_region['eligible']} queries)": evaluate.format_interval_table(
            {"p@1": same_region["intervals"]}
        ),
        "real-to-real (own HARP excluded): header keywords, Spearman": evaluate.format_interval_table(
            header, "spearman"
        ),
        "real-to-real: hybrid minus each method, header Spearman (paired)": evaluate.format_difference_table(
            header, "hybrid", "spearman"
        ),
        "real-to-real: quantities of the images, Spearman": evaluate.format_interval_table(computed, "spearman"),
    }
    return {
        "frames": len(folder.patches),
        "harps": len({p.meta["harpnum"] for p in folder.patches}),
        "failures": [[str(path), reason] for path, reason in folder.failures],
        "hybrid_weight": ranking.weight,
        "hybrid_quantities": ["log10 flux above 150 G [Mx]", "PSEP [Mm]", "log10 R [Mx]", "log10 area [Mm^2]"],
        "regions": region.tolist(),
        "keywords": {k: v.tolist() for k, v in keywords.items()},
        "same_region_precision": same_region,
        "real_to_real": real_to_real,
        "quantities": {k: [float(x) for x in v] for k, v in quantities.items()},
        "tables": tables,
    }


# ------------------------------------------------------------------------------------------ report
def _stage_report(outdir: pathlib.Path, metrics: dict) -> dict:
    (outdir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    return {"report": str(demo_report.write(outdir, metrics))}
