"""Pure domain of the processor: facts, time buckets, KPI plans and the reference (no I/O)."""
