"""The chaos harness's fault injectors in the harness process: the database proxy's schedule and the tap on the
sandbox's store."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.chaos_faults import (
    FaultSchedule,
    ScheduledFaults,
)
from bench.chaos_plan import BURST, FOREIGN_MARK, ChaosConfig

# =============================================================================================== fault injectors


class DbChaos:
    """Owns the FaultProxy and replays the schedule's database events: a cut the instant the j-th post is
    stored, cuts and latency windows at fixed offsets from the start of the faults. Thread-safe."""

    def __init__(self, proxy: Any, schedule: FaultSchedule) -> None:
        self.proxy, self.schedule = proxy, schedule
        self.lock = threading.Lock()
        self.down_until = 0.0
        self.stall_until = 0.0
        self.counts: Counter[str] = Counter()
        self.active = False
        self.t0 = 0.0
        self.next_event = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="db-chaos")
        self._thread.start()

    def start(self) -> None:
        with self.lock:
            self.active, self.t0 = True, time.monotonic()

    def cut(self, seconds: float, reason: str) -> None:
        with self.lock:
            if not self.active:
                return
            self.counts[reason] += 1
            self.down_until = max(self.down_until, time.monotonic() + seconds)
            self.proxy.cut()

    def after_post(self, event: Any) -> bool:
        """Called by the sandbox hook the instant a tweet is stored; True when it cut the database."""
        if not event.cut_s:
            return False
        self.cut(event.cut_s, "cut_after_post_long" if event.long else "cut_after_post")
        return True

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            now = time.monotonic()
            with self.lock:
                if self.proxy.is_down and now >= self.down_until:
                    self.proxy.restore()
                if self.proxy.stall_s and now >= self.stall_until:
                    self.proxy.stall_s = 0.0
                events = self.schedule.db
                due = None
                if self.active and self.next_event < len(events) and now - self.t0 >= events[self.next_event].at_s:
                    due = events[self.next_event]
                    self.next_event += 1
                    if due.kind == "db_latency_window":
                        self.counts[due.kind] += 1
                        self.proxy.stall_s = due.stall_s
                        self.stall_until = now + due.seconds
            if due is not None and due.kind == "cut_random":
                self.cut(due.seconds, "cut_random")

    def calm(self) -> None:
        """Phase 2: no more database faults."""
        with self.lock:
            self.active = False
            self.down_until = 0.0
            self.proxy.stall_s = 0.0
            self.proxy.restore()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


class SandboxTap:
    """Wraps the in-process store: replays the schedule's sandbox faults per request, counts operations and
    faulted requests, and at the instant a tweet is stored cuts the database and kills its poster as scheduled."""

    def __init__(self, store: Any, db: DbChaos, faults: ScheduledFaults, on_stored: Callable[[Any], bool],
                 cfg: ChaosConfig) -> None:
        self.store, self.db, self.faults, self.on_stored, self.cfg = store, db, faults, on_stored, cfg
        self.rng = random.Random(f"{cfg.seed}:burst")
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stored_slot = -1
        self._post, self._page = store.post, store.page_faults
        store.faults.roll = faults.roll
        store.post = self.post
        store.page_faults = self.page_faults

    def post(self, handle: str, text: Any, reply_to: Any, media: Any = None) -> Any:
        self.faults.next_post()
        result = self._post(handle, text, reply_to, media)
        fired = set(self.faults.now)
        cut = killed = False
        if result.tweet is not None and self.faults.active:
            self.stored_slot += 1
            stored = self.db.schedule.stored
            event = stored[self.stored_slot] if self.stored_slot < len(stored) else None
            if event is not None:
                cut = self.db.after_post(event)
                killed = self.on_stored(event)
            if killed and self.rng.random() < self.cfg.p_timeline_burst:
                self.bury(handle)
        with self.lock:
            self.counts["post_ops"] += 1
            self.counts["stored"] += result.tweet is not None
            if fired or cut or killed:
                self.counts["post_ops_faulted"] += 1
            if result.status == 429 and "rate_limit" not in fired:
                self.counts["rate_limited_responses"] += 1
        return result

    def bury(self, handle: str) -> None:
        """BURST newer posts on the account, unfaulted (this runs inside the CreateTweet handler, on the
        server's one event-loop thread, so no other request interleaves)."""
        from sandbox.faults import FaultBox

        box, self.store.faults = self.store.faults, FaultBox()
        try:
            n = self.counts["timeline_bursts"]
            for i in range(BURST):
                self._post(handle, f"{FOREIGN_MARK} {handle} burst {n} post {i}", None)
        finally:
            self.store.faults = box
        with self.lock:
            self.counts["timeline_bursts"] += 1

    def page_faults(self, handle: str | None) -> Any:
        self.faults.next_page()
        result = self._page(handle)
        with self.lock:
            self.counts["page_ops"] += 1
            self.counts["page_ops_faulted"] += bool(self.faults.now)
        return result


