"""flax.linen models: `gan` (generators, discriminators), `resnet` and `simsiam` (encoders)."""
