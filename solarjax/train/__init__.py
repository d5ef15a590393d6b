"""Training: pure train steps, loops, sharding, checkpoints (orbax), monitoring, quality figures."""
