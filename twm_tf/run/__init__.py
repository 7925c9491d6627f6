"""Run infrastructure: the run directory and its lock, checkpoints, the loop's state, restoring a
run, progress, metrics, sweeps."""
