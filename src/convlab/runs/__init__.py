"""A training run's files on disk: below the Solver, knowing no model, recipe or kernel.

Modules
-------
files               atomic writes: a file is the old one or the new one, never half of either
checkpoint          the Solver's checkpoint file: its format, the Solver's state in it, the latest one
model_file          ``model.npz``: a trained model's arrays and recipe, written, checked and read
history             ``history.json``: a run's per-epoch record and final results
folder              a run's output folder: fingerprint, manifest, lock, and whether it may be used
"""
