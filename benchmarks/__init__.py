"""Speed and quality benchmarks of solarjax, each against a reference baseline.

Run them with `python -m benchmarks.run [NAME ...] [--out FILE]`; see benchmarks/README.md.
"""
