"""Dagster resources: thin wrappers that hand the core its engine, browser, generator and alert sink."""

from resources.alerts import Alerts
from resources.browser import Browser
from resources.database import Database
from resources.generator import Generator

__all__ = ["Alerts", "Browser", "Database", "Generator"]
