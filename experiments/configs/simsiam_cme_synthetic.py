r"""SimSiam on synthetic CME difference images (`cme_patches/synthetic`), small enough for a 2-core CPU.

Command (build the data once, then train; a killed run resumes from its work directory):

    solarjax data build --dataset cme_patches --config synthetic --num-examples 2500
    solarjax train simsiam --config experiments/configs/simsiam_cme_synthetic.py --workdir runs/simsiam_cme

or all in one, with the search and its evaluation (what measured the figures in experiments/README.md):

    python -m experiments.cme_search --workdir runs/cme --out runs/cme/search

The SimSiam of `simsiam_synthetic.py` at width 8 (ResNet-18: 64-d backbone features; projector 256-256-64,
predictor 64-32-64; SGD lr 0.05 * 32 / 256, momentum 0.9, weight decay 5e-4, batch 32), one input channel
(the relative difference in [-1, 1]), 200 steps (6,400 pairs of views, 3.2 passes over the 2,000 training
CMEs of a 2,500-example build; 1.1-1.4 s per step, ~5 min on a loaded 2-core CPU). Augmentations that
respect the coronagraph geometry: a rotation about the Sun's centre (the grid centre) of at most 5 deg, a
shift of at most 2 px (a pointing error) and noise of 0-0.02 rms (the synthetic noise level); uncovered
pixels stay 0. No flip (a mirror image
maps the position angle PA to 360 - PA), no large rotation (it changes the CPA by its angle, and the
search is asked to match CPA) and no zoom (it scales the front height).

k-NN monitor: off here (``eval_every = 0``): the trainer's default held-out quantities are the Br physics
of magnetograms. `experiments/cme_search.py` trains with a held-out set monitored on the CME quantities
(`solarjax.cme_physics`: CPA, width, front height, excess) instead.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 23
    config.image_size = 128
    config.model = ml_collections.ConfigDict(
        {"input_channels": 1, "width": 8, "projector_dims": (256, 256, 64), "predictor_hidden": 32})
    config.augment = ml_collections.ConfigDict({
        "name": "cme_geometry", "augmentations": ("rotation", "translation", "noise"),
        "probabilities": (1.0, 1.0, 1.0), "min_ops": 1, "max_ops": 3, "rotation_degrees": 5.0,
        "translation_pixels": 2, "noise_std_range": (0.0, 0.02), "fill_noise_std": 0.0})
    config.batch_size = 32
    config.num_steps = 200
    config.optimizer = ml_collections.ConfigDict({
        "base_lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "cosine_decay": False, "fixed_predictor_lr": False})
    config.log_every = 20
    config.eval_every = 0
    config.checkpoint_every = 100
    config.keep_checkpoints = 2
    config.knn = ml_collections.ConfigDict({"num_patches": 256})
    config.data = ml_collections.ConfigDict({
        "data_dir": "~/tensorflow_datasets", "dataset": "cme_patches", "builder_config": "synthetic",
        "split": "train", "heldout_split": "validation"})
    return config
