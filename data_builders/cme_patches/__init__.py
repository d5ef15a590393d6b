"""cme_patches dataset: LASCO-like CME difference images, synthetic (with truth) or from LASCO C2/C3 files."""

from data_builders.cme_patches.cme_patches_dataset_builder import (  # noqa: F401
    Builder,
    BuildLog,
    CmePatchesConfig,
    build,
    group_into_sequences,
    sequence_split,
)
from data_builders.common import BUILD_LOG_NAME  # noqa: F401
