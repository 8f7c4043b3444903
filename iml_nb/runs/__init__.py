"""Running notebooks at scale: one parameterised notebook run with its folder (runner), resumable batches over a grid, locally or on
SLURM (batch, slurm), and the sweep helper the sweep notebooks call (sweeps)."""
