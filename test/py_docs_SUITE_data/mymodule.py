"""Stands in for the `mymodule` of the README and docs/async.md examples
(py_docs_SUITE puts this directory on python_path): a counter and a tokenizer."""


def counter(n):
    for i in range(n):
        yield i


def tokens(prompt):
    for word in prompt.split():
        yield word
