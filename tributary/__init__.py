"""Tributary: vector search for DeepLake as an event-driven CQRS service over Kafka."""

__version__ = "0.1.0"
