"""The old name of `solarjax.configs.gan`'s 'paper' variant (``--config gan:paper``), kept so
``from solarjax.configs import gan_paper`` and ``--config gan_paper`` still work."""

import ml_collections

from solarjax.configs import gan


def get_config() -> ml_collections.ConfigDict:
    """``gan.get_config('paper')``."""
    return gan.get_config("paper")
