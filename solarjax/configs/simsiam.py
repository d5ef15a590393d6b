r"""The SimSiam trainer's config (`solarjax.train.simsiam.train_and_evaluate`): one base config and its variants.

``get_config(variant)``, ml_collections style (``--config simsiam:aia_synthetic``, or the old names
``simsiam_synthetic``, ``simsiam_aia_synthetic``, ``simsiam_sharp_full``):

  synthetic      (default) the demo's encoder on the embedded synthetic active regions, sized for a 2-core
                 CPU: the paper's recipe (projector 512-512-100, predictor 100-128-100; SGD lr 0.05 * 64 /
                 256 constant, momentum 0.9, weight decay 5e-4, batch 64) on a ResNet-18 of width 16
                 (128-d features), 500 steps, the `search` augmentations (no zoom, no blur: they change
                 TUF, PSEP and R) and the self-supervised physics head (``physics_aux_weight = 1``, chosen
                 on validation).
  aia_synthetic  three-channel synthetic AIA EUV patches (171, 193, 211 A; ``data.dataset = 'aia_patches'``)
                 with the `euv` augmentations; no physics head (the head predicts Br quantities).
  sharp_full     the paper's encoder on the ~44,000 real SHARP Br patches: ResNet-18 of width 64 (512-d
                 features), the paper's seven augmentations, 6,900 steps (10 epochs of 64); on accelerators.
                 No physics head (the paper's SimSiam).
  cme_synthetic  synthetic CME difference images (``cme_patches``) at width 8, batch 32, 200 steps, with
                 augmentations that respect the coronagraph geometry (rotation about the Sun's centre of at
                 most 5 deg, 2 px shifts, noise); k-NN monitor off (`experiments/cme_search.py` monitors
                 the CME quantities instead); no physics head.

Commands (build the data once, then train; a killed run resumes from its work directory)::

    solarjax data build --config synthetic --num-examples 10000 --data-dir ~/tensorflow_datasets
    solarjax train simsiam --config simsiam:synthetic --workdir runs/simsiam_synthetic

    solarjax data build --dataset aia_patches --config synthetic --num-examples 10000
    solarjax train simsiam --config simsiam:aia_synthetic --workdir runs/simsiam_aia

    solarjax data build --config fits --manual-dir DATA/sharp_cea --data-dir ~/tensorflow_datasets
    solarjax train simsiam --config simsiam:sharp_full --workdir runs/simsiam_sharp

    solarjax data build --dataset cme_patches --config synthetic --num-examples 2500
    solarjax train simsiam --config simsiam:cme_synthetic --workdir runs/simsiam_cme

Measured runtimes and results of each variant: experiments/README.md, "SimSiam configs: measurements".

Fields: seed; image_size; compute_dtype ('float32' | 'bfloat16': bf16 compute, f32 parameters); model.*
(input_channels, ResNet-18 width, projector_dims, predictor_hidden: their hash is the checkpoint
fingerprint); augment (a recipe name of `solarjax.augment`, or a group of fields defining one);
physics_aux_weight (0 = plain SimSiam); batch_size (global); total_steps (``num_steps`` in configs saved
before the names were unified: `solarjax.configs.upgrade` reads them); optimizer.* (SGD: base_lr scaled
by batch_size / 256, momentum, weight_decay, cosine_decay, fixed_predictor_lr); log_every, eval_every
(k-NN monitor, 0 = never), checkpoint_every, keep_checkpoints; knn.num_patches (held-out patches of the
monitor); data.* (dataset, builder config, train and held-out splits).
"""

import ml_collections

VARIANTS = ("synthetic", "aia_synthetic", "sharp_full", "cme_synthetic")
"""The arguments `get_config` takes (the first is the default)."""


def get_config(variant: str = "synthetic") -> ml_collections.ConfigDict:
    """The SimSiam config of `variant` (one of `VARIANTS`; '' is the default)."""
    variant = variant or VARIANTS[0]
    if variant not in VARIANTS:
        raise ValueError(f"unknown SimSiam config variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    config = {
        "seed": 23,
        "image_size": 128,
        "compute_dtype": "float32",
        "model": {"input_channels": 1, "width": 16, "projector_dims": (512, 512, 100), "predictor_hidden": 128},
        "augment": "search",
        "physics_aux_weight": 1.0,
        "batch_size": 64,
        "total_steps": 500,
        "optimizer": {
            "base_lr": 0.05,
            "momentum": 0.9,
            "weight_decay": 5e-4,
            "cosine_decay": False,
            "fixed_predictor_lr": False,
        },
        "log_every": 20,
        "eval_every": 100,
        "checkpoint_every": 100,
        "keep_checkpoints": 2,
        "knn": {"num_patches": 512},
        "data": {
            "data_dir": "~/tensorflow_datasets",
            "builder_config": "synthetic",
            "split": "train",
            "heldout_split": "validation",
        },
    }
    if variant == "aia_synthetic":
        config["model"]["input_channels"] = 3
        config["augment"] = "euv"  # wavelengths (171, 193, 211): the channels of aia_patches/synthetic
        config["physics_aux_weight"] = 0.0
        config["data"]["dataset"] = "aia_patches"
    elif variant == "sharp_full":
        config["model"]["width"] = 64
        config["augment"] = "paper"
        config["physics_aux_weight"] = 0.0
        config["total_steps"] = 6900
        config.update(log_every=50, eval_every=500, checkpoint_every=500, keep_checkpoints=3)
        config["knn"]["num_patches"] = 1024
        config["data"]["builder_config"] = "fits"
    elif variant == "cme_synthetic":
        config["model"] = {"input_channels": 1, "width": 8, "projector_dims": (256, 256, 64), "predictor_hidden": 32}
        config["augment"] = {
            "name": "cme_geometry",
            "augmentations": ("rotation", "translation", "noise"),
            "probabilities": (1.0, 1.0, 1.0),
            "min_ops": 1,
            "max_ops": 3,
            "rotation_degrees": 5.0,
            "translation_pixels": 2,
            "noise_std_range": (0.0, 0.02),
            "fill_noise_std": 0.0,
        }
        config["physics_aux_weight"] = 0.0
        config.update(batch_size=32, total_steps=200, eval_every=0)
        config["knn"]["num_patches"] = 256
        config["data"]["dataset"] = "cme_patches"
    return ml_collections.ConfigDict(config)
