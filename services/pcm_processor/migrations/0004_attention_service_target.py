"""Attention facts carry the service's target service time (services.csv
``target_service_minutes``), for SERVICE_WITHIN_TARGET_PCT."""

from pcm_common.clickhouse.migrate import AddColumn

STATEMENTS = [AddColumn("attention_events", "target_service_s", "UInt32")]
