"""`solarjax.configs.simsiam`'s 'sharp_full' variant (its fields and commands are documented there); this path keeps
``--config experiments/configs/simsiam_sharp_full.py`` and the experiment scripts working."""

import ml_collections

from solarjax.configs import simsiam


def get_config() -> ml_collections.ConfigDict:
    """``solarjax.configs.simsiam.get_config('sharp_full')``."""
    return simsiam.get_config("sharp_full")
