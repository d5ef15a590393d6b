"""TFDS dataset builders of solarjax (`tfds new` layout, one folder each).

Importing this package registers the builders with TFDS, so that for example
``tfds.data_source('sharp_patches/synthetic', data_dir=...)`` finds them.
"""

from data_builders import (
    aia_patches,  # noqa: F401
    cme_patches,  # noqa: F401
    sharp_patches,  # noqa: F401
)
