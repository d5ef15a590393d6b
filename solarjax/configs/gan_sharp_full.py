r"""The paper's GAN at full scale: real SHARP Br patches, 81 epochs, on accelerators.

Command (download and build the real dataset once, then train; a killed run resumes):

    solarjax data download ~/sharp_fits --start 2010-05-01T00:00 --end 2024-01-01T00:00
    solarjax data build --config fits --manual-dir ~/sharp_fits --data-dir ~/tensorflow_datasets
    solarjax train gan --config gan_sharp_full --workdir runs/gan_sharp_full

Multi-host: run the same program on every host, calling `jax.distributed.initialize()` before
`train_and_evaluate`; the global batch is then split over the devices of all hosts, each host
reading its own share of the data.

Scale: the paper's ~44,000 patches at batch 32 are 1,375 steps per epoch; the authors used the
epoch-81 checkpoint, so total_steps = 81 * 1,375 = 111,375 (conv_impl 'auto' = 'xla' on GPU/TPU).

Runtime (estimated, not yet measured): the 'simple' step is a few milliseconds on one H100, so the
run is bound by input and host overhead, roughly 30-60 min on one GPU, plus about 1 min for each of
the 16 quality evaluations (10,000 generated against 10,000 training patches). On a 2-core CPU the
same run would take days (~30-90 train images/s): use gan_synthetic.py there.

Expected result: samples (``samples/step_*.png``) of bipolar and multipolar active regions with
plage and quiet-Sun background like the training patches; ``quality/ks/<quantity>`` in
metrics.jsonl for the nine physical quantities and ``quality/frechet`` (which ranks checkpoints);
``solarjax.gan.load(workdir)`` gives the best-ranked generator for steering. Set
``model.arch = 'resize_conv'`` for the stronger architecture (spectrally normalised D,
resize-convolution G without checkerboard artefacts); its checkpoints have another fingerprint, so
use a new work directory.
"""
import ml_collections

STEPS_PER_EPOCH = 44_000 // 32


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 23
    config.model = ml_collections.ConfigDict({'arch': 'simple', 'latent_dim': 100})
    config.conv_impl = 'auto'
    config.compute_dtype = 'float32'  # or 'bfloat16': bf16 compute, f32 parameters (solarjax.models.precision)
    config.optimizer = ml_collections.ConfigDict({'learning_rate': 5e-4, 'b1': 0.9, 'b2': 0.999})
    config.batch_size = 32
    config.total_steps = 81 * STEPS_PER_EPOCH
    config.log_every = 100
    config.checkpoint_every = STEPS_PER_EPOCH
    config.keep_checkpoints = 3
    config.sample_every = 5 * STEPS_PER_EPOCH
    config.num_grid_samples = 64
    config.eval_every = 5 * STEPS_PER_EPOCH
    config.quality = ml_collections.ConfigDict({
        'num_samples': 10_000,
        'num_reference': 10_000,
        'batch_size': 500,
        'encoder_seed': 0,
        'best_metric': 'frechet',
    })
    config.data = ml_collections.ConfigDict({
        'data_dir': '~/tensorflow_datasets',
        'builder_config': 'fits',
        'split': 'train',
    })
    return config
