"""Benchmarks (`make bench`): each bench_*.py module has main() and prints ratios against a
baseline measured in the same process. `python -m benchmarks NAME` runs one."""
