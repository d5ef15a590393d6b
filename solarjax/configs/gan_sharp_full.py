"""The old name of `solarjax.configs.gan`'s 'sharp_full' variant (``--config gan:sharp_full``), kept so
``from solarjax.configs import gan_sharp_full`` and ``--config gan_sharp_full`` still work."""

import ml_collections

from solarjax.configs import gan


def get_config() -> ml_collections.ConfigDict:
    """``gan.get_config('sharp_full')``."""
    return gan.get_config("sharp_full")
