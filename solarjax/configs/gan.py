r"""The GAN trainer's config (`solarjax.train.gan.train_and_evaluate`): one base config and its variants.

``get_config(variant)``, ml_collections style (``--config gan:paper``, or the old names ``gan_synthetic``,
``gan_paper``, ``gan_sharp_full``):

  synthetic   (default) the demo's GAN on the embedded synthetic active regions, on CPU (`DEFAULT_MODEL`): a
              structured generator (round flux concentrations, textured plage, the quiet network, and noise that
              fills the data's measured quiet width) with an output clipped at 1000 G like the data, against the
              paper's discriminator with batch statistics; the band sharpness, Schrijver R, weak-field coherence,
              per-patch gradient and bipole geometry of each generated batch drawn toward the real batch's (and
              the strong field's extent, the distribution of R and the small scales' power along the axes and the
              diagonals, off to step 200, full from step 400), and its
              neighbour differences kept alike at every phase of the pixel grid; samples from an EMA of the
              weights; the paper's loss and optimiser (Adam 5e-4, b1 = 0.5); checkpoints ranked by the realism
              score; 6,000 steps of batch 32.
  cme_synthetic  the CME demo's GAN (`PLAIN_MODEL`: 'resize_conv_small' with nothing added, the default before
              issue 23: the noise calibration and the matched statistics are a magnetogram's).
  paper       the paper's GAN ('simple': three stride-2 3x3 transposed convolutions, 1,510,081 generator
              parameters, and the paper's discriminator), checkpoints ranked by the Frechet distance: the
              fidelity baseline.
  sharp_full  the paper's GAN at full scale on the real SHARP Br patches (``data.builder_config = 'fits'``):
              81 epochs of the paper's ~44,000 patches at batch 32 (1,375 steps each; the authors used the
              epoch-81 checkpoint), Adam b1 = 0.9, quality on 10,000 against 10,000 patches; on accelerators.
              Its model section is the paper's two fields only, so its checkpoint fingerprint is unchanged.

Commands (build the data once, then train; a killed run resumes from its work directory)::

    solarjax data build --config synthetic --data-dir ~/tensorflow_datasets
    solarjax train gan --config gan:synthetic --workdir runs/gan_synthetic --config.batch_size=64

    solarjax data download ~/sharp_fits --start 2010-05-01T00:00 --end 2024-01-01T00:00
    solarjax data build --config fits --manual-dir ~/sharp_fits --data-dir ~/tensorflow_datasets
    solarjax train gan --config gan:sharp_full --workdir runs/gan_sharp_full

Multi-host: run the same program on every host, calling ``jax.distributed.initialize()`` first; the global
batch is split over the devices of all hosts, each host reading its own share of the data.

Why these choices (structured generator, b1 = 0.5, ``ema_decay = 0.99`` from step 100,
``canonical_polarity = False``) and what each variant measured: experiments/README.md, "GAN configs: measurements
behind the defaults".

Fields: seed (parameters, latents, data order); model.arch ('simple' | 'resize_conv' | 'resize_conv_small', or the
issue-23 candidates 'resize_conv_small_edge' | '..._edge_noise' | '..._bilinear_noise', and
'..._edge_noise_minibatch' | '..._bilinear_noise_minibatch' with a discriminator that sees its batch's polarity
balance: `solarjax.models.gan`),
model.latent_dim, model.loss ('non_saturating' | 'hinge'), model.ema_decay (0 = no EMA), model.ema_start (steps
before the EMA averages; 0 if unset) and, where set, model.r1_gamma, model.<term>_weight for the matching terms
sharpness, complexity, complexity_spread, quiet, quiet_spread, balance, plage, coherence, gradient, bipole, umbra,
spot, spot_size, round_spot_size, border, grid, spectrum, signal_spectrum, isotropy and sector (0 = none;
`solarjax.train.gan.MATCHING_TERMS`) and model.<term>_start (steps a term is off; it then ramps to its weight at
twice that: `solarjax.train.gan.matching_starts`) and model.matched_sharpness (the mask sharpness of the quantities
the R, bipole and balance terms read; unset: the smooth quantities' default) define the model
(their hash is the checkpoint fingerprint); conv_impl ('auto' = 'matmul' on CPU, 'xla' elsewhere: same numbers, see
`solarjax.models.gan`);
compute_dtype ('float32' | 'bfloat16': bf16 compute, f32 parameters);
optimizer (Adam); batch_size (global, all devices and hosts); total_steps; log_every (metrics.jsonl),
checkpoint_every, keep_checkpoints (last K, plus the best), sample_every (PNG grid of num_grid_samples
fixed latents), eval_every (quality figures, 0 = never; also at the last step); quality.* (sample sizes
and ``best_metric``, which ranks checkpoints); data.* (the `sharp_patches` TFDS dataset read by
`solarjax.data.pipeline`; ``canonical_polarity`` makes every leading polarity positive).
"""

import ml_collections

VARIANTS = ("synthetic", "paper", "sharp_full", "cme_synthetic")
"""The arguments `get_config` takes (the first is the default)."""

PLAIN_MODEL = {"arch": "resize_conv_small", "latent_dim": 100, "loss": "non_saturating", "ema_decay": 0.0}
"""The resize-convolution generator against the paper's discriminator and loss, nothing added: the default until
issue 23, the CME demo's GAN, and the base of every issue-23 candidate (experiments/gan_candidates.py)."""

DEFAULT_MODEL = {
    **PLAIN_MODEL,
    "arch": "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_stretched_structured_network_white_threshold_clip_minibatch",
    "sharpness_weight": 1.0,
    "complexity_weight": 1.0,
    "complexity_spread_weight": 3.0,
    "complexity_spread_start": 200,
    "quiet_weight": 0.0,
    "plage_weight": 10.0,
    "gradient_weight": 10.0,
    "bipole_weight": 10.0,
    "spot_weight": 10.0,
    "spot_start": 200,
    "grid_weight": 10.0,
    "sector_weight": 3.0,
    "sector_start": 200,
    "ema_decay": 0.99,
    "ema_start": 100,
}
"""The magnetogram default (issue 23's candidate
``edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid``,
FS, since session 31):
a field drawn from z without convolutions: round Gaussian flux concentrations (umbrae up to the clip, their peaks
learned 5 times faster than the other weights, plage clouds tens of pixels across) and a log-normal clump texture
whose contrast each patch sets from z, stretched per patch along one pixel axis as resizing a SHARP box does (at most 2.5 times, the data's 90th percentile), the quiet Sun's
mixed-polarity network, and white instrument noise that fills what the signal leaves of the training data's measured
quiet-pixel width (no learned gain, so a discriminator cannot buy small-scale power with noise); an output tanh
stretched by 1.1 and clipped at +-1000 G as the data are; a discriminator that sees its batch's statistics; the band
sharpness, Schrijver R, weak-field coherence, per-patch mean gradient and the bipole's polarity separation and
leading-polarity offset matched to the real batch, and from step 200 (ramped in over 200 steps; experiments/README.md,
sessions 23-25) the strong field's extent per patch, the distribution of R and the power along the axes and the
diagonals at wavelengths 2-16 px; no phase of the pixel grid preferred by the neighbour differences; samples drawn
from an average of the generator's weights (decay 0.99) that starts after 100 steps.
The session-29 default (PC: the same with the spots' peaks learned at the common rate) drew umbrae too small (KS of
the largest umbra's diameter 0.21 against FS's 0.16) and was told from the data by a logistic classifier more often
in its full demo (0.93 / 0.91 against 0.86 / 0.85 at two latent seeds) and in its candidate runs (0.89 / 0.87
against 0.88 / 0.81; experiments/README.md, sessions 30-31).
The session-26 default (MSEC: the same with one texture contrast shared by every patch) was told from the data by a
logistic classifier more often in its full demo and in both candidate runs (experiments/README.md, session 29).
The session-23 default (the same without the stretch bound and the sector term) drew features a third too
stretched (orientation missed in its candidate runs), and its full demo missed the slope and grid-contrast targets
and was told from the data more often (experiments/README.md, session 26).
The upsampling-convolution default of sessions 15-21 (``'..._fast_gain_diffuse_threshold_clip_minibatch'``) met
the numeric targets but was told from the data by a classifier every time (experiments/README.md, "Issue 23")."""

SHARP_FULL_STEPS_PER_EPOCH = 44_000 // 32
"""Steps per epoch of the paper's ~44,000 SHARP patches at batch 32."""


def get_config(variant: str = "synthetic") -> ml_collections.ConfigDict:
    """The GAN config of `variant` (one of `VARIANTS`; '' is the default)."""
    variant = variant or VARIANTS[0]
    if variant not in VARIANTS:
        raise ValueError(f"unknown GAN config variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    config = ml_collections.ConfigDict()
    config.seed = 23
    config.model = ml_collections.ConfigDict(DEFAULT_MODEL)
    config.conv_impl = "auto"
    config.compute_dtype = "float32"
    config.optimizer = ml_collections.ConfigDict({"learning_rate": 5e-4, "b1": 0.5, "b2": 0.999})
    config.batch_size = 32
    config.total_steps = 6000
    config.log_every = 50
    config.checkpoint_every = 500
    config.keep_checkpoints = 3
    config.sample_every = 500
    config.num_grid_samples = 64
    config.eval_every = 2000
    config.quality = ml_collections.ConfigDict(
        {
            "num_samples": 2000,
            "num_reference": 2000,
            "batch_size": 250,
            "encoder_seed": 0,
            "best_metric": "realism_score",
        }
    )
    config.data = ml_collections.ConfigDict(
        {
            "data_dir": "~/tensorflow_datasets",
            "builder_config": "synthetic",
            "split": "train",
            "canonical_polarity": False,
        }
    )
    if variant == "paper":
        config.model = ml_collections.ConfigDict({**PLAIN_MODEL, "arch": "simple"})
        config.quality.best_metric = "frechet"
    elif variant == "cme_synthetic":
        config.model = ml_collections.ConfigDict(PLAIN_MODEL)
    elif variant == "sharp_full":
        epoch = SHARP_FULL_STEPS_PER_EPOCH
        config.model = ml_collections.ConfigDict({"arch": "simple", "latent_dim": 100})
        config.optimizer.b1 = 0.9
        config.total_steps = 81 * epoch
        config.log_every = 100
        config.checkpoint_every = epoch
        config.sample_every = 5 * epoch
        config.eval_every = 5 * epoch
        config.quality = ml_collections.ConfigDict(
            {
                "num_samples": 10_000,
                "num_reference": 10_000,
                "batch_size": 500,
                "encoder_seed": 0,
                "best_metric": "frechet",
            }
        )
        config.data = ml_collections.ConfigDict(
            {"data_dir": "~/tensorflow_datasets", "builder_config": "fits", "split": "train"}
        )
    return config
