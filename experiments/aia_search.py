"""AIA figures: a patch gallery per channel and search examples over an AIA index.

    python -m experiments.aia_search --data-dir TFDS --ssl RUN --index OUT --out DIR [--config synthetic]

Inputs are what the AIA commands of the README leave: the `aia_patches/<config>` dataset in TFDS
(``solarjax data build --dataset aia_patches``), a SimSiam run trained on it (``solarjax train
simsiam --config experiments/configs/simsiam_aia_synthetic.py``) and the index of a split built with
that run (``solarjax index build --dataset aia_patches``, its ``--out`` folder).

Writes to ``--out``:
  gallery.png   ``--num-patches`` validation patches, one row per channel, in DN/s (the asinh
                normalisation undone, `solarjax.data.aia_prep.denormalise`) on a log scale with
                sunpy's ``sdoaia<wavelength>`` colour map and one colour bar per channel.
  search.png    ``--num-queries`` validation patches (RGB composite: red, green, blue = the first,
                second and third channel; a single channel otherwise) next to their top-5 matches
                in the index, each titled with similarity, T_OBS and mu.
  aia_search.json  what was shown: ids, similarities, mu and time of every match, and the seconds
                each part took.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

NUM_MATCHES = 5


def _arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=pathlib.Path, required=True, help="TFDS data directory holding aia_patches")
    parser.add_argument("--config", default="synthetic", help="aia_patches builder config (default synthetic)")
    parser.add_argument("--ssl", type=pathlib.Path, required=True, help="SimSiam run that built the index")
    parser.add_argument("--index", type=pathlib.Path, required=True, help="`solarjax index build --out` folder")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="folder for the PNG and JSON results")
    parser.add_argument("--num-patches", type=int, default=6, help="gallery columns")
    parser.add_argument("--num-queries", type=int, default=3, help="search-example rows")
    parser.add_argument("--seed", type=int, default=23, help="which validation patches are shown")
    return parser.parse_args(argv)


def _composite(image: np.ndarray) -> np.ndarray:
    """[H, W, C] normalised patch -> [H, W, 3] RGB (C = 3) or [H, W] (the first channel otherwise)."""
    image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    return image if image.shape[-1] == 3 else image[..., 0]


def plot_gallery(images: np.ndarray, wavelengths, path: pathlib.Path) -> None:
    """Patches [N, H, W, C] (normalised) as rows of channels in DN/s, log colour scale per channel."""
    import matplotlib.colors
    import sunpy.visualization.colormaps as sunpy_colormaps
    from matplotlib.figure import Figure

    from solarjax.data.aia_prep import denormalise

    count, channels = len(images), len(wavelengths)
    figure = Figure(figsize=(1.9 * count + 1.6, 1.9 * channels + 0.6), layout="compressed")
    axes = figure.subplots(channels, count, squeeze=False)
    for c, wavelength in enumerate(wavelengths):
        flux = denormalise(images[..., c].astype(np.float64), int(wavelength))
        positive = flux[flux > 0]
        low, high = np.percentile(positive, [1.0, 99.8]) if positive.size else (1.0, 10.0)
        norm = matplotlib.colors.LogNorm(vmin=max(low, 1e-2), vmax=max(high, 2 * max(low, 1e-2)))
        cmap = sunpy_colormaps.cmlist[f"sdoaia{int(wavelength)}"]
        for n in range(count):
            shown = axes[c, n].imshow(np.maximum(flux[n], norm.vmin), cmap=cmap, norm=norm, origin="lower")
            axes[c, n].set_xticks([])
            axes[c, n].set_yticks([])
        axes[c, 0].set_ylabel(f"{int(wavelength)} A")
        figure.colorbar(shown, ax=axes[c, :], shrink=0.9, label="DN/s")
    figure.suptitle("AIA patches per channel (validation split)")
    figure.savefig(path, dpi=90)


def plot_search(queries: np.ndarray, query_meta: list[dict], matches: list[list[tuple]], path: pathlib.Path) -> None:
    """Each query next to its matches; ``matches[q]`` holds (image, similarity, t_obs, mu) tuples."""
    from matplotlib.figure import Figure

    columns = NUM_MATCHES + 1
    figure = Figure(figsize=(2.0 * columns, 2.3 * len(queries)), layout="compressed")
    axes = figure.subplots(len(queries), columns, squeeze=False)
    for q, (query, meta) in enumerate(zip(queries, query_meta)):
        panels = [(query, f"query\n{meta['t_obs'][:10]} mu {meta['mu']:.2f}")]
        panels += [
            (image, f"#{rank} sim {similarity:.2f}\n{t_obs[:10]} mu {mu:.2f}")
            for rank, (image, similarity, t_obs, mu) in enumerate(matches[q], start=1)
        ]
        for column, ax in enumerate(axes[q]):
            ax.set_xticks([])
            ax.set_yticks([])
            if column >= len(panels):
                ax.set_axis_off()
                continue
            image, title = panels[column]
            ax.imshow(_composite(image), cmap="gray", vmin=0.0, vmax=1.0, origin="lower")
            ax.set_title(title, fontsize=7)
    figure.suptitle("AIA search: query (validation) and its top-5 matches (RGB = 171, 193, 211 A)")
    figure.savefig(path, dpi=90)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def main(argv=None) -> dict:
    args = _arguments(argv)
    import tensorflow_datasets as tfds

    import data_builders  # noqa: F401  (registers aia_patches)
    from solarjax import ssl
    from solarjax.retrieval import load_index

    args.out.mkdir(parents=True, exist_ok=True)
    seconds = {}
    started = time.perf_counter()
    sources = tfds.data_source(f"aia_patches/{args.config}", data_dir=args.data_dir)
    validation = sources["validation"]
    rng = np.random.default_rng(args.seed)
    picked = rng.choice(len(validation), min(len(validation), max(args.num_patches, args.num_queries)), replace=False)
    examples = [validation[int(i)] for i in picked]
    images = np.stack([e["image"] for e in examples]).astype(np.float32)
    wavelengths = [int(w) for w in examples[0]["wavelengths"]]
    seconds["read"] = time.perf_counter() - started

    started = time.perf_counter()
    plot_gallery(images[: args.num_patches], wavelengths, args.out / "gallery.png")
    seconds["gallery"] = time.perf_counter() - started

    started = time.perf_counter()
    encoder = ssl.load(args.ssl)
    index = load_index(args.index / "index", expected_fingerprint=encoder.fingerprint)
    queries = images[: args.num_queries]
    results = index.search_images(queries, encoder, k=NUM_MATCHES)
    seconds["search"] = time.perf_counter() - started

    split_sources = {}
    matches, record = [], []
    query_meta = [{"id": _text(e["id"]), "t_obs": _text(e["t_obs"]), "mu": float(e["mu"])} for e in examples]
    for q, hits in enumerate(results):
        row_matches, row_record = [], []
        for hit in hits:
            dataset = _text(hit.metadata["dataset"])
            split = dataset.rsplit(":", 1)[-1]
            source = split_sources.setdefault(split, sources[split])
            image = source[int(hit.metadata["example_index"])]["image"]
            t_obs, mu = _text(hit.metadata["t_obs"]), float(hit.metadata["mu"])
            row_matches.append((image, hit.similarity, t_obs, mu))
            row_record.append({"id": _text(hit.metadata["id"]), "similarity": hit.similarity, "t_obs": t_obs, "mu": mu})
        matches.append(row_matches)
        record.append({"query": query_meta[q], "matches": row_record})
    plot_search(queries, query_meta, matches, args.out / "search.png")
    summary = {
        "wavelengths": wavelengths,
        "index_rows": index.num_rows,
        "searches": record,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }
    (args.out / "aia_search.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
