# Work functions for py_os_SUITE's multiprocessing case: they must live in an
# importable module (not in a pyport environment) so 'spawn' children find them.
import multiprocessing
import os


def square_with_pid(x):
    return (x * x, os.getpid())


def pool_map(values):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.map(square_with_pid, values)
    return [r for r, _ in results], sorted({pid for _, pid in results}), os.getpid()
