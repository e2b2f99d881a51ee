"""Settings (pipeline/settings.py), pure logic: one reader, strict for whatever acts, lenient for what must
keep running to tell the operator that a setting is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import ConfigError, load_settings, load_settings_lenient


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"PIPELINE_STATE_DIR": str(tmp_path / "state"), **{f"PIPELINE_{k.upper()}": v for k, v in values.items()}}


def test_strict_refuses_an_unparsable_or_out_of_range_value_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PIPELINE_LEASE_S='soon' is not a valid int"):
        load_settings(env(tmp_path, lease_s="soon"))
    with pytest.raises(ConfigError, match="PIPELINE_SENSOR_INTERVAL_S=1: must be at least 5 seconds"):
        load_settings(env(tmp_path, sensor_interval_s="1"))
    with pytest.raises(ConfigError, match="PIPELINE_SENSOR_INTERVAL_S=2"):  # an argument is checked as well
        load_settings(env(tmp_path), sensor_interval_s=2)


def test_strict_reads_environment_arguments_and_defaults_and_normalises(tmp_path: Path) -> None:
    settings = load_settings(env(tmp_path, lease_s="120", database_url="postgres://u@h/db",
                                 x_base_url="http://127.0.0.1:9/"), plan_min_items=7)
    assert (settings.lease_s, settings.plan_min_items, settings.sensor_interval_s) == (120, 7, 60)
    assert settings.sources["lease_s"] == "environment" and settings.sources["plan_min_items"] == "argument"
    assert settings.sources["sensor_interval_s"] == "default"
    assert settings.database_url == "postgresql://u@h/db" and settings.x_base_url == "http://127.0.0.1:9"


def test_lenient_puts_defaults_in_place_of_invalid_values_and_names_each(tmp_path: Path) -> None:
    settings, problems = load_settings_lenient(env(tmp_path, lease_s="soon", sensor_interval_s="1",
                                                   plan_min_items="9", alert_webhook_url="http://hook.example/T0K3N"))
    assert (settings.lease_s, settings.sensor_interval_s, settings.plan_min_items) == (300, 60, 9)
    assert settings.sources["lease_s"] == "default" and settings.sources["plan_min_items"] == "environment"
    assert len(problems) == 2 and "PIPELINE_LEASE_S" in problems[0] and "PIPELINE_SENSOR_INTERVAL_S" in problems[1]
    assert load_settings_lenient(env(tmp_path))[1] == []


def test_lenient_never_replaces_where_the_state_lives(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PIPELINE_DATABASE_URL"):
        load_settings_lenient(env(tmp_path, database_url="mysql://nope/db", lease_s="soon"))
