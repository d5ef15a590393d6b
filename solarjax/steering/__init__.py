"""Latent steering: physical directions, conditional edits, differentiable targeting, inversion.

    from solarjax import steering
    generator = steering.as_generator(gan)                    # (apply_fn, params, fingerprint)
    directions = steering.fit_directions(generator)           # one SVM normal per quantity
    z = steering.sample_latents(16, generator.latent_dim, seed=0)
    more_flux = steering.edit(z, directions.normal("tuf"), alphas=[0, 1, 2, 3])          # [16, 4, D]
    r_only = directions.direction("r_value", hold=("tuf", "lead_polarity"))               # conditional
    paths = steering.steer_latents("local", generator, directions, z, "tuf", hold=("psep",),
                                   alphas=[-2, 0, 2])     # "paper" | "piecewise" | "local": [16, 3, D]
    directions.diagnosis["quantities"]["tuf"]["structure"]  # why a global boundary fails
    result = steering.steer_to(generator, z, {"tuf": ("rel", 0.5)}, hold=["psep"])       # +50% TUF
    inverted = steering.invert(real_patches, generator)                                   # real -> z

`evaluate` (monotonicity, leakage, targeting success, figures) is imported on first use:
``from solarjax.steering import evaluate``.
"""

from solarjax.steering.directions import (
    Directions,
    DirectionsFileError,
    GeneratorMismatchError,
    LatentGenerator,
    as_generator,
    fit_directions,
    latent_quantities,
    load_directions,
    map_generated,
    sample_latents,
)
from solarjax.steering.edit import conditional, edit, project_out
from solarjax.steering.families import METHODS, steer_along, steer_latents, steer_traversal
from solarjax.steering.invert import InversionResult, invert, invert_files, masked_mse
from solarjax.steering.local import local_path, local_traversal
from solarjax.steering.target import SteeringResult, parse_target, prior_scales, steer_to

__all__ = [
    "Directions",
    "DirectionsFileError",
    "GeneratorMismatchError",
    "InversionResult",
    "LatentGenerator",
    "METHODS",
    "SteeringResult",
    "as_generator",
    "conditional",
    "edit",
    "fit_directions",
    "invert",
    "invert_files",
    "latent_quantities",
    "local_path",
    "local_traversal",
    "load_directions",
    "map_generated",
    "masked_mse",
    "parse_target",
    "prior_scales",
    "project_out",
    "sample_latents",
    "steer_along",
    "steer_latents",
    "steer_to",
    "steer_traversal",
]
