"""Installed into the suite's venv by py_envopts_SUITE: importable only when the
venv is active."""
MAGIC = "from the venv"
