"""Benchmarks of engagehook beside the framework limits; run them with ``python -m bench.run``."""
