"""Scripts that reproduce the paper's figures from a `solarjax demo`-like work directory (see README.md)."""
