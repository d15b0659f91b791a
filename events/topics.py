"""Topic names and partitioning, in one place for producers, workers and stream consumers."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str = "tributary"

    @property
    def commands(self) -> str:
        return f"{self.prefix}.commands"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.dead-letters"

    @property
    def audit(self) -> str:
        return f"{self.prefix}.audit"


def partition_key(tenant: str, dataset: str) -> bytes:
    """Every message of one dataset shares a key, so one partition (and one applier) orders them."""
    return f"{tenant}/{dataset}".encode()
