"""The old name of `solarjax.configs.simsiam`'s 'sharp_full' variant (``--config simsiam:sharp_full``), kept so
``from solarjax.configs import simsiam_sharp_full`` and ``--config simsiam_sharp_full`` still work."""

import ml_collections

from solarjax.configs import simsiam


def get_config() -> ml_collections.ConfigDict:
    """``simsiam.get_config('sharp_full')``."""
    return simsiam.get_config("sharp_full")
