"""Installed editable into the suite's venv by py_envopts_SUITE: found through a
.pth file that points at this source directory."""
WHERE = __file__
