"""sharp_patches dataset: SDO/HMI SHARP CEA Br patches, synthetic or real."""

from data_builders.common import BUILD_LOG_NAME  # noqa: F401
from data_builders.sharp_patches.sharp_patches_dataset_builder import (  # noqa: F401
    Builder,
    BuildLog,
    SharpPatchesConfig,
    build,
    harp_split,
)
