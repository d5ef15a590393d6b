r"""Generator candidates for the demo's default GAN, trained alike and scored alike (issue 23).

Command (data built once, e.g. by the demo into DEMO/tfds)::

    python -m experiments.gan_candidates --data-dir DEMO/tfds --out results/gan_candidates \
        --steps 400 --seeds 23 24 [--candidates baseline edge edge_noise edge_noise_r1] [--num 500]

Every candidate is the demo's GAN config (`solarjax.configs.gan`, 'synthetic') with only the fields
of `CANDIDATES` changed: the same data (the train split), batch, optimiser, step count, seeds and
checkpoint ranking (realism score, evaluated every ``--eval-every`` steps and at the end). Each run
goes to ``OUT/<candidate>/seed<S>`` and is resumed if found there.

Scoring (the same for every run): the run's best checkpoint (`solarjax.gan.load`) draws ``--num``
patches G(z), z ~ N(0, I) with a fixed seed, against ``--num`` patches of the *validation* split (not
seen in training, not the test split), with `solarjax.train.quality.quality_figures` (physics KS,
Frechet on the fixed random-feature encoder, every realism diagnostic, realism score) and 95%
bootstrap intervals (resampling both sets, ``--bootstrap`` times) of every figure but the spectral
peaks and Frechet. Writes ``candidates_<step>.json`` and ``candidates_<step>.md`` (one row per run) and prints
the table. Once a run has trained, ``OUT/<candidate>/seed<S>.done`` holds its folder (`done_marker`).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import time

import numpy as np

_MATCHED_EMA = {
    "sharpness_weight": 1.0,
    "complexity_weight": 1.0,
    "quiet_weight": 10.0,
    "ema_decay": 0.99,
    "ema_start": 100,
}
"""The session-11 default's matched statistics with the EMA from step 100, which the session-12 candidates share."""

_FILLED_BIPOLE = {
    "arch": "resize_conv_small_edge_instrument_filled_stretched_structured_network_white_threshold_clip_minibatch",
    **_MATCHED_EMA,
    "quiet_weight": 0.0,
    "plage_weight": 10.0,
    "gradient_weight": 10.0,
    "bipole_weight": 10.0,
    "grid_weight": 10.0,
}
"""The session-22 default (filled structured generator with the bipole term) that the session-23 candidates extend."""

WIDE_SPOTS_ARCH = (
    "resize_conv_small_edge_instrument_filled_wide_spots_stretched_structured_network_white_threshold_clip_minibatch"
)
"""The filled structured generator with 6 px spots (`solarjax.models.gan.WIDE_SPOT_WIDTH_PX`)."""

UMBRAL_SPOTS_ARCH = (
    "resize_conv_small_edge_instrument_filled_umbral_spots_stretched_structured_network_white_threshold_clip_minibatch"
)
"""The filled structured generator with flat-cored spots (`solarjax.models.gan.render_umbrae`)."""

MILD_STRETCH_ARCH = (
    "resize_conv_small_edge_instrument_filled_mild_stretch_stretched_structured_network_white_threshold_clip_minibatch"
)
"""The filled structured generator whose per-patch stretch is at most 2.5x
(`solarjax.models.gan.MILD_STRETCH_LIMIT`)."""

MILD_STRETCH_STRETCHED_NOISE_ARCH = MILD_STRETCH_ARCH.replace("_mild_stretch_", "_mild_stretch_stretched_noise_")
"""The mild-stretch generator whose noise has a learned share stretched with the patch
(`solarjax.models.gan.InstrumentNoise.stretched`)."""

MILD_STRETCH_PATCH_CONTRAST_ARCH = MILD_STRETCH_ARCH.replace("_mild_stretch_", "_mild_stretch_patch_contrast_")
"""The mild-stretch generator whose plage texture has a contrast per patch
(`solarjax.models.gan.ClumpTexture.patch_contrast`)."""

PATCH_CONTRAST_WIDE_SPOTS_ARCH = MILD_STRETCH_PATCH_CONTRAST_ARCH.replace(
    "_patch_contrast_", "_patch_contrast_wide_spots_"
)
"""The patch-contrast generator (the default of sessions 29-30) with 6 px spots
(`solarjax.models.gan.WIDE_SPOT_WIDTH_PX`)."""

PATCH_CONTRAST_FAST_SPOTS_ARCH = MILD_STRETCH_PATCH_CONTRAST_ARCH.replace(
    "_patch_contrast_", "_patch_contrast_fast_spots_"
)
"""The patch-contrast generator whose spots' peaks learn 5 times faster (`solarjax.models.gan.SPOT_PEAK_RATE`): the
default since session 31."""

PENUMBRAE_ARCH = PATCH_CONTRAST_FAST_SPOTS_ARCH.replace("_fast_spots_", "_fast_spots_penumbrae_")
"""The fast-spot generator (the default since session 31) whose spots have penumbrae
(`solarjax.models.gan.FluxConcentrations.penumbra`)."""

WIDE_CLOUDS_ARCH = PATCH_CONTRAST_FAST_SPOTS_ARCH.replace("_fast_spots_", "_fast_spots_wide_clouds_")
"""The fast-spot generator with 20 px plage clouds (`solarjax.models.gan.WIDE_CLOUD_WIDTH_PX`)."""

CAPPED_TEXTURE_ARCH = PATCH_CONTRAST_FAST_SPOTS_ARCH.replace("_fast_spots_", "_fast_spots_capped_texture_")
"""The fast-spot generator whose plage texture is capped at 2.5 sd (`solarjax.models.gan.CLUMP_CAP_SD`)."""

SCALED_TEXTURE_ARCH = PATCH_CONTRAST_FAST_SPOTS_ARCH.replace("_fast_spots_", "_fast_spots_scaled_texture_")
"""The fast-spot generator whose plage texture starts at equal variance shares of its scales
(`solarjax.models.gan.ClumpTexture.equal_variance_start`)."""

CAPPED_SCALED_TEXTURE_ARCH = PATCH_CONTRAST_FAST_SPOTS_ARCH.replace(
    "_fast_spots_", "_fast_spots_capped_scaled_texture_"
)
"""The fast-spot generator with both texture changes: capped and started at equal variance shares."""

CAPPED_FAST_SCALED_TEXTURE_ARCH = PATCH_CONTRAST_FAST_SPOTS_ARCH.replace(
    "_fast_spots_", "_fast_spots_capped_fast_scaled_texture_"
)
"""The capped, equal-variance texture whose scale mixture learns 5 times faster
(`solarjax.models.gan.TEXTURE_SCALE_RATE`)."""

CAPPED_COARSE_TEXTURE_ARCH = PATCH_CONTRAST_FAST_SPOTS_ARCH.replace(
    "_fast_spots_", "_fast_spots_capped_coarse_texture_"
)
"""The capped, equal-variance texture without its 0.5-px scale (`solarjax.models.gan.COARSE_TEXTURE_CORRELATION_PX`)."""

_LATE_SPREAD_SPOT = {
    **_FILLED_BIPOLE,
    "complexity_spread_weight": 3.0,
    "complexity_spread_start": 200,
    "spot_weight": 10.0,
    "spot_start": 200,
}
"""The session-23 default: `_FILLED_BIPOLE` with the R-spread and spot terms from step 200, which the session-24
candidates extend."""

_LATE_SECTOR = {**_LATE_SPREAD_SPOT, "sector_weight": 3.0, "sector_start": 200}
"""`_LATE_SPREAD_SPOT` with the sector term from step 200 (session 24's SEC), which the session-25 candidates extend."""

CANDIDATES = {
    "baseline": {"arch": "resize_conv_small"},
    "edge": {"arch": "resize_conv_small_edge"},
    "edge_noise": {"arch": "resize_conv_small_edge_noise"},
    "edge_noise_r1": {"arch": "resize_conv_small_edge_noise", "r1_gamma": 1.0},
    "edge_noise_ema": {"arch": "resize_conv_small_edge_noise", "ema_decay": 0.99},
    "bilinear_noise": {"arch": "resize_conv_small_bilinear_noise"},
    "bilinear_noise_ema": {"arch": "resize_conv_small_bilinear_noise", "ema_decay": 0.99},
    "edge_noise_minibatch": {"arch": "resize_conv_small_edge_noise_minibatch"},
    "bilinear_noise_minibatch": {"arch": "resize_conv_small_bilinear_noise_minibatch"},
    "edge_instrument_minibatch": {"arch": "resize_conv_small_edge_instrument_minibatch"},
    "edge_instrument_threshold_minibatch": {"arch": "resize_conv_small_edge_instrument_threshold_minibatch"},
    "edge_instrument_threshold_sharpness": {
        "arch": "resize_conv_small_edge_instrument_threshold_minibatch",
        "sharpness_weight": 1.0,
    },
    "edge_instrument_threshold_sharpness_complexity": {
        "arch": "resize_conv_small_edge_instrument_threshold_minibatch",
        "sharpness_weight": 1.0,
        "complexity_weight": 1.0,
    },
    "edge_instrument_threshold_sharpness_complexity_quiet": {
        "arch": "resize_conv_small_edge_instrument_threshold_minibatch",
        "sharpness_weight": 1.0,
        "complexity_weight": 1.0,
        "quiet_weight": 10.0,
    },
    "edge_instrument_gain_threshold_sharpness_complexity_quiet": {
        "arch": "resize_conv_small_edge_instrument_gain_threshold_minibatch",
        "sharpness_weight": 1.0,
        "complexity_weight": 1.0,
        "quiet_weight": 10.0,
    },
    "edge_instrument_fast_gain_threshold_sharpness_complexity_quiet": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_threshold_minibatch",
        "sharpness_weight": 1.0,
        "complexity_weight": 1.0,
        "quiet_weight": 10.0,
    },
    "edge_instrument_fast_gain_threshold_sharpness_complexity_quiet_ema": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_threshold_minibatch",
        "sharpness_weight": 1.0,
        "complexity_weight": 1.0,
        "quiet_weight": 10.0,
        "ema_decay": 0.99,
    },
    "edge_instrument_fast_gain_threshold_sharpness_complexity_quiet_ema_start": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_threshold_minibatch",
        **_MATCHED_EMA,
    },
    "edge_instrument_fast_gain_threshold_sharpness_complexity_quiet_ema_start_plage": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_threshold_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
    },
    "edge_instrument_fast_gain_threshold_sharpness_complexity_quiet_ema_start_plage_balance": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_threshold_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "balance_weight": 1.0,
    },
    "edge_instrument_fast_gain_diffuse_threshold_sharpness_complexity_quiet_ema_start_plage": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
    },
    "edge_instrument_fast_gain_threshold_sharpness_complexity_quiet_ema_start_coherence": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_threshold_minibatch",
        **_MATCHED_EMA,
        "coherence_weight": 20.0,
    },
    "edge_instrument_fast_gain_diffuse_threshold_sharpness_complexity_quiet_ema_start_coherence": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_minibatch",
        **_MATCHED_EMA,
        "coherence_weight": 20.0,
    },
    "edge_instrument_fast_gain_diffuse_threshold_sharpness_complexity_quiet_ema_start_plage_gradient": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
    },
    "edge_instrument_fast_gain_diffuse_threshold_sharpness_complexity_quiet_ema_start_plage_gradient_umbra": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "umbra_weight": 1.0,
    },
    "edge_instrument_fast_gain_diffuse_threshold_sharpness_complexity_quiet_ema_start_plage_gradient_umbra_weak": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "umbra_weight": 0.1,
    },
    "edge_instrument_fast_gain_diffuse_threshold_sharpness_complexity_quiet_ema_start_plage_gradient_umbra_border_weak": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "umbra_weight": 0.1,
        "border_weight": 0.1,
    },
    "edge_instrument_fast_gain_diffuse_threshold_sharpness_complexity_quiet_ema_start_plage_gradient_umbra_border": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "umbra_weight": 1.0,
        "border_weight": 1.0,
    },
    "edge_instrument_fast_gain_diffuse_threshold_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_diffuse_threshold_sharpness_complexity_quiet_ema_start_plage_gradient_grid_coherence": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
        "coherence_weight": 5.0,
    },
    "edge_instrument_fast_gain_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid_coherence20": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
        "coherence_weight": 20.0,
    },
    "edge_instrument_fast_gain_diffuse_threshold_clip_multiscale_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_clip_multiscale",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid_spectrum": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
        "spectrum_weight": 10.0,
    },
    "edge_instrument_fast_gain_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid_spectrum30": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
        "spectrum_weight": 30.0,
    },
    "edge_instrument_fast_gain_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid_spectrum_isotropy": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
        "spectrum_weight": 10.0,
        "isotropy_weight": 10.0,
    },
    "edge_instrument_fast_gain_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid_spectrum_sector": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
        "spectrum_weight": 10.0,
        "sector_weight": 10.0,
    },
    "edge_instrument_fast_gain_bilinear_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_bilinear_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_bilinear_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid_signal_spectrum": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_bilinear_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
        "signal_spectrum_weight": 10.0,
    },
    "edge_instrument_fast_gain_bilinear_textured_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_bilinear_textured_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_bilinear_textured_concentrated_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_bilinear_textured_concentrated_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_structured_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_structured_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_bilinear_textured_stretched_concentrated_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_bilinear_textured_stretched_concentrated_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_stretched_structured_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_stretched_structured_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_stretched_structured_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_stretched_structured_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_stretched_structured_coarse_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_stretched_structured_coarse_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_stretched_structured_network_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_stretched_structured_network_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_stretched_structured_network_white_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_stretched_structured_network_white_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_stretched_structured_network_white_threshold_clip_sharpness_complexity_quiet_spread_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_stretched_structured_network_white_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "quiet_spread_weight": 10.0,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_filled_stretched_structured_network_white_threshold_clip_sharpness_complexity_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_filled_stretched_structured_network_white_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "quiet_weight": 0.0,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_filled_stretched_structured_network_white_threshold_clip_sharpness_complexity_ema_start_plage_gradient_bipole_grid": {
        **_FILLED_BIPOLE,
    },
    "edge_instrument_filled_stretched_structured_network_white_threshold_clip_sharpness_complexity_ema_start_plage_gradient_bipole_spot_grid": {
        **_FILLED_BIPOLE,
        "spot_weight": 10.0,
    },
    "edge_instrument_filled_stretched_structured_network_white_threshold_clip_sharpness_complexity_ema_start_plage_gradient_bipole_spot_weak_grid": {
        **_FILLED_BIPOLE,
        "spot_weight": 3.0,
    },
    "edge_instrument_filled_wide_spots_stretched_structured_network_white_threshold_clip_sharpness_complexity_ema_start_plage_gradient_bipole_spot_weak_grid": {
        **_FILLED_BIPOLE,
        "arch": WIDE_SPOTS_ARCH,
        "spot_weight": 3.0,
    },
    "edge_instrument_filled_stretched_structured_network_white_threshold_clip_sharpness_complexity_ema_start_plage_gradient_bipole_spot_late_grid": {
        **_FILLED_BIPOLE,
        "spot_weight": 10.0,
        "spot_start": 200,
    },
    "edge_instrument_filled_wide_spots_stretched_structured_network_white_threshold_clip_sharpness_complexity_ema_start_plage_gradient_bipole_spot_late_grid": {
        **_FILLED_BIPOLE,
        "arch": WIDE_SPOTS_ARCH,
        "spot_weight": 10.0,
        "spot_start": 200,
    },
    "edge_instrument_filled_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_grid": {
        **_FILLED_BIPOLE,
        "complexity_spread_weight": 3.0,
        "complexity_spread_start": 200,
    },
    "edge_instrument_filled_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_grid": {
        **_LATE_SPREAD_SPOT,
    },
    "edge_instrument_filled_umbral_spots_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_grid": {
        **_LATE_SPREAD_SPOT,
        "arch": UMBRAL_SPOTS_ARCH,
    },
    "edge_instrument_filled_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
    },
    "edge_instrument_filled_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_strong_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
        "spot_weight": 30.0,
    },
    "edge_instrument_filled_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_sector_late_grid": {
        **_LATE_SECTOR,
        "spot_start": 0,
    },
    "edge_instrument_filled_mild_stretch_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_grid": {
        **_LATE_SPREAD_SPOT,
        "arch": MILD_STRETCH_ARCH,
    },
    "edge_instrument_filled_mild_stretch_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
        "arch": MILD_STRETCH_ARCH,
    },
    "edge_instrument_filled_mild_stretch_stretched_noise_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
        "arch": MILD_STRETCH_STRETCHED_NOISE_ARCH,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
        "arch": MILD_STRETCH_PATCH_CONTRAST_ARCH,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_wide_spots_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
        "arch": PATCH_CONTRAST_WIDE_SPOTS_ARCH,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
        "arch": PATCH_CONTRAST_FAST_SPOTS_ARCH,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_penumbrae_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
        "arch": PENUMBRAE_ARCH,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_wide_clouds_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
        "arch": WIDE_CLOUDS_ARCH,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_texture_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
        "arch": CAPPED_TEXTURE_ARCH,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_scaled_texture_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
        "arch": SCALED_TEXTURE_ARCH,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_scaled_texture_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
        "arch": CAPPED_SCALED_TEXTURE_ARCH,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_fast_scaled_texture_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
        "arch": CAPPED_FAST_SCALED_TEXTURE_ARCH,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_fast_scaled_texture_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid_spectrum": {
        **_LATE_SECTOR,
        "arch": CAPPED_FAST_SCALED_TEXTURE_ARCH,
        "spectrum_weight": 10.0,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_fast_scaled_texture_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid_spectrum_spread10": {
        **_LATE_SECTOR,
        "arch": CAPPED_FAST_SCALED_TEXTURE_ARCH,
        "spectrum_weight": 10.0,
        "complexity_spread_weight": 10.0,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_fast_scaled_texture_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid_spectrum_sharp_masks": {
        **_LATE_SECTOR,
        "arch": CAPPED_FAST_SCALED_TEXTURE_ARCH,
        "spectrum_weight": 10.0,
        "matched_sharpness": 200.0,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_fast_scaled_texture_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid_spectrum_spot_size": {
        **_LATE_SECTOR,
        "arch": CAPPED_FAST_SCALED_TEXTURE_ARCH,
        "spectrum_weight": 10.0,
        "spot_size_weight": 10.0,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_fast_scaled_texture_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid_spectrum_round_spot_size": {
        **_LATE_SECTOR,
        "arch": CAPPED_FAST_SCALED_TEXTURE_ARCH,
        "spectrum_weight": 10.0,
        "round_spot_size_weight": 10.0,
    },
    "edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_capped_coarse_texture_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
        "arch": CAPPED_COARSE_TEXTURE_ARCH,
    },
    "edge_instrument_filled_mild_stretch_stretched_half_noise_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid": {
        **_LATE_SECTOR,
        "arch": MILD_STRETCH_STRETCHED_NOISE_ARCH.replace("_stretched_noise_", "_stretched_half_noise_"),
    },
    "edge_instrument_filled_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_isotropy_grid": {
        **_LATE_SPREAD_SPOT,
        "isotropy_weight": 10.0,
    },
    "edge_instrument_filled_stretched_structured_network_white_threshold_clip_sharpness_strong_complexity_ema_start_plage_gradient_bipole_grid": {
        "arch": "resize_conv_small_edge_instrument_filled_stretched_structured_network_white_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "complexity_weight": 10.0,
        "quiet_weight": 0.0,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "bipole_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_filled_stretched_structured_network_white_threshold_clip_sharpness_complexity_ema_start_plage_coherence_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_filled_stretched_structured_network_white_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "quiet_weight": 0.0,
        "plage_weight": 10.0,
        "coherence_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_patch_gain_stretched_structured_network_white_threshold_clip_sharpness_complexity_quiet_spread_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_patch_gain_stretched_structured_network_white_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "quiet_spread_weight": 10.0,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_bilinear_textured_stretched_concentrated_network_white_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_bilinear_textured_stretched_concentrated_network_white_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_stretched_structured_network_white_threshold_clip_sharpness_complexity_quiet30_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_stretched_structured_network_white_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "quiet_weight": 30.0,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_all_bilinear_textured_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_all_bilinear_textured_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
    },
    "edge_instrument_fast_gain_all_bilinear_diffuse_threshold_clip_sharpness_complexity_quiet_ema_start_plage_gradient_grid_spectrum": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_all_bilinear_diffuse_threshold_clip_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
        "grid_weight": 10.0,
        "spectrum_weight": 10.0,
    },
    "edge_instrument_fast_gain_smooth_blocks_diffuse_threshold_sharpness_complexity_quiet_ema_start_plage_gradient": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_smooth_blocks_diffuse_threshold_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
        "gradient_weight": 10.0,
    },
    "edge_instrument_fast_gain_coarse_diffuse_threshold_sharpness_complexity_quiet_ema_start_plage": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_coarse_diffuse_threshold_minibatch",
        **_MATCHED_EMA,
        "plage_weight": 10.0,
    },
    "edge_instrument_fast_gain_threshold_sharpness_complexity_quiet_balance": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_threshold_minibatch",
        "sharpness_weight": 1.0,
        "complexity_weight": 1.0,
        "quiet_weight": 10.0,
        "balance_weight": 1.0,
    },
    "edge_instrument_fast_gain_bilinear_threshold_sharpness_complexity_quiet_balance": {
        "arch": "resize_conv_small_edge_instrument_fast_gain_bilinear_threshold_minibatch",
        "sharpness_weight": 1.0,
        "complexity_weight": 1.0,
        "quiet_weight": 10.0,
        "balance_weight": 1.0,
    },
    "edge_instrument_threshold_physics": {"arch": "resize_conv_small_edge_instrument_threshold_physics"},
    "full_instrument_threshold_minibatch": {"arch": "resize_conv_full_edge_instrument_threshold_minibatch"},
}
"""candidate -> the ``config.model`` fields it changes."""

COLUMNS = (
    ("realism_score", "score"),
    ("realism/ks_noise_width_gauss", "KS noise"),
    ("realism/ks_spectral_slope", "KS slope"),
    ("realism/ks_mean_gradient_gauss_per_pixel", "KS grad"),
    ("realism/strong_pixel_ratio", ">500G ratio"),
    ("realism/peak_ratio_max", "peak max"),
    ("realism/r_median_ratio", "R ratio"),
    ("ks_mean", "phys KS mean"),
    ("frechet", "Frechet"),
    ("realism/ks_border_excess_gauss", "KS border"),
    ("realism/ks_umbra_strength_gauss", "KS umbra"),
    ("realism/ks_umbra_diameter_px", "KS umbra size"),
    ("realism/saturated_share_generated", "saturated share"),
    ("realism/grid_contrast_generated", "grid contrast"),
    ("realism/ks_grid_contrast", "KS grid"),
    ("realism/orientation_contrast_generated", "orientation contrast"),
    ("realism/ks_orientation_contrast", "KS orientation"),
)
"""(figure, column title) of the printed table."""


def candidate_config(name: str, data_dir: pathlib.Path, steps: int, seed: int, eval_every: int, num: int):
    """The demo GAN config with `PLAIN_MODEL` and candidate `name`'s model fields, `steps` steps and `seed`."""
    import ml_collections

    from solarjax.configs import gan as gan_configs

    if name not in CANDIDATES:
        raise ValueError(f"unknown candidate {name!r}; choose from {sorted(CANDIDATES)}")
    config = gan_configs.get_config("synthetic")
    config.model = ml_collections.ConfigDict({**gan_configs.PLAIN_MODEL, **CANDIDATES[name]})
    config.seed = seed
    config.total_steps = steps
    config.data.data_dir = str(data_dir)
    config.eval_every = eval_every
    config.sample_every = steps
    config.checkpoint_every = eval_every
    config.log_every = max(steps // 20, 1)
    config.quality.num_samples = num
    config.quality.num_reference = num
    return config


def subset(summary, index: np.ndarray):
    """An `ImageSummary` of the patches `index` (the mean spectrum is kept whole)."""
    from solarjax.train import quality

    return quality.ImageSummary(
        {k: v[index] for k, v in summary.quantities.items()},
        summary.features[index],
        {k: v[index] for k, v in summary.diagnostics.items()},
        summary.wavenumbers,
        summary.mean_power,
    )


def bootstrap_intervals(generated, reference, resamples: int, seed: int) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of every `quality_figures` figure, both sets resampled with replacement."""
    from solarjax.train import quality

    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        figures = quality.quality_figures(
            subset(generated, rng.integers(0, generated.count, generated.count)),
            subset(reference, rng.integers(0, reference.count, reference.count)),
        )
        for key, value in figures.items():
            draws.setdefault(key, []).append(value)
    return {key: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))) for key, v in draws.items()}


def score_run(run_dir: pathlib.Path, reference, num: int, resamples: int, seed: int, step="best") -> dict:
    """Figures and intervals of checkpoint `step` ('best', 'latest' or a number) of `run_dir` against the
    `reference` summary."""
    from solarjax import gan
    from solarjax.train import quality

    generator = gan.load(run_dir, step=step)
    encoder = quality.random_feature_encoder(0)
    z = generator.sample_latents(num, seed=seed)
    images = np.concatenate([np.asarray(generator.generate(z[i : i + 250])) for i in range(0, num, 250)])
    generated = quality.summarise([images[i : i + 250] for i in range(0, num, 250)], encoder)
    figures = quality.quality_figures(generated, reference)
    intervals = bootstrap_intervals(generated, reference, resamples, seed)
    medians = {name: float(np.nanmedian(values)) for name, values in generated.diagnostics.items()}
    return {
        "best_step": generator.step,
        "figures": figures,
        "intervals": intervals,
        "generated_medians": medians,
        "images_per_second": _train_speed(run_dir),
    }


def done_marker(out: pathlib.Path, name: str, seed: int) -> pathlib.Path:
    """``OUT/<name>/seed<S>.done``, beside the run folder (a name as long as the candidate's fits no longer
    one): written (holding the run folder) once run `name`/`seed` has trained, so another process can use the GAN
    while the remaining runs train."""
    return out / name / f"seed{seed}.done"


def _train_speed(run_dir: pathlib.Path) -> float:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    speeds = [row["images_per_second"] for row in rows if "images_per_second" in row]
    return float(np.median(speeds)) if speeds else math.nan


def _cell(result: dict, key: str) -> str:
    value = result["figures"].get(key, math.nan)
    low, high = result["intervals"].get(key, (math.nan, math.nan))
    if key in ("frechet", "realism/peak_ratio_max"):
        return f"{value:.3g}"
    return f"{value:.3g} [{low:.3g}, {high:.3g}]"


def markdown_table(results: dict) -> str:
    """One row per run: the `COLUMNS` figures with their 95% intervals."""
    header = "| run | best step | " + " | ".join(title for _, title in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 2)]
    for run, result in results.items():
        lines.append(f"| {run} | {result['best_step']} | " + " | ".join(_cell(result, k) for k, _ in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-dir", type=pathlib.Path, required=True, help="TFDS folder holding sharp_patches/synthetic"
    )
    parser.add_argument("--out", type=pathlib.Path, required=True, help="folder of the runs and the table")
    parser.add_argument(
        "--candidates",
        nargs="+",
        default=["baseline", "edge", "edge_noise"],
        help=f"candidates to train (from {sorted(CANDIDATES)}; default baseline edge edge_noise)",
    )
    parser.add_argument("--steps", type=int, default=400, help="train steps per run (default 400)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[23], help="training seeds (default 23)")
    parser.add_argument("--eval-every", type=int, default=200, help="checkpoint evaluation interval (default 200)")
    parser.add_argument("--num", type=int, default=500, help="patches per set when scoring (default 500)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default 200)")
    parser.add_argument("--score-only", action="store_true", help="score existing runs, train nothing")
    parser.add_argument(
        "--step", default="best", help="checkpoint scored: 'best' (by the realism score), 'latest' or a step"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.candidates if name not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidate(s) {', '.join(unknown)}; choose from {', '.join(sorted(CANDIDATES))}")
    if not (args.data_dir / "sharp_patches" / "synthetic").is_dir():
        parser.error(f"--data-dir {args.data_dir}: no sharp_patches/synthetic dataset there")

    from experiments import common
    from solarjax.train import gan as gan_train
    from solarjax.train import quality

    args.out.mkdir(parents=True, exist_ok=True)
    validation = common.load_patches(args.data_dir, "synthetic", "validation", limit=args.num, seed=0)["image"]
    encoder = quality.random_feature_encoder(0)
    reference = quality.summarise([validation[i : i + 250] for i in range(0, len(validation), 250)], encoder)
    results = {}
    for name in args.candidates:
        for seed in args.seeds:
            run_dir = args.out / name / f"seed{seed}"
            started = time.perf_counter()
            if not args.score_only:
                gan_train.train_and_evaluate(
                    candidate_config(name, args.data_dir, args.steps, seed, args.eval_every, args.num), run_dir
                )
                done_marker(args.out, name, seed).write_text(f"{run_dir.resolve()}\n")
            step = int(args.step) if args.step.isdigit() else args.step
            result = score_run(run_dir, reference, args.num, args.bootstrap, seed=1000 + seed, step=step)
            result.update(
                candidate=name,
                seed=seed,
                steps=args.steps,
                seconds=time.perf_counter() - started,
                model=CANDIDATES[name],
            )
            results[f"{name}/seed{seed}"] = result
            (args.out / f"candidates_{args.step}.json").write_text(json.dumps(results, indent=1))
    table = markdown_table(results)
    (args.out / f"candidates_{args.step}.md").write_text(
        f"{args.steps} steps, seeds {args.seeds}, {args.num} generated vs {len(validation)} validation patches, "
        f"95% bootstrap intervals ({args.bootstrap} resamples)\n\n{table}\n"
    )
    print(table)
    return results


if __name__ == "__main__":
    main()
