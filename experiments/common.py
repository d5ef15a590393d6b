"""What every experiment script shares: its command line, the work directory's artefacts, the patches
of a `sharp_patches` split, and writing results.

A work directory is laid out as `solarjax demo` leaves it (any run directories placed the same way
work too)::

    WORKDIR/gan/                      GAN run (checkpoints/)           -> `load_generator`
    WORKDIR/directions/directions/    SVM directions of that GAN        -> `load_directions`
                                      (or WORKDIR/gan/directions/, where `solarjax steer fit` saves them)
    WORKDIR/simsiam/                  SimSiam run (checkpoints/)        -> `load_encoder`
    WORKDIR/index/index, index/table  search index over a dataset split -> `database_index`
    WORKDIR/tfds/                     the synthetic dataset (default --data-dir for --dataset synthetic)

Every script takes ``--workdir``, ``--out`` (PNG and JSON go there), ``--dataset synthetic|fits`` (the
`sharp_patches` config whose patches play the real data) and ``--data-dir`` (its TFDS data directory).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.stats

from solarjax.jsonable import jsonable

SPLITS = ("train", "validation", "test")


def parser(description: str) -> argparse.ArgumentParser:
    """The arguments every experiment takes; a script adds its own sizes to it."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--workdir",
        type=pathlib.Path,
        required=True,
        help="a `solarjax demo` output directory (gan/, directions/, simsiam/, index/)",
    )
    parser.add_argument("--out", type=pathlib.Path, required=True, help="folder for the PNG and JSON results")
    parser.add_argument(
        "--dataset",
        choices=("synthetic", "fits"),
        default="synthetic",
        help="sharp_patches config of the real patches (default synthetic)",
    )
    parser.add_argument("--data-dir", type=pathlib.Path, help="TFDS data directory of --dataset (default WORKDIR/tfds)")
    parser.add_argument("--seed", type=int, default=23, help="seed of the latents and the random choices")
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parses and checks the common arguments: the work directory exists, ``--data-dir`` defaults."""
    args = parser.parse_args(argv)
    if not args.workdir.is_dir():
        parser.error(f"--workdir {args.workdir}: no such directory")
    if args.data_dir is None:
        args.data_dir = args.workdir / "tfds"
    args.out.mkdir(parents=True, exist_ok=True)
    return args


# ------------------------------------------------------------------------------------- artefacts
def load_generator(workdir: pathlib.Path):
    """The GAN of ``workdir/gan`` (best checkpoint), a `solarjax.gan.TrainedGenerator`."""
    from solarjax import gan

    return gan.load(workdir / "gan")


def load_directions(workdir: pathlib.Path, generator):
    """The SVM directions of ``workdir/directions/directions`` (`solarjax demo`) or, failing that,
    ``workdir/gan/directions`` (`solarjax steer fit --gan WORKDIR/gan`), checked against ``generator``."""
    from solarjax import steering

    demo_layout = workdir / "directions" / "directions"
    folder = demo_layout if demo_layout.is_dir() else workdir / "gan" / "directions"
    return steering.load_directions(folder, generator)


def load_encoder(workdir: pathlib.Path):
    """The SimSiam encoder of ``workdir/simsiam`` (latest checkpoint)."""
    from solarjax import ssl

    return ssl.load(workdir / "simsiam")


def dataset_name(config: str, split: str) -> str:
    """The name tables give the rows of a split, e.g. 'sharp_patches/fits:train'."""
    return f"sharp_patches/{config}:{split}"


def database_index(workdir: pathlib.Path, encoder, config: str, split: str, data_dir: pathlib.Path, out: pathlib.Path):
    """A search index over every patch of ``config:split``, row i being example i of the split.

    The work directory's index is used when it covers exactly that split (its table rows are the
    split's examples in order); otherwise the split is embedded with ``encoder`` into ``out/table``
    (reused by a rerun) and searched with an exact index, e.g. to search real `fits` patches with a
    work directory whose index holds the synthetic set.
    """
    from solarjax.data import pipeline
    from solarjax.retrieval import DATASET_FEATURES, build_index, embed_dataset, load_index, open_table

    name = dataset_name(config, split)
    size = len(pipeline.load_split(split, data_dir=data_dir, config=config))
    stored = workdir / "index" / "index"
    if stored.is_dir():
        index = load_index(stored, expected_fingerprint=encoder.fingerprint)
        datasets = {_text(v) for v in index.table.column("dataset")[: index.num_rows]}
        rows_in_order = np.array_equal(index.table.column("example_index")[: index.num_rows], np.arange(size))
        if datasets == {name} and rows_in_order:
            return index
    table_dir = out / "table"
    if (table_dir / "table.json").is_file():
        table = open_table(table_dir, expected_fingerprint=encoder.fingerprint)
        if table.num_rows == size and {_text(v) for v in table.column("dataset")} == {name}:
            return build_index(table, kind="exact")
        raise ValueError(f"{table_dir} holds another table ({table.num_rows} rows): remove it or use another --out")
    batches = pipeline.make_iterator(
        split,
        batch_size=64,
        seed=0,
        data_dir=data_dir,
        config=config,
        num_epochs=1,
        shuffle=False,
        drop_remainder=False,
        keys=DATASET_FEATURES,
    )
    table = embed_dataset(table_dir, encoder.embed, encoder.fingerprint, batches, dataset=name)
    return build_index(table, kind="exact")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------------------- patches
class SplitImages:
    """The images of one split, read on demand in example order: ``images[i]`` -> float32 [128, 128, 1],
    ``images[a:b]`` -> [n, 128, 128, 1]; ``len(images)`` examples. Row-aligned with an index from
    `database_index`, so it serves as ``database_images`` of `solarjax.retrieval.evaluate` without holding
    the split in memory."""

    def __init__(self, data_dir: pathlib.Path, config: str, split: str):
        from solarjax.data import pipeline

        self.source = pipeline.load_split(split, data_dir=data_dir, config=config)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key):
        if isinstance(key, slice):
            rows = range(*key.indices(len(self)))
            return np.stack([self[i] for i in rows]) if rows else np.zeros((0, 128, 128, 1), np.float32)
        return np.asarray(self.source[int(key)]["image"], np.float32)


def load_patches(
    data_dir: pathlib.Path,
    config: str,
    splits: str | Sequence[str],
    keys: Sequence[str] = ("image",),
    limit: int | None = None,
    seed: int | None = None,
) -> dict[str, np.ndarray]:
    """Examples of one or several splits of `sharp_patches/<config>` as arrays.

    Args:
      data_dir: TFDS data directory the dataset was built into.
      config: 'synthetic' or 'fits'.
      splits: a split name, 'all' (train, validation and test), or a sequence of names.
      keys: features to read (``image``: float32 [N, 128, 128, 1], B / 1000 G).
      limit: at most this many examples (the first ones, or a seeded random choice when ``seed``
        is given); None: all.
      seed: seeds the random choice under ``limit``.

    Returns:
      feature -> array [N, ...], plus ``split`` (str [N]) and ``example_index`` (int64 [N]).
    """
    from solarjax.data import pipeline

    names = SPLITS if splits == "all" else (splits,) if isinstance(splits, str) else tuple(splits)
    sources, where = {}, []
    for split in names:
        try:
            sources[split] = pipeline.load_split(split, data_dir=data_dir, config=config)
        except ValueError:
            if splits != "all":
                raise
            continue  # a split with no file is left out of a `fits` build
        where += [(split, i) for i in range(len(sources[split]))]
    if not where:
        raise ValueError(f"sharp_patches/{config} in {data_dir} has no examples in {names}")
    if limit is not None and limit < len(where):
        chosen = (
            np.sort(np.random.default_rng(seed).choice(len(where), limit, replace=False))
            if seed is not None
            else np.arange(limit)
        )
        where = [where[i] for i in chosen]
    examples = [sources[split][i] for split, i in where]
    out = {key: np.stack([np.asarray(example[key]) for example in examples]) for key in keys}
    out["split"] = np.array([split for split, _ in where])
    out["example_index"] = np.array([i for _, i in where], np.int64)
    if "image" in out:
        out["image"] = out["image"].astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------- output
def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman correlation over the pairs where both are finite (NaN with fewer than 3 or a constant side)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    if finite.sum() < 3 or np.ptp(x[finite]) == 0 or np.ptp(y[finite]) == 0:
        return float("nan")
    return float(scipy.stats.spearmanr(x[finite], y[finite]).statistic)


def write_json(out: pathlib.Path, name: str, result: Any) -> pathlib.Path:
    """Writes ``result`` as strict JSON (NaN -> null) to ``out/name``."""
    path = pathlib.Path(out) / name
    path.write_text(json.dumps(jsonable(result), indent=1))
    return path


def relative_paths(paths: Sequence[os.PathLike], out: pathlib.Path) -> list[str]:
    """Figure paths relative to the output folder, for the JSON."""
    return [str(pathlib.Path(p).relative_to(out)) for p in paths]
