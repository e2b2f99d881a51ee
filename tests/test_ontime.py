"""On time under the daemon: `pipeline-daemon` with the shipped dagster.yaml dispatches each post at its minute
(dispatch_sensor every 15 s, a run per account that waits for the item), not on a five-minute grid.

The scenario waits five minutes by its nature, so it starts when the session starts (`on_time_scenario`, an
autouse session fixture in tests/conftest.py, only when this test is selected) and runs beside the rest of the
suite; the test, whenever its turn comes, waits for whatever is not live yet and judges it.
"""

from __future__ import annotations

import pytest

from tests.daemon_stack import DaemonStack

OFFSETS_S = (60, 150, 240, 300)  # one to five minutes ahead
LATE_LIMIT_S = 60
ACCOUNTS = ("ontime_a", "ontime_b")


class OnTimeScenario:
    """The daemon stack and the items scheduled on it, from the start of the session."""

    def __init__(self) -> None:
        self.stack = DaemonStack(list(ACCOUNTS))
        self.stack.__enter__()
        try:
            items = [(account, f"@{account} on time at +{offset} s", offset)
                     for account in ACCOUNTS for offset in OFFSETS_S]
            self.stack.schedule(items)
            self.scheduled = self.stack.scheduled_times()
            self.texts = {text for _, text, _ in items}
        except BaseException:
            self.stack.__exit__(None, None, None)
            raise
        self.failed = False

    def close(self) -> None:
        # On a failure keep the daemon's log and the run logs for a look (DaemonStack keeps them on an error).
        self.stack.__exit__(AssertionError if self.failed else None, None, None)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_items_one_to_five_minutes_ahead_go_live_within_a_minute_of_their_time(
        on_time_scenario: OnTimeScenario) -> None:
    scenario, stack = on_time_scenario, on_time_scenario.stack
    scenario.failed = True
    live = stack.wait_live(scenario.texts, timeout_s=max(OFFSETS_S) + LATE_LIMIT_S + 30)
    lateness = {text: live[text] - scenario.scheduled[text] for text in live}
    assert set(live) == scenario.texts, f"never went live: {sorted(scenario.texts - set(live))}"
    late = {text: round(s, 1) for text, s in lateness.items() if not -1.0 <= s <= LATE_LIMIT_S}
    assert not late, f"outside [-1, {LATE_LIMIT_S}] s: {late}; all: {lateness}; daemon log: {stack.log_path}"
    assert stack.duplicates() == 0
    assert stack.run_overlaps() == []  # the run queue never ran two posting runs of one account at once
    scenario.failed = False
