# A package py_envopts_SUITE installs into a venv with pip (no network, no wheel).
from setuptools import setup

setup(name="talkpkg", version="1.0", packages=["talkpkg"])
