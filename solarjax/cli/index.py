"""`solarjax index build`: embed a dataset split with a SimSiam encoder and build its search index."""

from __future__ import annotations

import pathlib
import shutil
import sys

from solarjax.cli.arguments import add_data_dir_argument, add_dataset_arguments
from solarjax.cli.outputs import existing_outputs, replaced_atomically


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "index",
        help="embed a dataset split and build a search index",
        description="build: embed every patch of DATASET/CONFIG:SPLIT (sharp_patches, or aia_patches of AIA EUV "
        "channels) with the SimSiam encoder of --ssl into OUT/table (memory-mapped, with the dataset's "
        "metadata: HARP, T_REC, physics for SHARPs; id, t_obs, wavelengths, bbox, hpc, mu for AIA) and "
        "build OUT/index (exact for small tables, ScaNN above 100,000 rows; recall against exact is "
        "measured at build time).",
    )
    commands = parser.add_subparsers(dest="index_command", metavar="INDEX_COMMAND", required=True)
    build = commands.add_parser("build", help="embed a split and build the index")
    build.add_argument("--ssl", required=True, help="SimSiam run directory")
    add_data_dir_argument(build)
    add_dataset_arguments(
        build,
        dataset_help="TFDS dataset (default sharp_patches)",
        config_help="builder config (default synthetic; cme_patches: synthetic, files (C2), files_c3)",
    )
    build.add_argument("--split", default="train", help="split to embed (default train)")
    build.add_argument("--out", required=True, help="output directory (refused if it exists, unless --overwrite)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing OUT (built beside, then swapped)")
    build.add_argument(
        "--kind",
        choices=("auto", "exact", "scann"),
        default="auto",
        help="exact search, ScaNN, or auto (ScaNN from 10,000 rows) (default auto)",
    )
    build.add_argument("--metric", choices=("l2", "cosine"), default="l2", help="distance (default l2)")
    build.add_argument(
        "--multihost",
        action="store_true",
        help="call jax.distributed.initialize() first and run the same command on every host (OUT on "
        "a shared file system): each host embeds a contiguous share of the split on its own "
        "devices into .OUT.hosts/, then process 0 merges the shares into OUT/table (dataset "
        "order) and builds OUT/index",
    )
    build.set_defaults(func=run_index_build)


def run_index_build(args) -> int:
    from solarjax import ssl
    from solarjax.data import pipeline
    from solarjax.retrieval import build_index, embed_dataset
    from solarjax.retrieval.table import dataset_features

    out = pathlib.Path(args.out)
    if refused := existing_outputs([out], args.overwrite):
        print(f"solarjax index build: {refused}", file=sys.stderr)
        return 2
    if not (pathlib.Path(args.data_dir) / args.dataset / args.config).is_dir():
        print(
            f"solarjax index build: error: dataset {args.dataset}/{args.config} is not built in {args.data_dir}: "
            f"run `solarjax data build --dataset {args.dataset} --config {args.config} --data-dir {args.data_dir}` "
            "first",
            file=sys.stderr,
        )
        return 2
    encoder = ssl.load(args.ssl)
    batch_size = 128
    batches = pipeline.make_iterator(
        args.split,
        batch_size=batch_size,
        seed=0,
        data_dir=args.data_dir,
        config=args.config,
        dataset=args.dataset,
        num_epochs=1,
        shuffle=False,
        drop_remainder=False,
        keys=dataset_features(args.dataset),
    )
    dataset = f"{args.dataset}/{args.config}:{args.split}"
    shares = None
    if args.multihost:
        from solarjax.retrieval import hosts

        process_index, process_count = hosts.initialize_distributed()
        rows = len(pipeline.load_split(args.split, data_dir=args.data_dir, config=args.config, dataset=args.dataset))
        shares = out.parent / f".{out.name}.hosts"
        hosts.embed_host_share(
            shares,
            encoder.embed,
            encoder.fingerprint,
            batches,
            num_batches=-(-rows // batch_size),
            process_index=process_index,
            process_count=process_count,
            dataset=dataset,
            dataset_name=args.dataset,
        )
        if process_index != 0:
            print(f"host {process_index} of {process_count}: share embedded; process 0 merges into {out}")
            return 0
    with replaced_atomically(out) as partial:
        shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted build
        if shares is None:
            table = embed_dataset(
                partial / "table",
                encoder.embed,
                encoder.fingerprint,
                batches,
                dataset=dataset,
                dataset_name=args.dataset,
            )
        else:
            table = hosts.merge_host_tables(hosts.wait_for_hosts(shares, process_count), partial / "table")
        index = build_index(table, kind=args.kind, metric=args.metric)
        index.save(partial / "index")
    if shares is not None:
        shutil.rmtree(shares, ignore_errors=True)
    print(f"{table.num_rows} rows, {index.kind} index in {out / 'index'}")
    return 0
