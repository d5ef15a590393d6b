"""The packaged config `solarjax.configs.simsiam_sharp_full` (its fields, commands and measurements are documented there);
this path keeps `--config experiments/configs/simsiam_sharp_full.py` and the experiment scripts working."""
from solarjax.configs.simsiam_sharp_full import get_config  # noqa: F401
