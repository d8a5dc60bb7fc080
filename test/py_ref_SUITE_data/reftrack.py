"""Object lifetime probes for py_ref_SUITE: track(obj, tag) records `tag` in the
module-level list `freed` when `obj` is garbage collected (one list per OS
process, so it outlives the environment that made the object)."""
import weakref

freed = []


class Box:
    def __init__(self, value):
        self.value = value

    def add(self, n):
        self.value += n
        return self.value

    def fail(self):
        raise RuntimeError("box failed")


def track(obj, tag):
    weakref.finalize(obj, freed.append, tag)
    return obj


def tracked_box(value, tag):
    return track(Box(value), tag)


def was_freed(tag):
    return tag in freed
