"""pcm_processor: faust stream processors keeping per-entity KPIs exact in ClickHouse.

Layers: ``domain`` (pure: fact mapping, buckets, KPI plan, reference), ``adapters`` (ClickHouse,
Kafka, faust consumer), ``pipeline`` (the batch algorithm), ``app`` (faust wiring), ``cli``.
"""
