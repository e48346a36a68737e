"""graphdiff's performance benchmarks: ``python -m benchmarks run [--quick] [--only NAME ...]``.

Not part of the installed package. See ``docs/performance.md`` for what is measured and the latest numbers.
"""
