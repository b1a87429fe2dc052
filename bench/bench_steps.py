"""Step functions for bench/run_bench.py."""

import time


def noop(x=None):
    return x


def sleep(seconds: float = 0.5) -> float:
    time.sleep(seconds)
    return seconds
