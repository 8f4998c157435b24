"""Helpers for running digits on this machine: `scripts.launcher` starts and stops the services'
real commands for `make run`, the tests and the benchmarks."""
