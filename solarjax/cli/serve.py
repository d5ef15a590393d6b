"""`solarjax serve`: the reverse image-search web application on a demo output (SHARP, or CME: an output of
`solarjax demo --dataset cme` is recognised and served in CME mode)."""

from __future__ import annotations

import sys

from solarjax.cli.arguments import add_data_dir_argument


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="the reverse image-search web application",
        description="Load the GAN, directions, encoder and index of a demo output directory (fingerprints must "
        "match) and serve the search page and its JSON API (OpenAPI at /docs). An output of `solarjax demo "
        "--dataset cme` is recognised and served in CME mode: generate CMEs steered by width, CPA and excess, "
        "search the real CMEs with them or with an uploaded .npy difference image.",
    )
    parser.add_argument(
        "--workdir",
        default="demo_out",
        help="directory written by `solarjax demo` or `solarjax demo --dataset cme` (default demo_out)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument(
        "--aia-index",
        help="also serve this AIA index (OUT of `solarjax index build --dataset "
        "aia_patches`): a dataset selector appears on the page",
    )
    parser.add_argument("--aia-ssl", help="the SimSiam run that embedded the AIA index (with --aia-index)")
    add_data_dir_argument(
        parser, "TFDS data directory of the AIA index's aia_patches rows, for their images", flag="--aia-data-dir"
    )
    parser.set_defaults(func=run_serve)


def run_serve(args) -> int:
    from solarjax.app import ArtefactError, load_aia_artefacts, serve

    if bool(args.aia_index) != bool(args.aia_ssl):
        print("error: --aia-index and --aia-ssl go together (the index and the encoder that built it)", file=sys.stderr)
        return 2
    try:
        aia = load_aia_artefacts(args.aia_index, args.aia_ssl, args.aia_data_dir) if args.aia_index else None
        serve(args.workdir, host=args.host, port=args.port, aia=aia)
    except ArtefactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
