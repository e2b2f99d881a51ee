"""The error taxonomy: every X error code and status, every exception type, the policy table, backoff."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from pipeline.db import DatabaseError
from pipeline.failures import (
    POLICY,
    AuthFailed,
    AutomationBlocked,
    ErrorClass,
    NothingSent,
    OutcomeUnknown,
    PostRejected,
    RateLimited,
    TextMismatch,
    UiChanged,
    XError,
    backoff_seconds,
    classify,
    created_rest_id,
    graphql_error,
    is_playwright_error,
    item_action,
    parse_reset_at,
)


def x_body(code: int, message: str | None = None) -> dict:
    """An X GraphQL error body, shaped as x.com sends it."""
    message = message or f"Some error. ({code})"
    return {"errors": [{"message": message, "code": code,
                        "extensions": {"code": code, "name": "AuthorizationError"}}], "data": {}}


SUCCESS = {"data": {"create_tweet": {"tweet_results": {"result": {
    "rest_id": "1790000000000000001", "legacy": {"full_text": "hi"}}}}}}


# ----------------------------------------------------------------------------------- ErrorClass, exceptions


def test_error_class_values_are_the_stored_strings() -> None:
    assert [c.value for c in ErrorClass] == [
        "transient", "unknown", "rate_limited", "auth", "automation_block", "rejected", "ui_changed", "storage",
        "text_mismatch"]
    assert ErrorClass("rate_limited") is ErrorClass.RATE_LIMITED
    assert f"{ErrorClass.UI_CHANGED}" == "ui_changed"


@pytest.mark.parametrize(("exc", "cls"), [
    (NothingSent("nav failed"), ErrorClass.TRANSIENT),
    (OutcomeUnknown("timeout after click"), ErrorClass.UNKNOWN),
    (RateLimited("slow down", 88), ErrorClass.RATE_LIMITED),
    (AuthFailed("login", 32), ErrorClass.AUTH),
    (AutomationBlocked("bot", 226), ErrorClass.AUTOMATION_BLOCK),
    (PostRejected("dup", 187), ErrorClass.REJECTED),
    (UiChanged(selector='[data-testid="tweetButton"]'), ErrorClass.UI_CHANGED),
])
def test_typed_errors_carry_their_class_code_and_message(exc: XError, cls: ErrorClass) -> None:
    assert isinstance(exc, XError)
    assert exc.error_class is cls
    assert classify(exc) is cls
    assert classify(exc, after_click=True) is cls  # a typed error knows its timing better than the caller
    assert isinstance(exc.message, str) and exc.message
    assert exc.code is None or isinstance(exc.code, int)


def test_exception_specific_attributes() -> None:
    assert PostRejected("x", 187).is_duplicate is True
    assert PostRejected("x", 186).is_duplicate is False
    assert UiChanged(selector="#compose").selector == "#compose"
    assert "#compose" in str(UiChanged(selector="#compose"))
    reset = datetime(2030, 1, 1, tzinfo=UTC)
    assert RateLimited("x", 88, reset_at=reset).reset_at == reset
    assert RateLimited("x").reset_at is None
    assert "(code 187)" in str(PostRejected("Status is a duplicate.", 187))


# ------------------------------------------------------------------------------------------ graphql_error


def test_success_bodies_are_not_errors() -> None:
    assert graphql_error(200, SUCCESS, {}) is None
    assert graphql_error(200, {"data": {"user": {}}}, {}) is None
    assert graphql_error(200, None, {}) is None
    assert graphql_error(204, {}, {}) is None


def test_a_created_tweet_is_success_even_with_errors_beside_it() -> None:
    """Calling a stored post an error would lose its tweet id."""
    body = {**SUCCESS, "errors": [{"message": "non-fatal", "code": 214}]}
    assert graphql_error(200, body, {}) is None


@pytest.mark.parametrize("code", [32, 353, 326, 37, 64])
def test_auth_codes(code: int) -> None:
    err = graphql_error(200, x_body(code), {})
    assert isinstance(err, AuthFailed)
    assert err.code == code
    assert err.error_class is ErrorClass.AUTH


def test_auth_codes_on_4xx_statuses_and_bare_401() -> None:
    assert isinstance(graphql_error(403, x_body(353), {}), AuthFailed)
    assert isinstance(graphql_error(401, None, {}), AuthFailed)
    assert isinstance(graphql_error(302, None, {"Location": "https://x.com/i/flow/login"}), AuthFailed)


def test_automation_block_226() -> None:
    err = graphql_error(200, x_body(226, "This request looks like it might be automated."), {})
    assert isinstance(err, AutomationBlocked)
    assert err.code == 226
    assert "automated" in err.message


def test_duplicate_187_is_a_rejection_flagged_duplicate() -> None:
    body = {"errors": [{"message": "Authorization: Status is a duplicate. (187)", "code": 187,
                        "extensions": {"code": 187, "name": "AuthorizationError"}}], "data": {}}
    err = graphql_error(200, body, {})
    assert isinstance(err, PostRejected)
    assert err.is_duplicate and err.code == 187
    assert "duplicate" in err.message
    assert item_action(err) == "reconcile"  # our own earlier attempt may be the original


@pytest.mark.parametrize("code", [186, 385, 324, 144])
def test_other_content_rejections(code: int) -> None:
    err = graphql_error(200, x_body(code), {})
    assert isinstance(err, PostRejected)
    assert err.code == code and not err.is_duplicate
    assert item_action(err) == "fail"


def test_code_found_in_extensions_or_message_only() -> None:
    only_ext = {"errors": [{"message": "dup", "extensions": {"code": 187}}], "data": {}}
    only_msg = {"errors": [{"message": "Authorization: Status is a duplicate. (187)"}], "data": {}}
    string_code = {"errors": [{"message": "locked", "code": "326"}]}
    assert graphql_error(200, only_ext, {}).code == 187  # type: ignore[union-attr]
    assert graphql_error(200, only_msg, {}).code == 187  # type: ignore[union-attr]
    assert isinstance(graphql_error(200, string_code, {}), AuthFailed)


def test_uncoded_or_unknown_graphql_errors_are_unknown_outcomes_never_rejections() -> None:
    err = graphql_error(200, {"errors": [{"message": "Query: Unspecified"}]}, {})
    assert isinstance(err, OutcomeUnknown)
    assert err.code is None and "Query: Unspecified" in err.message
    strange = graphql_error(200, x_body(9999, "Something new (9999)"), {})
    assert isinstance(strange, OutcomeUnknown) and strange.code == 9999
    assert item_action(strange) == "reconcile"


def test_rate_limit_code_88_with_reset_header() -> None:
    reset = 1_900_000_000
    err = graphql_error(200, x_body(88, "Rate limit exceeded. (88)"), {"x-rate-limit-reset": str(reset)})
    assert isinstance(err, RateLimited)
    assert err.code == 88
    assert err.reset_at == datetime.fromtimestamp(reset, UTC)
    assert err.reset_at.tzinfo is not None


def test_http_429_without_body_is_rate_limited_and_headers_ignore_case() -> None:
    err = graphql_error(429, None, {"X-Rate-Limit-Reset": "1900000000"})
    assert isinstance(err, RateLimited)
    assert err.reset_at == datetime.fromtimestamp(1_900_000_000, UTC)
    assert graphql_error(429, None, {}).reset_at is None  # type: ignore[union-attr]


@pytest.mark.parametrize("code", [185, 344])
def test_daily_caps_are_rate_limits(code: int) -> None:
    assert isinstance(graphql_error(403, x_body(code), {}), RateLimited)


def test_rate_limit_beats_other_codes_in_the_same_body() -> None:
    body = {"errors": [{"message": "dup", "code": 187}, {"message": "limit", "code": 88}]}
    assert isinstance(graphql_error(200, body, {}), RateLimited)


def test_reset_header_parsing_edge_cases() -> None:
    assert parse_reset_at({"x-rate-limit-reset": "1900000000000"}) == datetime.fromtimestamp(1_900_000_000, UTC)
    assert parse_reset_at({"x-rate-limit-reset": "soon"}) is None
    assert parse_reset_at({"x-rate-limit-reset": "0"}) is None
    assert parse_reset_at({}) is None
    assert parse_reset_at(None) is None
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_reset_at({"Retry-After": "30"}, now) == now + timedelta(seconds=30)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_after_the_request_left_is_an_unknown_outcome(status: int) -> None:
    err = graphql_error(status, None, {})
    assert isinstance(err, OutcomeUnknown)
    assert err.error_class is ErrorClass.UNKNOWN
    assert str(status) in err.message


@pytest.mark.parametrize("code,message", [(130, "Over capacity"), (131, "Dependency: Internal error"),
                                          (29, "Timeout"), (-1, "LoadShed: Unspecified")])
def test_capacity_timeout_and_load_shed_codes_are_unknown_outcomes(code: int, message: str) -> None:
    err = graphql_error(200, x_body(code, message), {})
    assert isinstance(err, OutcomeUnknown) and err.code == code
    assert item_action(err) == "reconcile"


def test_a_403_without_code_is_the_sessions_problem_not_the_contents() -> None:
    err = graphql_error(403, None, {})
    assert isinstance(err, AuthFailed) and err.error_class is ErrorClass.AUTH
    assert isinstance(graphql_error(403, {"errors": []}, {}), AuthFailed)
    assert isinstance(graphql_error(403, x_body(187), {}), PostRejected)  # a coded 403 keeps its code's meaning


def test_created_rest_id_unwraps_visibility_results_and_refuses_empty_results() -> None:
    wrapped = {"data": {"create_tweet": {"tweet_results": {"result": {
        "__typename": "TweetWithVisibilityResults", "tweet": {"rest_id": "1860000000000000123"}}}}}}
    assert created_rest_id(wrapped) == "1860000000000000123"
    assert graphql_error(200, wrapped, {}) is None
    assert created_rest_id({"data": {"create_tweet": {"tweet_results": {}}}}) is None
    assert created_rest_id({"data": {"create_tweet": {"tweet_results": {"result": {"rest_id": ""}}}}}) is None
    assert created_rest_id("<html>502</html>") is None


def test_text_mismatch_is_its_own_class_that_records_the_post_and_alerts() -> None:
    err = TextMismatch("typed text differs", sent_text="hello", tweet_id="5")
    assert classify(err) is ErrorClass.TEXT_MISMATCH
    assert POLICY[ErrorClass.TEXT_MISMATCH].item_action == "record_live"
    assert POLICY[ErrorClass.TEXT_MISMATCH].alert


def test_5xx_with_a_rejection_code_keeps_the_code_meaning() -> None:
    assert isinstance(graphql_error(503, x_body(187), {}), PostRejected)


def test_other_4xx_without_body_leave_the_outcome_unknown() -> None:
    assert isinstance(graphql_error(400, None, {}), OutcomeUnknown)
    assert isinstance(graphql_error(408, None, {}), OutcomeUnknown)
    assert isinstance(graphql_error(302, None, {"location": "/elsewhere"}), OutcomeUnknown)


# ---------------------------------------------------------------------------------------------- classify


def _operational_error() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("INSERT INTO tweets ...", {}, Exception("connection refused"))


def test_sqlalchemy_operational_error_is_storage() -> None:
    assert classify(_operational_error()) is ErrorClass.STORAGE
    assert classify(_operational_error(), after_click=True) is ErrorClass.STORAGE


def test_real_database_errors_are_storage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(sa.exc.DBAPIError) as caught, engine.connect() as conn:
        conn.exec_driver_sql("SELECT * FROM no_such_table")
    engine.dispose()
    assert classify(caught.value) is ErrorClass.STORAGE
    assert classify(sa.exc.IntegrityError("INSERT", {}, Exception("unique"))) is ErrorClass.STORAGE
    assert classify(sa.exc.TimeoutError("QueuePool limit reached")) is ErrorClass.STORAGE
    assert classify(DatabaseError("database unreachable")) is ErrorClass.STORAGE
    assert classify(sqlite3.OperationalError("database is locked")) is ErrorClass.STORAGE


def test_unwrapped_playwright_errors_depend_on_timing() -> None:
    timeout = PlaywrightTimeoutError("Timeout 30000ms exceeded.")
    crash = PlaywrightError("Target page, context or browser has been closed")
    assert is_playwright_error(timeout) and is_playwright_error(crash)
    assert classify(timeout) is ErrorClass.TRANSIENT
    assert classify(crash) is ErrorClass.TRANSIENT
    assert classify(timeout, after_click=True) is ErrorClass.UNKNOWN
    assert classify(crash, after_click=True) is ErrorClass.UNKNOWN
    assert not is_playwright_error(ValueError())


def test_unexpected_exceptions_depend_on_timing() -> None:
    assert classify(ValueError("bug")) is ErrorClass.TRANSIENT
    assert classify(ValueError("bug"), after_click=True) is ErrorClass.UNKNOWN
    assert classify(KeyboardInterrupt(), after_click=True) is ErrorClass.UNKNOWN
    assert item_action(ValueError("bug"), after_click=True) == "reconcile"


def test_explicit_causes_are_followed() -> None:
    try:
        try:
            raise _operational_error()
        except sa.exc.OperationalError as inner:
            raise RuntimeError("confirm failed") from inner
    except RuntimeError as outer:
        assert classify(outer, after_click=True) is ErrorClass.STORAGE
    wrapped = RuntimeError("wrapped")
    wrapped.__cause__ = AuthFailed("login", 32)
    assert classify(wrapped) is ErrorClass.AUTH


# ------------------------------------------------------------------------------------------------ policy


def test_policy_covers_every_class_and_matches_design_section_4() -> None:
    assert set(POLICY) == set(ErrorClass)
    expect = {
        ErrorClass.TRANSIENT: ("retry", "count", False),
        ErrorClass.UNKNOWN: ("reconcile", "ignore", False),
        ErrorClass.RATE_LIMITED: ("requeue_no_penalty", "open_until_reset", False),
        ErrorClass.AUTH: ("requeue_no_penalty", "force_open", True),
        ErrorClass.AUTOMATION_BLOCK: ("requeue_no_penalty", "force_open", True),
        ErrorClass.REJECTED: ("fail", "ignore", False),
        ErrorClass.UI_CHANGED: ("requeue_no_penalty", "count", True),
        ErrorClass.STORAGE: ("retry_db_only", "ignore", False),
    }
    for cls, (action, effect, alert) in expect.items():
        p = POLICY[cls]
        assert (p.item_action, p.breaker_effect, p.alert) == (action, effect, alert), cls
        assert (p.breaker_weight > 0) == (effect == "count"), cls
    # transient counts low, ui_changed high
    assert 0 < POLICY[ErrorClass.TRANSIENT].breaker_weight < 1 < POLICY[ErrorClass.UI_CHANGED].breaker_weight


def test_item_actions_from_exceptions() -> None:
    assert item_action(NothingSent()) == "retry"
    assert item_action(OutcomeUnknown()) == "reconcile"
    assert item_action(RateLimited()) == "requeue_no_penalty"
    assert item_action(PostRejected("too long", 186)) == "fail"
    assert item_action(_operational_error()) == "retry_db_only"


# ----------------------------------------------------------------------------------------------- backoff


def test_backoff_full_jitter_bounds() -> None:
    rng = random.Random(42)
    for failures in range(1, 30):
        ceiling = min(900.0, 5.0 * 2 ** (failures - 1))
        samples = [backoff_seconds(failures, rng=rng) for _ in range(200)]
        assert all(0.0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.5  # jitter spans the range, not a fixed delay
    assert len({backoff_seconds(3, rng=rng) for _ in range(50)}) > 40


def test_backoff_cap_base_and_extremes() -> None:
    class Top:
        """Always the top of the range, to read the ceiling."""

        def uniform(self, a: float, b: float) -> float:
            return b

    top = Top()
    assert backoff_seconds(0, rng=top) == 5.0
    assert backoff_seconds(1, rng=top) == 5.0
    assert backoff_seconds(2, rng=top) == 10.0
    assert backoff_seconds(5, rng=top) == 80.0
    assert backoff_seconds(9, rng=top) == 900.0
    assert backoff_seconds(10_000, rng=top) == 900.0  # no overflow
    assert backoff_seconds(3, base=1.0, cap=3.0, rng=top) == 3.0
    assert 0.0 <= backoff_seconds(4) <= 40.0  # default rng: the random module
    with pytest.raises(ValueError):
        backoff_seconds(1, base=-1.0)
