"""Deterministic engagement: counts grow with a tweet's age, seeded by tweet id and server seed.

Each tweet gets an eventual reach and rates from `random.Random("<seed>:<tweet id>")`; every count is
`floor(target * curve(age))` with a non-decreasing curve that starts at 0, so counts never go down, are the same
for the same (seed, id, age), and change as the sandbox clock moves (`POST /__sandbox/clock`).
"""

from __future__ import annotations

import math
import random

METRICS = ("likes", "retweets", "replies", "quotes", "bookmarks", "views")


def _profile(tweet_id: str, seed: int) -> tuple[float, float, dict[str, float]]:
    r = random.Random(f"{seed}:{tweet_id}")
    reach = r.lognormvariate(6.5, 1.0)  # eventual views: median ~665, long tail
    tau = r.uniform(1.0, 8.0) * 3600.0  # growth time constant
    like_rate = r.uniform(0.01, 0.06)
    rates = {
        "likes": like_rate,
        "retweets": like_rate * r.uniform(0.08, 0.3),
        "replies": like_rate * r.uniform(0.05, 0.25),
        "quotes": like_rate * r.uniform(0.01, 0.08),
        "bookmarks": like_rate * r.uniform(0.05, 0.3),
    }
    return reach, tau, rates


def engagement(tweet_id: str, seed: int, age_s: float, real_replies: int = 0) -> dict[str, int]:
    """Counts at `age_s` seconds after posting; `real_replies` (replies stored in the sandbox) adds to replies."""
    reach, tau, rates = _profile(tweet_id, seed)
    age = max(0.0, age_s)
    f = 1.0 - math.exp(-age / tau)
    out = {"views": math.floor(reach * f)}
    # Interactions lag views a little (f**1.2 <= f), still monotone in age.
    g = f**1.2
    for name, rate in rates.items():
        out[name] = math.floor(reach * rate * g)
    out["replies"] += max(0, real_replies)
    return {name: out[name] for name in METRICS}
