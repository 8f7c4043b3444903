"""Running notebooks at scale: one parameterised notebook run with its folder (runner), a grid of runs from options or a batch
file (grid), resumable batches of them, locally or on SLURM (batch, slurm), and the sweep helper the sweep notebooks call (sweeps)."""
