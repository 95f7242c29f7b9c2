"""KPI values say whether their sample is big enough to rank on, and which catalogue computed them.

``insufficient_sample``: fewer observations than the KPI's ``min_sample`` (catalogues/kpis.yaml);
the value is kept (an entity sees its own) but never used to rank. ``catalogue_version``: the
versions of the catalogue files the value was computed under, so a recomputation after a
catalogue change is traceable.
"""

from pcm_common.clickhouse.migrate import AddColumn

STATEMENTS = [
    AddColumn("kpi_values", "insufficient_sample", "UInt8 DEFAULT 0"),
    AddColumn("kpi_values", "catalogue_version", "String DEFAULT ''"),
]
