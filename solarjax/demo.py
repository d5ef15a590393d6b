"""`solarjax demo`: the whole method end to end on the embedded synthetic default, on a CPU.

Stages (each cached by its config fingerprint in `outdir/<stage>/stage.json`; a rerun skips finished
stages, an interrupted trainer resumes from its checkpoints and any other stage reruns from scratch):

1. dataset     build `sharp_patches/synthetic` (TFDS, array_record) into `outdir/tfds`
2. gan         train the paper's GAN (orbax checkpoints, metrics.jsonl, sample grids)
3. directions  fit SVM normals of every physical quantity; monotonicity, leakage, targeting
4. simsiam     train the SimSiam encoder on the training split
5. index       embed the training split into a table and build the search index
6. retrieval   steered generated queries -> top-1 real match; correlations next to baselines
7. real        the real SHARP frames (if found): physics, embedding, same-region precision@1
8. report      `report.html` (self-contained) and `metrics.json`
"""
from __future__ import annotations

import base64
import dataclasses
import html
import json
import os
import pathlib
import time
from typing import Any

import numpy as np

from solarjax.stages import StageRunner, claimed

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "experiments" / "configs"


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
    num_patches=1_000, gan_steps=60, gan_eval_samples=256, directions_samples=1_000, steering_latents=16,
    targeting_latents=4, simsiam_steps=10, simsiam_width=8, num_queries=64, steer_steps=40, steer_rounds=1,
    steered_queries=8,
)
FULL = DemoSize(
    num_patches=6_000, gan_steps=1_500, gan_eval_samples=1_000, directions_samples=10_000, steering_latents=100,
    targeting_latents=20, simsiam_steps=300, simsiam_width=16, num_queries=500, steer_steps=150, steer_rounds=3,
    steered_queries=32,
)
STAGE_ESTIMATES_S = {  # 2-core CPU, FULL size; QUICK is about a tenth
    "dataset": 18, "gan": 600, "directions": 170, "simsiam": 240, "index": 10, "retrieval": 40,
    "real": 2, "report": 1,
}


DEMO_ENTRIES = frozenset({*STAGE_ESTIMATES_S, "tfds", "report.html", "metrics.json"})
"""What a demo writes in its output directory (an older demo's output there is reused)."""


def _load_config(name: str):
    from solarjax.train.loop import load_config_file

    return load_config_file(CONFIG_DIR / name)


def _last_metrics(workdir: pathlib.Path, prefix: str) -> dict:
    """The last metrics.jsonl line that has a key starting with `prefix`."""
    found = {}
    path = workdir / "metrics.jsonl"
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if any(k.startswith(prefix) for k in row):
            found = row
    return found


def run_demo(outdir: str | os.PathLike, *, quick: bool = False, fits_dir: str | os.PathLike | None = None,
             log=print) -> dict:
    """Runs (or resumes) the demo into `outdir`; returns the metrics written to `metrics.json`.

    Args:
      outdir: output directory (stages, `report.html`, `metrics.json`).
      quick: the smoke-test size (~4 min on a 2-core CPU) instead of the full demo (18.0 min measured on
        an idle 2-core CPU; GAN 10.0 min, directions 2.8 min, SimSiam 3.9 min).
      fits_dir: real SHARP Br FITS files for the 'real' stage (default: ../shared/data/sharp_cea
        beside the repository when present; the stage is skipped when there are none).
    """
    outdir = pathlib.Path(outdir)
    with claimed(outdir, DEMO_ENTRIES):
        return _run_demo(outdir, QUICK if quick else FULL, fits_dir, log)


def _run_demo(outdir: pathlib.Path, size: DemoSize, fits_dir, log) -> dict:
    quick = size is QUICK
    if fits_dir is None:
        default = REPO_ROOT.parent / "shared" / "data" / "sharp_cea"
        fits_dir = os.environ.get("SOLARJAX_DEMO_FITS", default if default.is_dir() else None)
    scale = 0.1 if quick else 1.0
    runner = StageRunner(outdir, total=8, log=log)

    def estimate(name):
        return STAGE_ESTIMATES_S[name] * scale

    tfds_dir = outdir / "tfds"
    started = time.perf_counter()
    results: dict[str, Any] = {}
    results["dataset"] = runner.run(
        "dataset", {"num_patches": size.num_patches, "builder_version": _builder_version()},
        lambda d: _stage_dataset(d, tfds_dir, size),
        estimate_s=estimate("dataset"))
    gan_config, simsiam_config = _gan_config(tfds_dir, size), _simsiam_config(tfds_dir, size)
    results["gan"] = runner.run(
        "gan", _trainer_fingerprint_view(gan_config),
        lambda d: _stage_gan(d, gan_config, size), depends_on=("dataset",), estimate_s=estimate("gan"),
        resumable=True)
    results["directions"] = runner.run(
        "directions", dataclasses.asdict(size), lambda d: _stage_directions(d, outdir / "gan", size),
        depends_on=("gan",), estimate_s=estimate("directions"))
    results["simsiam"] = runner.run(
        "simsiam", _trainer_fingerprint_view(simsiam_config),
        lambda d: _stage_simsiam(d, simsiam_config, size), depends_on=("dataset",), estimate_s=estimate("simsiam"),
        resumable=True)
    results["index"] = runner.run(
        "index", {}, lambda d: _stage_index(d, tfds_dir, outdir / "simsiam"),
        depends_on=("simsiam",), estimate_s=estimate("index"))
    results["retrieval"] = runner.run(
        "retrieval", {"num_queries": size.num_queries},
        lambda d: _stage_retrieval(d, outdir, tfds_dir, size),
        depends_on=("gan", "directions", "index"), estimate_s=estimate("retrieval"))
    results["real"] = runner.run(
        "real", {"fits_dir": str(fits_dir) if fits_dir else None},
        lambda d: _stage_real(d, fits_dir, outdir / "simsiam"), depends_on=("simsiam",),
        estimate_s=estimate("real"))
    metrics = {
        "size": "quick" if quick else "full",
        "stage_seconds": _stage_seconds(outdir),
        **results,
    }
    runner.run("report", {"metrics": metrics}, lambda d: _stage_report(outdir, metrics),
               depends_on=("retrieval", "real"), estimate_s=estimate("report"))
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


def _trainer_fingerprint_view(config) -> dict:
    """A trainer config as the stage fingerprint sees it: every field but the data directory (which
    moves with the output directory), so an edited experiment config retrains and a moved demo does not."""
    view = config.to_dict()
    view["data"] = {k: v for k, v in view["data"].items() if k != "data_dir"}
    return view


def _gan_config(tfds_dir: pathlib.Path, size: DemoSize):
    """`experiments/configs/gan_synthetic.py` sized for the demo."""
    config = _load_config("gan_synthetic.py")
    config.total_steps = size.gan_steps
    config.data.data_dir = str(tfds_dir)
    config.eval_every = size.gan_steps
    config.sample_every = max(size.gan_steps // 3, 1)
    config.checkpoint_every = max(size.gan_steps // 5, 1)
    config.log_every = max(size.gan_steps // 30, 1)
    config.quality.num_samples = size.gan_eval_samples
    config.quality.num_reference = size.gan_eval_samples
    return config


def _stage_gan(stage_dir: pathlib.Path, config, size: DemoSize) -> dict:
    from solarjax.train import gan as gan_train

    gan_train.train_and_evaluate(config, stage_dir)
    quality = _last_metrics(stage_dir, "quality/")
    speed = _last_metrics(stage_dir, "images_per_second")
    samples = sorted((stage_dir / "samples").glob("*.png"))
    return {
        "steps": size.gan_steps,
        "ks": {k.split("/")[-1]: v for k, v in quality.items() if k.startswith("quality/ks/")},
        "frechet": quality.get("quality/frechet"),
        "images_per_second": speed.get("images_per_second"),
        "samples_png": str(samples[-1]) if samples else None,
    }


def _stage_directions(stage_dir: pathlib.Path, gan_dir: pathlib.Path, size: DemoSize) -> dict:
    from solarjax import gan
    from solarjax.steering import directions as directions_lib
    from solarjax.steering import evaluate

    generator = gan.load(gan_dir)
    directions = directions_lib.fit_directions(generator, n=size.directions_samples)
    directions.save(stage_dir / "directions")
    report = evaluate.run_evaluation(
        generator, directions, stage_dir / "evaluation", n_latents=size.steering_latents,
        targeting_latents=size.targeting_latents, steps=size.steer_steps, rounds=size.steer_rounds)
    return {"report": report, "directions_dir": str(stage_dir / "directions"),
            "figures_dir": str(stage_dir / "evaluation")}


def _simsiam_config(tfds_dir: pathlib.Path, size: DemoSize):
    """`experiments/configs/simsiam_synthetic.py` sized for the demo."""
    config = _load_config("simsiam_synthetic.py")
    config.num_steps = size.simsiam_steps
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
    return {"steps": size.simsiam_steps, "loss": last.get("loss"), "collapse": last.get("collapse"),
            "images_per_second": last.get("images_per_second"),
            "knn": {k: v for k, v in knn.items() if k.startswith("knn/")}}


def _split_batches(tfds_dir: pathlib.Path, split: str, keys: tuple[str, ...], batch_size: int = 128):
    from solarjax.data import pipeline

    return pipeline.make_iterator(
        split, batch_size=batch_size, seed=0, data_dir=tfds_dir, config="synthetic", num_epochs=1,
        shuffle=False, drop_remainder=False, keys=keys)


TRUTH_COLUMNS = ("truth_n_bipoles", "truth_delta", "truth_hemisphere")


def _stage_index(stage_dir: pathlib.Path, tfds_dir: pathlib.Path, simsiam_dir: pathlib.Path) -> dict:
    from solarjax import ssl
    from solarjax.retrieval import DATASET_FEATURES, build_index, embed_dataset

    encoder = ssl.load(simsiam_dir)
    batches = _split_batches(tfds_dir, "train", (*DATASET_FEATURES, *TRUTH_COLUMNS))
    table = embed_dataset(stage_dir / "table", encoder.embed, encoder.fingerprint, batches,
                          dataset="sharp_patches/synthetic:train")
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
    from solarjax.retrieval import evaluate, load_index
    from solarjax.steering import directions as directions_lib
    from solarjax.steering import target

    encoder = ssl.load(outdir / "simsiam")
    index = load_index(outdir / "index" / "index", expected_fingerprint=encoder.fingerprint)
    database_images = _split_arrays(tfds_dir, "train", ("image",))["image"]
    generator = gan.load(outdir / "gan")
    directions_lib.load_directions(outdir / "directions" / "directions", generator)  # fingerprint check

    # The paper's protocol: generated queries from a fixed seed, top-1 real match.
    z = directions_lib.sample_latents(size.num_queries, generator.latent_dim, seed=23)
    generated = np.asarray(generator.generate(z))
    generated_q = {k: np.asarray(v) for k, v in physics.quantities(generated).items()}
    paper = evaluate.evaluate_retrieval(generated, generated_q, index, encoder, database_images=database_images,
                                        out_dir=stage_dir / "generated")

    # Steered queries ("+50% TUF, polarity separation held") searched the same way.
    steered = target.steer_to(generator, z[: size.steered_queries], {"tuf": ("rel", 0.5)}, hold=["psep"],
                              steps=size.steer_steps, rounds=size.steer_rounds)
    steered_report = evaluate.evaluate_retrieval(steered.images, steered.quantities, index, encoder,
                                                 database_images=database_images, out_dir=stage_dir / "steered")

    # Held-out synthetic patches as queries: their ground truth is known.
    test = _split_arrays(tfds_dir, "test", ("image", *physics.QUANTITY_NAMES, *TRUTH_COLUMNS))
    heldout = evaluate.evaluate_retrieval(
        test["image"], {k: test[k] for k in physics.QUANTITY_NAMES}, index, encoder,
        database_images=database_images, query_truth={k: test[k] for k in TRUTH_COLUMNS},
        out_dir=stage_dir / "heldout")
    return {
        "generated": paper,
        "steered": {**steered_report, "steering_success_rate": float(np.mean(steered.success))},
        "heldout": heldout,
    }


def _stage_real(stage_dir: pathlib.Path, fits_dir, simsiam_dir: pathlib.Path) -> dict:
    if fits_dir is None:
        return {"skipped": "no real SHARP files found (pass --fits-dir)"}
    from solarjax import physics, ssl
    from solarjax.data import preprocess_patch, read_sharp_folder
    from solarjax.retrieval import build_index, build_table_from_arrays, evaluate

    folder = read_sharp_folder(fits_dir)
    prepared = [preprocess_patch(p) for p in folder.patches]
    images = np.stack([p.image for p in prepared])[..., None]
    quantities = {k: np.asarray(v) for k, v in physics.quantities(images).items()}
    encoder = ssl.load(simsiam_dir)
    embeddings = np.asarray(encoder.embed(images))
    rows = [
        {"dataset": "fits", "example_index": i, "harpnum": p.meta["harpnum"], "noaa_ar": p.meta["noaa_ar"],
         "t_rec": p.meta["t_rec"].isoformat(), "lat_deg": p.meta["lat_deg"], "lon_deg": p.meta["lon_deg"],
         "source": "fits", **{k: float(v[i]) for k, v in quantities.items()}}
        for i, p in enumerate(folder.patches)
    ]
    table = build_table_from_arrays(stage_dir / "table", embeddings, rows, encoder.fingerprint)
    precision = evaluate.same_region_precision(build_index(table, kind="exact"), database_images=images)
    return {
        "frames": len(folder.patches),
        "harps": len({p.meta["harpnum"] for p in folder.patches}),
        "failures": [[str(path), reason] for path, reason in folder.failures],
        "same_region_precision": precision,
        "quantities": {k: [float(x) for x in v] for k, v in quantities.items()},
    }


# ------------------------------------------------------------------------------------------ report
_REPORT_SECTIONS = (
    ("gan", "1. The GAN: generated active regions",
     "The paper's 'simple' generator (latent dimension 100) trained on the synthetic SHARP-like patches. "
     "Sample grids show B in G on the hmimag colour map, clipped at +-1000 G as in training. The KS distance "
     "compares each physical quantity of generated patches with the training patches (0 = same distribution)."),
    ("directions", "2. Physical directions in latent space",
     "One linear SVM per quantity on 'high vs low' (median split) of generated patches; its unit normal is the "
     "direction along which the quantity grows. Monotonicity is the Spearman correlation of the quantity with "
     "the step alpha along the normal; leakage is the change of each other quantity per unit change of the "
     "target, without and with conditioning (normal projected orthogonal to the held quantities' normals). "
     "Targeting asks gradient-based steering for a value (e.g. +50% TUF) and counts requests met within 5%."),
    ("simsiam", "3. The SimSiam encoder",
     "ResNet-18 SimSiam trained on the training split with the paper's augmentations (polarity flip as -B). "
     "Collapse: 0 = spread embeddings, 1 = collapsed. k-NN monitor: rank correlation of each held-out patch's "
     "quantities with those of its nearest neighbour in embedding space, against pixel space."),
    ("retrieval", "4. Search: generated queries and their real matches",
     "Each query (a generated, a steered, or a held-out patch) is embedded and its top-1 match looked up in the "
     "table of training patches. Pearson and Spearman between query and match per quantity, for the SimSiam "
     "search and the baselines (pixel-space L2, standardised physics Euclidean and Mahalanobis, random)."),
    ("real", "5. Real SHARP frames",
     "The real HMI SHARP Br frames found beside the repository, embedded with the same encoder: precision@1 of "
     "same-region retrieval (is the top match another time of the same HARP?) against baselines."),
)


def _png_tag(path: pathlib.Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    caption = html.escape(path.relative_to(path.parents[1]).as_posix())
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>")


def _value_html(value: Any) -> str:
    """Nested results as HTML: a dict of dicts becomes a table of its scalar fields (nested fields are in
    metrics.json), other dicts lists, numbers rounded, long lists summarised."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        if value and all(isinstance(v, dict) for v in value.values()):
            columns = sorted({k for v in value.values() for k, x in v.items() if not isinstance(x, (dict, list))},
                             key=str)
            if columns:
                head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
                rows = "".join(
                    f"<tr><th>{html.escape(str(name))}</th>"
                    + "".join(f"<td>{_value_html(row.get(c, ''))}</td>" for c in columns) + "</tr>"
                    for name, row in value.items())
                return f"<table><tr><th></th>{head}</tr>{rows}</table>"
        items = "".join(f"<li><b>{html.escape(str(k))}</b>: {_value_html(v)}</li>" for k, v in value.items())
        return f"<ul>{items}</ul>"
    if isinstance(value, list):
        if len(value) > 12:
            return f"[{len(value)} values]"
        return ", ".join(_value_html(v) for v in value)
    return html.escape(str(value))


def _stage_report(outdir: pathlib.Path, metrics: dict) -> dict:
    (outdir / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str))
    seconds = metrics["stage_seconds"]
    parts = [
        "<h1>solarjax demo report</h1>",
        "<p>What was done: a synthetic dataset of SHARP-like Br patches (128x128, B / 1000 G clipped to "
        "[-1, 1]) was built; the paper's GAN was trained on it; linear SVM directions of every physical "
        "quantity were fitted in its latent space; a SimSiam encoder was trained on the same patches; every "
        "training patch was embedded into a search index; generated and steered patches were used as queries "
        f"and their matches evaluated. Size: <b>{metrics['size']}</b>. Every number is also in metrics.json.</p>",
        "<h2>Time per stage (s)</h2>", _value_html({"seconds": seconds}),
        "<h2>0. Dataset</h2>", _value_html(metrics["dataset"]),
    ]
    for name, title, text in _REPORT_SECTIONS:
        parts += [f"<h2>{html.escape(title)}</h2>", f"<p>{html.escape(text)}</p>", _value_html(metrics[name])]
        parts += [_png_tag(p) for p in sorted((outdir / name).rglob("*.png"))]
    parts += [
        "<h2>Do it on real data</h2>",
        "<pre>solarjax data download sharps/ --start 2012-01-01 --end 2013-01-01 --cadence-hours 24 --email YOU\n"
        "solarjax data build --config fits --manual-dir sharps/ --data-dir ~/tensorflow_datasets\n"
        "# then the experiments/ configs with data.builder_config = 'fits' (see experiments/README.md)</pre>",
    ]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:100%}"
             "figure{display:inline-block;margin:6px;max-width:48%}figcaption{font-size:small;color:#555}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>solarjax demo</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
    (outdir / "report.html").write_text(page)
    return {"report": str(outdir / "report.html")}
