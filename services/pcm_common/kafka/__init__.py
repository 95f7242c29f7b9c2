"""Kafka adapters: the topic registry, the acknowledged producer and envelope helpers."""
