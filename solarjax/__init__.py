"""solarjax: a generative model of SDO/HMI SHARP magnetograms used as a search engine for real data.

Submodules load on first use, so `import solarjax as sj` is cheap::

    import solarjax as sj
    patch = sj.data.read_sharp("hmi.sharp_cea_720s.1449.20120306_142400_TAI.Br.fits")
    image = sj.data.preprocess_patch(patch).image          # [128, 128], B / 1000 G in [-1, 1]
    sj.physics.quantities(image[None])                     # dict of [1] arrays: tuf, psep, r_value, ...
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "app",
    "augment",
    "configs",
    "data",
    "demo",
    "gan",
    "interop",
    "models",
    "physics",
    "retrieval",
    "ssl",
    "steering",
    "train",
)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"solarjax.{name}")
    raise AttributeError(f"module 'solarjax' has no attribute {name!r}")
