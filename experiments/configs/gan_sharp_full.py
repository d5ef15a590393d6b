"""`solarjax.configs.gan`'s 'sharp_full' variant (its fields and commands are documented there); this path keeps
``--config experiments/configs/gan_sharp_full.py`` and the experiment scripts working."""

import ml_collections

from solarjax.configs import gan


def get_config() -> ml_collections.ConfigDict:
    """``solarjax.configs.gan.get_config('sharp_full')``."""
    return gan.get_config("sharp_full")
