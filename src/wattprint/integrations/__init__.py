"""Where users work: torch.distributed, Lightning, Hugging Face Trainer, MLflow, Prometheus, Jupyter, Optuna.

Each integration is its own module and an optional extra; importing this package imports none of them.
"""
