r"""The paper's SimSiam encoder on the real SHARP Br patches (about 44,000), on an accelerator.

Command (download the SHARPs and build the dataset once, then train; a killed run resumes):

    solarjax data build --config fits --manual-dir DATA/sharp_cea --data-dir ~/tensorflow_datasets
    solarjax train simsiam --config simsiam_sharp_full --workdir runs/simsiam_sharp

The paper's settings: ResNet-18 (1-channel stem, 512-d features), projector 512-512-100,
predictor 100-128-100, the `paper` augmentations (one to seven of rotation +-20 deg, translation
+-10 px, zoom 0.8-1.2, 2x2 box blur, horizontal and vertical flips, polarity flip as -B; random
order), SGD lr 0.05 * 64 / 256 = 0.0125 constant, momentum 0.9, weight decay 5e-4, batch 64,
10 epochs (6,900 steps of 64 over about 44,000 patches; the train split by HARP holds about 80 %
of them, so about 8.6 epochs of it).

Runtime: on a 2-core CPU about 7-8 train images/s at this width (benchmarks/simsiam_bench.py),
so about 16 h for 6,900 steps: use an accelerator (not measured here) or simsiam_synthetic.py.

Expected result: the collapse level (metrics.jsonl 'collapse') falls from about 1 to below 0.3
within the first epoch and stays there; the k-NN monitor 'knn/ssl_mean' (Spearman of TUF, PSEP
and R between each validation patch and its nearest neighbour in the embedding) ends above
'knn/pixel_mean', the same figure for nearest neighbours in pixel space.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 23
    config.image_size = 128
    config.compute_dtype = "float32"  # or "bfloat16": bf16 compute, f32 parameters (solarjax.models.precision)
    config.model = ml_collections.ConfigDict(
        {"input_channels": 1, "width": 64, "projector_dims": (512, 512, 100), "predictor_hidden": 128})
    config.augment = "paper"
    config.batch_size = 64
    config.num_steps = 6900
    config.optimizer = ml_collections.ConfigDict({
        "base_lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "cosine_decay": False, "fixed_predictor_lr": False})
    config.log_every = 50
    config.eval_every = 500
    config.checkpoint_every = 500
    config.keep_checkpoints = 3
    config.knn = ml_collections.ConfigDict({"num_patches": 1024})
    config.data = ml_collections.ConfigDict({
        "data_dir": "~/tensorflow_datasets", "builder_config": "fits", "split": "train",
        "heldout_split": "validation"})
    return config
