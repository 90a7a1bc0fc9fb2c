"""The models: each has ``params`` and ``loss(X, y=None)``, so the Solver can train it."""
