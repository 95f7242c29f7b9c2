"""Fact tables with 256 rows per index mark instead of 8,192.

Why: the incremental KPI engine reads, at each flush, only the facts of the subjects (tickets,
procedures, complaints, survey collections and responses) the batch touched, by their sorting
key prefix (entity_id, month_start, subject). With 8,192-row granules one entity's month of
facts fits in one or two granules, so touching every entity (a national batch does) read every
fact of the month; with 256-row granules a subject costs about one small granule. The price:
32 times more index marks (about 1.3 million for a year of national attention facts, a few tens
of MB of primary key in the server's memory).

ClickHouse cannot change a table's granularity in place: ``Regranulate`` copies each table into
a new one and swaps them (see its docstring; rows written meanwhile are copied after the swap).
On a large history this takes a while: 20 million facts in 36 s on a 2-core machine (about
10 minutes for a year of national attention facts), and the table's disk twice until it ends.
"""

from pcm_common.clickhouse.migrate import Regranulate

FACT_GRANULARITY = 256

STATEMENTS = [
    Regranulate(table, FACT_GRANULARITY)
    for table in (
        "attention_events",
        "procedure_stage_events",
        "complaint_events",
        "survey_collection_events",
        "survey_response_events",
    )
]
