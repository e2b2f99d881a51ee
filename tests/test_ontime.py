"""On time under the daemon: `dagster-daemon` with the shipped dagster.yaml dispatches each post at its minute
(dispatch_sensor every 15 s, a run per account that waits for the item), not on a five-minute grid."""

from __future__ import annotations

import pytest

from tests.daemon_stack import DaemonStack

OFFSETS_S = (60, 150, 240, 300)  # one to five minutes ahead
LATE_LIMIT_S = 60


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_items_one_to_five_minutes_ahead_go_live_within_a_minute_of_their_time() -> None:
    accounts = ["ontime_a", "ontime_b"]
    with DaemonStack(accounts) as stack:
        items = [(account, f"@{account} on time at +{offset} s", offset)
                 for account in accounts for offset in OFFSETS_S]
        stack.schedule(items)
        scheduled = stack.scheduled_times()
        texts = {text for _, text, _ in items}
        live = stack.wait_live(texts, timeout_s=max(OFFSETS_S) + LATE_LIMIT_S + 30)
        lateness = {text: live[text] - scheduled[text] for text in live}
        assert set(live) == texts, f"never went live: {sorted(texts - set(live))}"
        late = {text: round(s, 1) for text, s in lateness.items() if not -1.0 <= s <= LATE_LIMIT_S}
        assert not late, f"outside [-1, {LATE_LIMIT_S}] s: {late}; all: {lateness}; daemon log: {stack.log_path}"
        assert stack.duplicates() == 0
        assert stack.run_overlaps() == []  # the run queue never ran two posting runs of one account at once
