"""The handwriting benchmark (issue 11): how well a model reads digits that are not MNIST's scans.

Each set is made from a seed by its own module (mnist_test, drawn, other_writers, photos,
thickness), as the bytes a person would send to /api/predict; the inference service's own
preprocessing (service.py) turns each upload into the 28×28 input the model sees; cache.py keeps
those inputs so every run scores the same images; scoring.py runs a model over them and
report.py prints the table and writes docs/handwriting.md. `bench/bench_handwriting.py` is the
entry point (`make bench-handwriting`).
"""

from . import cache, drawn, mnist_test, other_writers, photos, thick, thin

# The table's rows, in order. Each module: NAME, VERSION, DEFAULT_COUNT, DESCRIPTION, generate().
SETS = (mnist_test, drawn, other_writers, photos, thick, thin)
SEEDS = {module.NAME: 1100 + n for n, module in enumerate(SETS)}  # issue 11, one per set


def each_prepared_set(source, count: int | None, cache_dir, preprocessing: int,
                      refresh: bool = False):
    """Each of SETS with its own seed, from the cache or made now (cache.prepare), in order: at
    most `count` images a set (None: each set's full size)."""
    for module in SETS:
        size = module.DEFAULT_COUNT if count is None else min(count, module.DEFAULT_COUNT)
        yield cache.prepare(module, source, size, SEEDS[module.NAME], cache_dir,
                            refresh=refresh, preprocessing=preprocessing)
