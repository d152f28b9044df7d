"""Training: the loop, checkpoints, EMA and differentiable augmentation."""
