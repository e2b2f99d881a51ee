"""Thompson sampling over learned Beta weights: which topic, format or hour the planner picks next.

Plain `random`, no pandas: the planner (and so every Dagster run's code load) needs only this, while the
tables it samples from are built by `pipeline.learning`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

DEFAULT_FLOOR = 0.05


def _ab(params: Any) -> tuple[float, float]:
    if isinstance(params, Mapping):
        return float(params["alpha"]), float(params["beta"])
    alpha, beta = params
    return float(alpha), float(beta)


def thompson_choice(weights: Mapping[str, Any], rng: random.Random, floor: float = DEFAULT_FLOOR) -> str:
    """Pick one option: uniformly with probability floor x options (the floor), else the best Beta sample.

    `weights` maps option -> {"alpha", "beta"} (or an (alpha, beta) pair): one dimension of `topic_weights`.
    """
    if not weights:
        raise ValueError("thompson_choice needs at least one option")
    names = sorted(weights)
    if rng.random() < min(1.0, max(0.0, floor) * len(names)):
        return rng.choice(names)
    best, best_sample = names[0], -1.0
    for name in names:
        alpha, beta = _ab(weights[name])
        sample = rng.betavariate(max(alpha, 1e-6), max(beta, 1e-6))
        if sample > best_sample:
            best, best_sample = name, sample
    return best


def sampling_shares(weights: Mapping[str, Any], rng: random.Random, floor: float = DEFAULT_FLOOR,
                    draws: int = 2000) -> dict[str, float]:
    """How often each option would be picked (for the UI and tests): a Monte-Carlo estimate."""
    counts = dict.fromkeys(weights, 0)
    for _ in range(draws):
        counts[thompson_choice(weights, rng, floor)] += 1
    return {k: v / draws for k, v in counts.items()}
