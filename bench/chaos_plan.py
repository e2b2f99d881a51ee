"""The chaos harness's configuration and its plan: what a run asks for (items, texts, timing, fault rates)."""

from __future__ import annotations

import copy
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.chaos_faults import (
    SANDBOX_FAULTS,
)

ROOT = Path(__file__).resolve().parent.parent
PIPELINE_APP = "x-posting-pipeline"  # pipeline.db.APPLICATION_NAME (not imported: keep this module light)
HARNESS_APP = "chaos-harness"
# "dagster": all-accounts workers run post_job through `dagster job execute`; "python": run_posting directly.
# Switching every all-accounts worker is this one line (or --runner).
DEFAULT_RUNNER = "dagster"
METRICS = ("posts", "faults", "duplicates", "lost", "false_failures", "missing_tweet_ids", "unexpected",
           "unknown_left", "broken_threads", "texts_altered", "media_wrong", "media_posts", "seconds_to_quiet",
           "max_connections")
ODD_ZONES = ("UTC", "Pacific/Chatham", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe",
             "Pacific/Kiritimati", "Etc/GMT+12", "America/Caracas")
SKEWS_S = (-300.0, -90.0, -7.0, 7.0, 90.0, 3600.0)
FOREIGN_MARK = "[another client]"  # posts the harness makes itself (timeline bursts); the checker ignores them
BURST = 210
WORDS = ("queue", "lease", "breaker", "journal", "fingerprint", "timeline", "sandbox", "postgres", "retry",
         "reconcile", "intent", "outage", "probe", "window", "settle", "jitter", "replay", "skew")
FLOURISHES = ("\n\nNotes: https://example.com/chaos/{key}?ref=x&y=1", " \U0001F680\U0001F389", " cc @chaos_friend, thanks",
              "\n- first\n- second", " see example.org/{key}", " Q&A \u2014 caf\u00e9 \U0001F44D\U0001F3FD")


# =============================================================================================== configuration


@dataclass
class ChaosConfig:
    posts: int = 200
    seed: int = 7
    accounts: int = 4
    workers: int = 3
    runner: str = DEFAULT_RUNNER
    thread_share: float = 0.2  # items that are 2-3 part threads
    media_share: float = 0.25  # items with media on one part: images (1-4), a GIF or a video, most with alt text
    exact_now_share: float = 0.4  # items scheduled at exactly the database's now()
    spread_s: float = 0.0  # the rest are spread over this many seconds (0: derived from posts)
    # pipeline settings for every worker (both sides read the same PIPELINE_* values)
    post_timeout_s: float = 2.0
    nav_timeout_s: float = 5.0
    reconcile_timeout_s: float = 10.0
    settle_s: float = 3.0
    visibility_s: float = 45.0  # above the timeline lag (30 s): the horizon must outlast it, as in production
    lease_s: int = 40  # above the worst case of one attempt: 3 x nav timeout + 2 x 5 s + post timeout
    run_budget: int = 20
    # sandbox faults: name -> {"p": per request / page load, params} (bench/chaos_faults.py's table)
    sandbox_faults: dict[str, dict[str, Any]] = field(default_factory=lambda: copy.deepcopy(SANDBOX_FAULTS))
    # database faults
    p_cut_after_post: float = 0.04
    p_long_cut: float = 0.15  # of those: longer than the pipeline's confirm retries (about 7.7 s): the journal
    random_cut_every_s: float = 20.0
    p_stall_window: float = 0.3
    # processes
    p_kill: float = 0.15  # a run is SIGKILLed at a random time after its start...
    kill_window_s: tuple[float, float] = (3.0, 40.0)
    p_kill_on_post: float = 0.03  # ...and, per stored post, a random running worker is SIGKILLed at that instant
    p_subset_worker: float = 0.35
    p_skew: float = 0.4
    operator_delay_s: float = 3.0
    # opt-in (not in the fault list): when a worker is killed at the instant a post is stored, bury that
    # post under BURST newer posts from "another client" of the account, past what reconciliation reads
    p_timeline_burst: float = 0.0
    # limits
    fault_limit_s: float = 0.0  # 0: derived from posts
    quiet_limit_s: float = 180.0
    time_budget_s: float = 275.0  # each side stops this long after it started, setup included (0: no budget)
    run_limit_s: float = 300.0  # a worker running longer is killed (counted as watchdog kill, not a fault)

    def __post_init__(self) -> None:
        if not self.spread_s:
            self.spread_s = max(10.0, self.posts * 0.15)
        if not self.fault_limit_s:
            self.fault_limit_s = max(60.0, self.posts * 0.45)

    def worker_env(self) -> dict[str, str]:
        return {
            "PIPELINE_POST_TIMEOUT_S": str(self.post_timeout_s),
            "PIPELINE_NAV_TIMEOUT_S": str(self.nav_timeout_s),
            "PIPELINE_RECONCILE_TIMEOUT_S": str(self.reconcile_timeout_s),
            "PIPELINE_RECONCILE_SETTLE_S": str(self.settle_s),
            "PIPELINE_RECONCILE_VISIBILITY_S": str(self.visibility_s),
            "PIPELINE_LEASE_S": str(self.lease_s),
            "PIPELINE_RUN_BUDGET": str(self.run_budget),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChaosConfig:
        names = {f.name for f in fields(cls)}
        clean = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
        return cls(**clean)


PROBABILITIES = ("p_cut_after_post", "p_stall_window", "p_kill", "p_kill_on_post", "p_skew")


def scaled(cfg: ChaosConfig, intensity: float) -> ChaosConfig:
    """The same schedule with every fault probability (and the random cut rate) multiplied by `intensity`."""
    data = asdict(cfg)
    for name in PROBABILITIES:
        data[name] = min(1.0, data[name] * intensity)
    for fault in data["sandbox_faults"].values():
        fault["p"] = min(1.0, fault["p"] * intensity)
    data["random_cut_every_s"] = cfg.random_cut_every_s / intensity if intensity > 0 else 1e9
    return ChaosConfig.from_dict(data)


@dataclass(frozen=True)
class PlanItem:
    key: int
    account: str
    parts: list[str]
    offset_s: float | None  # None: exactly the database's now() at enqueue
    # per part: [{"kind": "image"|"gif"|"video", "seed": n, "alt": str | None}] (files made by `write_media`)
    media: list[list[dict[str, Any]]] = field(default_factory=list)


def handles(count: int) -> list[str]:
    return [f"chaos_{chr(ord('a') + i)}" if i < 26 else f"chaos_{i}" for i in range(count)]


def make_plan(cfg: ChaosConfig) -> list[PlanItem]:
    """N items over the accounts: singles and some threads, unique text per account, seeded. Texts carry what
    x.com renders differently from what was typed: line breaks, URLs, bare domains, emoji, mentions, `&`."""
    rng = random.Random(f"{cfg.seed}:plan")
    media_rng = random.Random(f"{cfg.seed}:media")
    accounts = handles(cfg.accounts)
    plan = []
    for key in range(1, cfg.posts + 1):
        account = accounts[(key - 1) % len(accounts)]
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))
        head = f"chaos s{cfg.seed} #{key}"
        extras = rng.sample(FLOURISHES, rng.randint(0, 2))

        def dress(text: str, key: int = key, extras: list[str] = extras) -> str:
            return text + "".join(e.format(key=key) for e in extras)

        if rng.random() < cfg.thread_share:
            n = rng.randint(2, 3)
            parts = [dress(f"{head} part {i}/{n}: {words} {rng.choice(WORDS)}") for i in range(1, n + 1)]
        else:
            parts = [dress(f"{head}: {words}")]
        offset = None if rng.random() < cfg.exact_now_share else round(rng.uniform(0, cfg.spread_s), 6)
        plan.append(PlanItem(key, account, parts, offset, _media_for(media_rng, cfg, key, len(parts))))
    return plan


def _media_for(rng: random.Random, cfg: ChaosConfig, key: int, parts: int) -> list[list[dict[str, Any]]]:
    """Media for one item (its own random stream, so texts stay as before for a seed): none for most items;
    for `media_share` of them one part carries 1-4 images, a GIF or a video, with alt text or without."""
    if rng.random() >= cfg.media_share:
        return []
    kind = rng.choices(("image", "gif", "video"), weights=(6, 2, 2))[0]
    count = rng.randint(1, 4) if kind == "image" else 1
    chosen = rng.randrange(parts)
    items = [{"kind": kind, "seed": key * 10 + n, "alt": (f"chaos #{key} {kind} {n}" if rng.random() < 0.7 else None)}
             for n in range(count)]  # fmt: skip
    return [items if i == chosen else [] for i in range(parts)]


MEDIA_SUFFIX = {"image": ".png", "gif": ".gif", "video": ".mp4"}


def write_media(item: PlanItem, folder: Path) -> list[list[tuple[Path, str | None]]]:
    """The item's media files, made from their seeds (the same plan makes the same bytes), as (path, alt) per
    part: what the harness hands to `pipeline enqueue --media FILE --alt TEXT`."""
    from tests import media_files  # Pillow and ffmpeg: only when a plan with media is written

    folder.mkdir(parents=True, exist_ok=True)
    out: list[list[tuple[Path, str | None]]] = []
    for specs in item.media:
        files = []
        for spec in specs:
            path = folder / f"{spec['seed']}{MEDIA_SUFFIX[spec['kind']]}"
            if not path.exists():
                if spec["kind"] == "image":
                    media_files.image(path, seed=spec["seed"])
                elif spec["kind"] == "gif":
                    media_files.gif(path, seed=spec["seed"])
                else:
                    media_files.video(path, seconds=1.0 + spec["seed"] % 7 / 10)
            files.append((path, spec["alt"]))
        out.append(files)
    return out


MediaFiles = dict[int, list[list[tuple[Path, str | None]]]]  # plan key -> per part (file, alt)


def write_plan_media(plan: list[PlanItem], folder: Path) -> MediaFiles:
    """Every item's media files (see `write_media`), by plan key: what both sides enqueue, and what the checker
    hashes for the expected media."""
    return {p.key: write_media(p, folder) for p in plan if any(p.media)}


def expected(plan: list[PlanItem], files: MediaFiles | None = None) -> list[dict[str, Any]]:
    """The plan as the checker reads it: what the harness asked for, never what a side recorded. Media per part
    are the SHA-256 and alt text of the files the harness wrote (`write_plan_media`); an item with media in the
    plan but no files given is an error, so a run can never check media it did not make."""
    import hashlib

    out = []
    for p in plan:
        entry: dict[str, Any] = {"id": p.key, "account": p.account, "parts": list(p.parts)}
        if any(p.media):
            written = (files or {})[p.key]
            entry["media"] = [[{"sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "alt": alt}
                               for path, alt in part] for part in written]
        out.append(entry)
    return out
