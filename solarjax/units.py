"""The field scale of every image in solarjax: a patch holds s = Br / GAUSS_PER_UNIT (dimensionless)."""

GAUSS_PER_UNIT = 1000.0
"""Br in G of s = 1: the preprocessing divides by it (and clips s to [-1, 1]); physics and plots multiply."""

FIELD_RANGE_GAUSS = (-GAUSS_PER_UNIT, GAUSS_PER_UNIT)
"""The range s in [-1, 1] covers, in G (the colour scale of every magnetogram plot)."""
