"""aia_patches dataset: multi-channel SDO/AIA patches, synthetic or from level-1 FITS files."""

from data_builders.aia_patches.aia_patches_dataset_builder import (  # noqa: F401
    AIAPatchesConfig,
    Builder,
    BuildLog,
    build,
    day_split,
    group_by_time,
)
from data_builders.common import BUILD_LOG_NAME  # noqa: F401
