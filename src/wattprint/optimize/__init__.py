"""Reduce: efficiency recipes with measured trade-offs, and an accuracy-aware search.

    import wattprint.optimize as wo
    small = wo.apply(model, "prune-channels:0.5+int8-dynamic", example_inputs=x)
    result = wo.search(model, eval_fn, x, max_metric_drop=0.01)   # Pareto front + best candidate

Importing this package is cheap: torch, Torch-Pruning and Optuna load when a function needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wattprint._lazy import lazy_exports

__all__ = [
    "BatchSizeOptimizer",
    "DistillConfig",
    "ElasticSpace",
    "Measurement",
    "NasResult",
    "PowerLimitOptimizer",
    "RECIPE_NAMES",
    "RigL",
    "SearchResult",
    "ShrinkConfig",
    "SubnetConfig",
    "SubnetSearchResult",
    "Supernet",
    "accuracy_eval",
    "apply",
    "candidate_space",
    "classifier_search",
    "compare_distillation",
    "energy_time_cost",
    "extract",
    "lottery_ticket",
    "magnitude_prune",
    "measure",
    "parse_recipe",
    "print_report",
    "prune_channels",
    "recalibrate_bn",
    "search",
    "search_architectures",
    "search_subnets",
    "sparsity",
    "to_sdpa",
    "train_student",
    "train_supernet",
]

if TYPE_CHECKING:
    from wattprint.optimize.attention import to_sdpa
    from wattprint.optimize.batch_size import BatchSizeOptimizer, energy_time_cost
    from wattprint.optimize.distill import DistillConfig, compare_distillation, train_student
    from wattprint.optimize.harness import Measurement, accuracy_eval, measure
    from wattprint.optimize.nas import NasResult, search_architectures
    from wattprint.optimize.ofa import ElasticSpace, SubnetConfig, Supernet, extract, recalibrate_bn
    from wattprint.optimize.ofa_search import SubnetSearchResult, search_subnets
    from wattprint.optimize.ofa_train import ShrinkConfig, train_supernet
    from wattprint.optimize.power_limit import PowerLimitOptimizer
    from wattprint.optimize.prune import RigL, lottery_ticket, magnitude_prune, prune_channels, sparsity
    from wattprint.optimize.recipes import RECIPE_NAMES, apply, parse_recipe

# eager (and light: no torch, no optuna): binding the function here keeps the submodule `search` from
# shadowing it once the submodule is imported
from wattprint.optimize.search import (  # noqa: E402
    SearchResult,
    candidate_space,
    classifier_search,
    print_report,
    search,
)

_LAZY = {
    "apply": "recipes",
    "parse_recipe": "recipes",
    "RECIPE_NAMES": "recipes",
    "measure": "harness",
    "Measurement": "harness",
    "accuracy_eval": "harness",
    "magnitude_prune": "prune",
    "prune_channels": "prune",
    "lottery_ticket": "prune",
    "RigL": "prune",
    "sparsity": "prune",
    "to_sdpa": "attention",
    "DistillConfig": "distill",
    "compare_distillation": "distill",
    "train_student": "distill",
    "search_architectures": "nas",
    "NasResult": "nas",
    "BatchSizeOptimizer": "batch_size",
    "energy_time_cost": "batch_size",
    "PowerLimitOptimizer": "power_limit",
    "ElasticSpace": "ofa",
    "SubnetConfig": "ofa",
    "Supernet": "ofa",
    "extract": "ofa",
    "recalibrate_bn": "ofa",
    "search_subnets": "ofa_search",
    "SubnetSearchResult": "ofa_search",
    "ShrinkConfig": "ofa_train",
    "train_supernet": "ofa_train",
}


__getattr__ = lazy_exports(__name__, {name: f"wattprint.optimize.{module}" for name, module in _LAZY.items()})
