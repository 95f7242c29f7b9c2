"""Adapters of the processor: ClickHouse, Kafka outputs, faust consumer, lag, retries."""
