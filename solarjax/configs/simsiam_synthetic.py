"""The old name of `solarjax.configs.simsiam`'s 'synthetic' variant (``--config simsiam:synthetic``), kept so
``from solarjax.configs import simsiam_synthetic`` and ``--config simsiam_synthetic`` still work."""

import ml_collections

from solarjax.configs import simsiam


def get_config() -> ml_collections.ConfigDict:
    """``simsiam.get_config('synthetic')``."""
    return simsiam.get_config("synthetic")
