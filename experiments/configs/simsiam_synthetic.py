r"""SimSiam on the embedded synthetic active regions, sized for a 2-core CPU.

Command (build the data once, then train; a killed run resumes from its work directory):

    solarjax data build --config synthetic --data-dir ~/tensorflow_datasets
    solarjax train simsiam --config experiments/configs/simsiam_synthetic.py --workdir runs/simsiam_synthetic

The paper's recipe (projector 512-512-100, predictor 100-128-100, `paper` augmentations, SGD
lr 0.05 * batch / 256 = 0.0125 constant, momentum 0.9, weight decay 5e-4, batch 64) on a
ResNet-18 of a quarter of the width (16: 128-d backbone features), so that a CPU trains it.

Runtime: PENDING

Expected result: PENDING
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 23
    config.image_size = 128
    config.model = ml_collections.ConfigDict(
        {"input_channels": 1, "width": 16, "projector_dims": (512, 512, 100), "predictor_hidden": 128})
    config.augment = "paper"
    config.batch_size = 64
    config.num_steps = 500
    config.optimizer = ml_collections.ConfigDict({
        "base_lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "cosine_decay": False, "fixed_predictor_lr": False})
    config.log_every = 20
    config.eval_every = 100
    config.checkpoint_every = 100
    config.keep_checkpoints = 2
    config.knn = ml_collections.ConfigDict({"num_patches": 512})
    config.data = ml_collections.ConfigDict({
        "data_dir": "~/tensorflow_datasets", "builder_config": "synthetic", "split": "train",
        "heldout_split": "validation"})
    return config
