"""A tiny picklable model for py_seed_SUITE: the "Stateful Computation" example
of the Context Affinity guide unpickles one from model.pkl and calls predict()."""


class Model:
    def predict(self, rows):
        return [sum(r) for r in rows]
