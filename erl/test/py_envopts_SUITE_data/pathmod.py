"""Importable only when py_envopts_SUITE's data directory is on python_path."""
NAME = "pathmod"
