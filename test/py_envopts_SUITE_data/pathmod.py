"""Importable only when py_envopts_SUITE's data directory is on python_path (the
python_path option, pool options and context_opts cases import it)."""
NAME = "pathmod"
