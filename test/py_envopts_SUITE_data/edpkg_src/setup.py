# A package py_envopts_SUITE installs into a venv in editable mode (`pip install
# -e`), so it is found only through the venv's .pth file.
from setuptools import setup

setup(name="edmod", version="1.0", packages=["edmod"])
