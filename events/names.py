"""Names of tenants and datasets: they become storage path segments and Kafka keys, so they are kept narrow."""

from typing import Annotated

from pydantic import StringConstraints

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
