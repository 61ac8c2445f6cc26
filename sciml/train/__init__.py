"""The shared Trainer: one step-based loop for every model in the suite."""
