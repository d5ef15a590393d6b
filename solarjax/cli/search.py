"""`solarjax search`: the real patches of an index that match query patches (SHARP Br, AIA or CME)."""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

from solarjax.cli.arguments import add_data_dir_argument, positive_int
from solarjax.cli.outputs import existing_outputs, replaced_atomically
from solarjax.jsonable import jsonable


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "search",
        help="find the real patches that match a query",
        description="QUERY: SHARP Br FITS files (read and preprocessed as in training) or .npy arrays of Br maps "
        "in gauss, [H, W] or [N, H, W] (preprocessed the same way; a map whose largest |value| is 1 or "
        "less is refused as already normalised); for an aia_patches index, .npy arrays of "
        "normalised patches [N, 128, 128, C] (or [128, 128, C]) in the index's channel order; for a cme_patches "
        "index, .npy arrays of CME difference images [N, 128, 128] (or [128, 128], [N, 128, 128, 1]) as the "
        "cme_patches builder writes them. Prints the top-k rows per query.",
    )
    parser.add_argument("queries", nargs="+", metavar="QUERY", help="SHARP Br FITS files or .npy arrays (see above)")
    parser.add_argument("--index", required=True, help="directory written by `solarjax index build` (OUT)")
    parser.add_argument("--ssl", required=True, help="SimSiam run directory (the index's encoder)")
    parser.add_argument("-k", type=positive_int, default=10, help="results per query (default 10)")
    parser.add_argument("--start", help="earliest observation time, T_REC or AIA t_obs (ISO)")
    parser.add_argument("--end", help="latest observation time, T_REC or AIA t_obs (ISO)")
    parser.add_argument("--mu-min", type=float, help="smallest mu = cos(heliocentric angle) of the patch centre (AIA)")
    parser.add_argument("--mu-max", type=float, help="largest mu (AIA)")
    parser.add_argument(
        "--pa",
        type=float,
        nargs=2,
        metavar=("START", "END"),
        help="CME index: only CMEs whose central position angle lies on the arc from START counterclockwise to "
        "END, deg (330 30: within 30 deg of north)",
    )
    parser.add_argument("--harp", type=int, nargs="+", help="only these HARPs")
    parser.add_argument("--exclude-harp", type=int, nargs="+", default=(), help="never these HARPs (default: none)")
    parser.add_argument("--one-per-harp", action="store_true", help="at most one result per HARP")
    parser.add_argument("--exclude-own-harp-days", type=float, help="drop the query's own HARP within +-N days")
    parser.add_argument(
        "--hemisphere",
        choices=("north", "south"),
        help="only patches whose centre lies north (Stonyhurst latitude > 0 deg) or south (< 0 "
        "deg) of the equator (default: both)",
    )
    parser.add_argument("--json", action="store_true", help="JSON on stdout")
    parser.add_argument("--png", help="write a contact sheet of the queries and their matches to this PNG")
    parser.add_argument("--overwrite", action="store_true", help="replace the --png file if it exists")
    add_data_dir_argument(parser, "TFDS data directory of the indexed dataset, for --png")
    parser.add_argument(
        "--rank",
        choices=("ssl", "hybrid", "physics"),
        help="order of the results: SSL similarity, hybrid (SSL candidates re-ordered with the query's "
        "exact TUF, PSEP, R and area; for a CME index its measured width, excess and front height), or physics "
        "alone (default: the mode chosen on validation in INDEX/ranking.json, else ssl)",
    )
    parser.set_defaults(func=run_search)


def run_search(args) -> int:
    from solarjax import ssl
    from solarjax.retrieval import Filters, load_index

    encoder = ssl.load(args.ssl)
    index = load_index(pathlib.Path(args.index) / "index", expected_fingerprint=encoder.fingerprint)
    filters = Filters(
        t_rec_range=(args.start, args.end) if (args.start or args.end) else None,
        harp_include=args.harp,
        harp_exclude=tuple(args.exclude_harp),
        one_per_harp=args.one_per_harp,
        exclude_own_harp_days=args.exclude_own_harp_days,
        hemisphere=args.hemisphere,
        mu_range=(args.mu_min, args.mu_max) if (args.mu_min is not None or args.mu_max is not None) else None,
        pa_range=tuple(args.pa) if args.pa else None,
    )
    if index.table.dataset_name == "aia_patches":
        if args.rank not in (None, "ssl"):
            print(
                f"error: --rank {args.rank} ranks by SHARP physics quantities; an aia_patches index ranks by ssl only",
                file=sys.stderr,
            )
            return 2
        return _search_aia(args, index, encoder, filters)
    if index.table.dataset_name == "cme_patches":
        return _search_cme(args, index, encoder, filters)
    from solarjax import physics
    from solarjax.retrieval import QueryContext, embed_images
    from solarjax.retrieval import ranking as ranking_lib

    try:
        saved = ranking_lib.load_ranking(args.index)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    chosen = saved.with_rank(args.rank or saved.rank)
    if args.png and (refused := existing_outputs([pathlib.Path(args.png)], args.overwrite)):
        print(f"solarjax search: {refused}", file=sys.stderr)
        return 2
    arrays = [q for q in args.queries if q.endswith(".npy")]
    files = [q for q in args.queries if not q.endswith(".npy")]
    results, labels, query_images = [], [], []

    def ranked(images, context=None):
        images = np.asarray(images, np.float32)
        embeddings = np.asarray(embed_images(encoder.embed, images))
        quantities = {k: np.asarray(v) for k, v in physics.quantities(images).items()}
        return ranking_lib.search(index, embeddings, quantities, args.k, filters, context, ranking=chosen)

    if files:
        from solarjax.data.query_checks import read_br_queries

        images, patches = read_br_queries(files)
        results += ranked(images, QueryContext.from_metadata([p.meta for p in patches]))
        labels += files
        query_images += list(images)
    for path in arrays:
        images = _gauss_npy_queries(path)
        results += ranked(images)
        labels += [f"{path}[{i}]" for i in range(len(images))]
        query_images += list(images)
    origin = "chosen on validation" if saved.validation else "default"
    note = (
        f"ranking: {chosen.rank}"
        + (f" (weight {chosen.weight:g})" if chosen.rank == "hybrid" else "")
        + f"; {origin}: {saved.rank}"
    )
    if args.json:
        _print_search_json(labels, results, rank=chosen.rank)
    else:
        print(note)
        _print_search_text(
            labels,
            results,
            lambda m: (
                f"HARP {m.get('harpnum')}  NOAA {m.get('noaa_ar')}  {m.get('t_rec')}  "
                f"TUF {m.get('tuf', float('nan')):.4f}  PSEP {m.get('psep', float('nan')):.4f}  "
                f"R {m.get('r_value', float('nan')):.3g}  {m.get('record', '')}"
            ),
        )
    if args.png:
        from solarjax.retrieval.contact_sheet import write_contact_sheet

        with replaced_atomically(pathlib.Path(args.png)) as partial:
            write_contact_sheet(partial, np.stack(query_images), results, index, args.data_dir)
        print(f"contact sheet: {args.png}")
    return 0


def _gauss_npy_queries(path: str) -> np.ndarray:
    """Preprocessed queries [N, 128, 128] from a .npy of Br maps in gauss, [H, W], [N, H, W] or [N, H, W, 1]."""
    from solarjax.data import preprocess
    from solarjax.data.query_checks import check_gauss_map

    try:
        maps = np.load(path, allow_pickle=False)
    except ValueError as error:  # pickled objects, a bad header
        raise ValueError(f"{path}: not a plain .npy array of numbers: {error}") from error
    maps = maps[..., 0] if maps.ndim == 4 and maps.shape[-1] == 1 else maps
    maps = maps[None] if maps.ndim == 2 else maps
    if maps.ndim != 3 or min(maps.shape[1:], default=0) < 1 or len(maps) == 0:
        raise ValueError(f"{path}: Br maps in gauss of shape [H, W] or [N, H, W] expected, got shape {maps.shape}")
    return np.stack([preprocess(check_gauss_map(m, f"{path}[{i}]")) for i, m in enumerate(maps)])


def _print_search_json(labels, results, rank: str = "ssl") -> None:
    out = [
        {
            "query": label,
            "rank": rank,
            "results": [
                {
                    "row": h.row,
                    "distance": h.distance,
                    "similarity": h.similarity,
                    "score": h.score,
                    "metadata": h.metadata,
                }
                for h in hits
            ],
        }
        for label, hits in zip(labels, results)
    ]
    json.dump(jsonable(out), sys.stdout, indent=1)
    print()


def _print_search_text(labels, results, describe) -> None:
    """One 'query LABEL' line per query, then one ranked line per hit: similarity and describe(metadata)."""
    for label, hits in zip(labels, results):
        print(f"query {label}")
        for rank, h in enumerate(hits, 1):
            print(f"  {rank:2d}. sim {h.similarity:.3f}  {describe(h.metadata)}")


def _refused_arguments(args, dataset: str, queries: str) -> str | None:
    """Why an index of `dataset` (not SHARP) cannot take these queries or --png, as one line; None if it can."""
    not_arrays = [q for q in args.queries if not q.endswith(".npy")]
    if not_arrays:
        return f"error: {not_arrays[0]}: an index of {dataset} takes .npy arrays of {queries} as queries"
    if args.png:
        return f"error: --png draws Br contact sheets; it is not available for an index of {dataset}"
    return None


def _search_aia(args, index, encoder, filters) -> int:
    """`solarjax search` on an aia_patches index: .npy queries of normalised [N, 128, 128, C] patches."""
    if refused := _refused_arguments(args, "aia_patches", "normalised patches [N, 128, 128, C]"):
        print(refused, file=sys.stderr)
        return 2
    num_channels = int(encoder.config["model"]["input_channels"])
    channels = index.table.rows([0])[0]["wavelengths"] if index.num_rows else "unknown"
    results, labels = [], []
    for path in args.queries:
        images = np.load(path).astype(np.float32)
        images = images[None] if images.ndim == 3 else images
        if images.ndim != 4 or images.shape[-1] != num_channels:
            print(
                f"error: {path}: patches of shape {images.shape}, expected [N, 128, 128, {num_channels}] in the "
                f"index's channel order ({channels} Angstrom)",
                file=sys.stderr,
            )
            return 2
        results += index.search_images(images, encoder, k=args.k, filters=filters)
        labels += [f"{path}[{i}]" for i in range(len(images))]
    if args.json:
        _print_search_json(labels, results)
        return 0
    _print_search_text(
        labels,
        results,
        lambda m: (
            f"{m['id']}  {m['t_obs']}  {m['wavelengths']} A  mu {m['mu']:.3f}  "
            f"hpc ({m['hpc_x']:.0f}, {m['hpc_y']:.0f}) arcsec  bbox {m['bbox']}  {m['source']}"
        ),
    )
    return 0


def _search_cme(args, index, encoder, filters) -> int:
    """`solarjax search` on a cme_patches index: .npy queries of CME difference images, ranked as chosen."""
    from solarjax import cme_physics, cme_retrieval
    from solarjax.retrieval import embed_images
    from solarjax.retrieval import ranking as ranking_lib

    if refused := _refused_arguments(args, "cme_patches", "CME difference images [N, 128, 128]"):
        print(refused, file=sys.stderr)
        return 2
    try:
        saved = ranking_lib.load_ranking(args.index)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not (pathlib.Path(args.index) / ranking_lib.RANKING_FILE).is_file():  # the defaults, on CME quantities
        saved = ranking_lib.Ranking(quantities=cme_retrieval.RANK_QUANTITIES)
    chosen = saved.with_rank(args.rank or saved.rank)
    results, labels = [], []
    for path in args.queries:
        images = np.load(path).astype(np.float32)
        images = images[..., 0] if images.ndim in (3, 4) and images.shape[-1] == 1 else images
        images = images[None] if images.ndim == 2 else images
        if images.ndim != 3 or images.shape[1:] != (128, 128) or not np.isfinite(images).all():
            print(
                f"error: {path}: CME queries must be finite difference images [N, 128, 128], got shape "
                f"{np.load(path).shape}" + ("" if np.isfinite(images).all() else " with non-finite pixels"),
                file=sys.stderr,
            )
            return 2
        images = images[..., None]
        measured = {k: np.asarray(v, np.float64) for k, v in cme_physics.quantities(images).items()}
        embeddings = np.asarray(embed_images(encoder.embed, images))
        results += ranking_lib.search(index, embeddings, measured, args.k, filters, ranking=chosen)
        labels += [f"{path}[{i}]" for i in range(len(images))]
    if args.json:
        _print_search_json(labels, results, rank=chosen.rank)
        return 0
    print(f"ranking: {chosen.rank}" + (f" (weight {chosen.weight:g})" if chosen.rank == "hybrid" else ""))
    _print_search_text(
        labels,
        results,
        lambda m: (
            f"{m['id']}  {m['detector']}  {m['t_obs']}  CPA {m['cpa_deg']:.0f} deg  width {m['width_deg']:.0f} deg  "
            f"height {m['front_height_rsun']:.2f} Rsun  excess {m['excess']:.1f}  {m['source']}"
        ),
    )
    return 0
