"""Benchmarks: each module ``bench/bench_<name>.py`` has ``main(argv) -> int``."""
