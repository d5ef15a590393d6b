"""The old name of `solarjax.configs.simsiam`'s 'aia_synthetic' variant (``--config simsiam:aia_synthetic``), kept so
``from solarjax.configs import simsiam_aia_synthetic`` and ``--config simsiam_aia_synthetic`` still work."""

import ml_collections

from solarjax.configs import simsiam


def get_config() -> ml_collections.ConfigDict:
    """``simsiam.get_config('aia_synthetic')``."""
    return simsiam.get_config("aia_synthetic")
