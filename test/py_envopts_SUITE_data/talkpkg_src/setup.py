# A package py_envopts_SUITE installs into a venv with pip (no network, no wheel:
# `pip install --no-index --no-use-pep517`), importable only when the venv is active.
from setuptools import setup

setup(name="talkpkg", version="1.0", packages=["talkpkg"])
