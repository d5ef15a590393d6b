"""`solarjax.configs.simsiam`'s 'aia_synthetic' variant (its fields and commands are documented there); this path keeps
``--config experiments/configs/simsiam_aia_synthetic.py`` and the experiment scripts working."""

import ml_collections

from solarjax.configs import simsiam


def get_config() -> ml_collections.ConfigDict:
    """``solarjax.configs.simsiam.get_config('aia_synthetic')``."""
    return simsiam.get_config("aia_synthetic")
