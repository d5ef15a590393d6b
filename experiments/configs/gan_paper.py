"""The packaged config `solarjax.configs.gan_paper` (its fields, commands and measurements are documented there);
this path keeps `--config experiments/configs/gan_paper.py` and the experiment scripts working."""
from solarjax.configs.gan_paper import get_config  # noqa: F401
