"""The packaged config `solarjax.configs.gan_synthetic` (its fields, commands and measurements are documented there);
this path keeps `--config experiments/configs/gan_synthetic.py` and the experiment scripts working."""
from solarjax.configs.gan_synthetic import get_config  # noqa: F401
