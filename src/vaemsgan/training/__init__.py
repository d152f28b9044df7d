"""Training: the loop (trainer.py) and what it shows and keeps (outputs.py), the objective (loss.py), EMA, differentiable augmentation, data parallelism."""
