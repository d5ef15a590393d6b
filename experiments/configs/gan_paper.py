"""`solarjax.configs.gan`'s 'paper' variant (its fields and commands are documented there); this path keeps
``--config experiments/configs/gan_paper.py`` and the experiment scripts working."""

import ml_collections

from solarjax.configs import gan


def get_config() -> ml_collections.ConfigDict:
    """``solarjax.configs.gan.get_config('paper')``."""
    return gan.get_config("paper")
