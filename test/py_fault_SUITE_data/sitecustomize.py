# Crash-loop switch for py_fault_SUITE: while the file named by
# PYPORT_TEST_CRASH_FLAG exists, every new pyport OS process exits with status 3
# one second after Python started (after it said ready).
import os
import threading
import time

PYPORT_TEST = True

_flag = os.environ.get("PYPORT_TEST_CRASH_FLAG")


def _die_soon():
    time.sleep(1.0)
    os._exit(3)


if _flag and os.path.exists(_flag):
    threading.Thread(target=_die_soon, daemon=True).start()
