r"""The paper's GAN ('simple' architecture, non-saturating loss, no weight averaging) on the embedded
synthetic active regions, on CPU: the fidelity baseline of `gan_synthetic.py` (the demo default).

Command (build the data once, then train; a killed run resumes from its work directory):

    solarjax data build --config synthetic --data-dir ~/tensorflow_datasets
    solarjax train gan --config experiments/configs/gan_paper.py --workdir runs/gan_paper

Model: REFERENCE.md's generator (three stride-2 3x3 transposed convolutions, 1,510,081 parameters) and
discriminator, Adam 5e-4 with b1 = 0.5 (see gan_synthetic.py for why not 0.9), batch 32, 6,000 steps.
Runtime: as gan_synthetic.py's measurements of the 'simple' architecture (28-31 train images/s on a
loaded 2-core CPU, 50 at load ~4, about 80 idle).

Expected result (the full demo, 1,500 steps, experiments/realism.py): the stride-2 transposed
convolutions leave a checkerboard (spectral peaks at k = 16, 32, 48), noise width / spectral slope /
gradient KS 0.55-0.69 against the data, about 10x too few pixels beyond +-500 G and a median R about
twice the data's; the physics KS distances are 0.07-0.29. See gan_synthetic.py for the default
generator measured against it. The same fields as gan_synthetic.py; the checkpoint kept as best is
ranked by the Frechet distance, as before the realism score existed.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 23
    config.model = ml_collections.ConfigDict({'arch': 'simple', 'latent_dim': 100, 'loss': 'non_saturating',
                                              'ema_decay': 0.0})
    config.conv_impl = 'auto'
    config.optimizer = ml_collections.ConfigDict({'learning_rate': 5e-4, 'b1': 0.5, 'b2': 0.999})
    config.batch_size = 32
    config.total_steps = 6000
    config.log_every = 50
    config.checkpoint_every = 500
    config.keep_checkpoints = 3
    config.sample_every = 500
    config.num_grid_samples = 64
    config.eval_every = 2000
    config.quality = ml_collections.ConfigDict({
        'num_samples': 2000,
        'num_reference': 2000,
        'batch_size': 250,
        'encoder_seed': 0,
        'best_metric': 'frechet',
    })
    config.data = ml_collections.ConfigDict({
        'data_dir': '~/tensorflow_datasets',
        'builder_config': 'synthetic',
        'split': 'train',
        'canonical_polarity': False,
    })
    return config
