"""fastopt benchmarks: ``python -m benchmarks --help``."""
