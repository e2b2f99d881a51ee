"""The content generator planning draws from: the drafts library, or an LLM when PIPELINE_LLM_BASE_URL is set."""

from typing import Any

import dagster as dg

from pipeline.settings import Settings, load_settings
from resources.database import Database


class Generator(dg.ConfigurableResource):
    """Wraps `pipeline.generators.make_generator(engine, settings)`; which generator is chosen (and the LLM
    key, a secret) comes from the PIPELINE_* settings, never from resource config shown in the UI."""

    database: Database

    def get(self, settings: Settings | None = None) -> Any:
        from pipeline.generators import make_generator  # imported on use: definitions load stays light

        return make_generator(self.database.engine, settings or load_settings())
