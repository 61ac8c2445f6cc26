"""Slurm environment, signals and batch jobs (see issue: Cluster)."""
