"""Training: the loop (trainer.py), the objective (loss.py), EMA, differentiable augmentation, data parallelism."""
