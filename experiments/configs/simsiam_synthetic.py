"""The packaged config `solarjax.configs.simsiam_synthetic` (its fields, commands and measurements are documented there);
this path keeps `--config experiments/configs/simsiam_synthetic.py` and the experiment scripts working."""
from solarjax.configs.simsiam_synthetic import get_config  # noqa: F401
