"""`solarjax train gan|simsiam`: train a model from a config into a run directory (resumable)."""

from __future__ import annotations

import os
import sys


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the GAN or the SimSiam encoder",
        description="Train a model from a config (a packaged one such as gan_synthetic, or a .py file defining "
        "get_config()) into WORKDIR; rerunning with the same WORKDIR resumes from the last checkpoint "
        "(a different model config is refused).",
    )
    models = parser.add_subparsers(dest="model", metavar="MODEL", required=True)
    for name, text in (
        (
            "gan",
            "the GAN (config gan_synthetic; the paper's generator: gan_paper; real SHARPs at scale: gan_sharp_full)",
        ),
        ("simsiam", "the SimSiam encoder (config simsiam_synthetic; simsiam_aia_synthetic, simsiam_sharp_full)"),
    ):
        model = models.add_parser(
            name,
            help=text,
            description=f"Train {text}. Any field of the config can be set on the command line "
            "as ml_collections' config flags do: --config.FIELD=VALUE (e.g. "
            "--config.batch_size=64 --config.optimizer.b1=0.9), parsed as the field's "
            "type; an unknown field or a wrong type is refused. The config is locked.",
        )
        model.add_argument(
            "--config",
            required=True,
            help="a packaged config MODEL[:VARIANT] (solarjax.configs: gan:synthetic (default), "
            "gan:paper, gan:sharp_full; simsiam:synthetic (default), simsiam:aia_synthetic, "
            "simsiam:sharp_full, simsiam:cme_synthetic; old names such as gan_paper still work) "
            "or a .py file defining get_config() (FILE.py:ARG calls get_config(ARG))",
        )
        model.add_argument("--workdir", required=True, help="run directory (config.json, metrics.jsonl, checkpoints/)")
        model.add_argument("--data-dir", help="override config.data.data_dir (the TFDS data directory)")
        model.add_argument(
            "--multihost",
            action="store_true",
            help="call jax.distributed.initialize() first (one process per host; the cluster "
            "environment, e.g. SLURM or a TPU pod, supplies the coordinator)",
        )
        model.set_defaults(func=run_train)


def run_train(args) -> int:
    """Trains; ``args.config_overrides`` holds the command line's ``--config.FIELD=VALUE`` items."""
    from solarjax import configs

    named_file = str(args.config).split(":", 1)[0]
    if os.path.isfile(named_file) and not named_file.endswith(".py"):
        print(
            f"solarjax train {args.model}: error: --config {args.config}: {named_file} is not a Python config file "
            "(a .py file defining get_config()) nor a packaged config name",
            file=sys.stderr,
        )
        return 2
    config = configs.load(args.config, getattr(args, "config_overrides", ()))
    if args.multihost:
        import jax

        jax.distributed.initialize()
    if args.data_dir:
        config.data.data_dir = args.data_dir
    if args.model == "gan":
        from solarjax.train.gan import train_and_evaluate
    else:
        from solarjax.train.simsiam import train_and_evaluate
    train_and_evaluate(config, args.workdir)
    return 0
