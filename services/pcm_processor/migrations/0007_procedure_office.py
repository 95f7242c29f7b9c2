"""Procedure stages carry the office (sede) that handles them: its region's non-working days
apply to the legal term (catalogues/offices.csv)."""

from pcm_common.clickhouse.migrate import AddColumn

STATEMENTS = [AddColumn("procedure_stage_events", "office_id", "String")]
