r"""The paper's GAN ('simple' architecture, non-saturating loss, no weight averaging) on the embedded
synthetic active regions, on CPU: the fidelity baseline of `gan_synthetic.py` (the demo default).

Command (build the data once, then train; a killed run resumes from its work directory):

    solarjax data build --config synthetic --data-dir ~/tensorflow_datasets
    solarjax train gan --config gan_paper --workdir runs/gan_paper

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

from solarjax.configs import gan_synthetic


def get_config() -> ml_collections.ConfigDict:
    """`gan_synthetic.py` with the paper's generator, checkpoints ranked by the Frechet distance."""
    config = gan_synthetic.get_config()
    config.model.arch = 'simple'
    config.quality.best_metric = 'frechet'
    return config
