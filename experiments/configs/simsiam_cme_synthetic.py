"""`solarjax.configs.simsiam`'s 'cme_synthetic' variant: SimSiam on synthetic CME difference images
(`cme_patches/synthetic`), small enough for a 2-core CPU (its fields and commands are documented there).

    solarjax train simsiam --config experiments/configs/simsiam_cme_synthetic.py --workdir runs/simsiam_cme

or all in one, with the search and its evaluation (what measured the figures in experiments/README.md):

    python -m experiments.cme_search --workdir runs/cme --out runs/cme/search
"""

import ml_collections

from solarjax.configs import simsiam


def get_config() -> ml_collections.ConfigDict:
    """``solarjax.configs.simsiam.get_config('cme_synthetic')``."""
    return simsiam.get_config("cme_synthetic")
