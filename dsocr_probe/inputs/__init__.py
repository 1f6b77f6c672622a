"""The inputs of a run: the target, the training config, the dataset, the machine, and the trust decision."""
