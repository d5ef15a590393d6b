"""The old name of `solarjax.configs.gan`'s 'synthetic' variant (``--config gan:synthetic``), kept so
``from solarjax.configs import gan_synthetic`` and ``--config gan_synthetic`` still work."""

import ml_collections

from solarjax.configs import gan


def get_config() -> ml_collections.ConfigDict:
    """``gan.get_config('synthetic')``."""
    return gan.get_config("synthetic")
