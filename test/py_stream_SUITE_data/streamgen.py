"""Generators for py_stream_SUITE, importable from every context of the default
pool (the suite puts this directory on python_path): a counter, its async twin,
and a tokenizer."""
import asyncio


def counter(n, start=0):
    for i in range(start, start + n):
        yield i


async def acounter(n, start=0):
    for i in range(start, start + n):
        await asyncio.sleep(0)
        yield i


def tokens(prompt):
    for word in prompt.split():
        yield word
