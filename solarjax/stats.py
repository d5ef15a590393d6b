"""Small statistics shared by training monitors and retrieval evaluation."""

from __future__ import annotations

import math

import numpy as np
import scipy.stats


def correlations(query_values: np.ndarray, match_values: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation over the pairs where both values are finite.

    Args:
      query_values, match_values: [Q] floats (NaN: undefined or no match).

    Returns:
      {'pearson', 'spearman', 'pairs'}; correlations are NaN with fewer than 3 pairs or a
      constant side.
    """
    query_values = np.asarray(query_values, np.float64)
    match_values = np.asarray(match_values, np.float64)
    finite = np.isfinite(query_values) & np.isfinite(match_values)
    x, y = query_values[finite], match_values[finite]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"pearson": math.nan, "spearman": math.nan, "pairs": int(len(x))}
    return {
        "pearson": float(scipy.stats.pearsonr(x, y).statistic),
        "spearman": float(scipy.stats.spearmanr(x, y).statistic),
        "pairs": int(len(x)),
    }
