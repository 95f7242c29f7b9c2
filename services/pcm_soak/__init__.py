"""The fault soak (issue 14): sustained load through every push service while processes are
killed with ``kill -9`` and Kafka, ClickHouse and PostgreSQL go away, then a check that every
accepted item is stored exactly once, nothing refused is stored, nothing is lost, and every KPI
and benchmark assessment equals its recomputation.

Runs on a stack and a platform of its own (every port shifted, ``--offset``), never on the
default ones. ``python -m pcm_soak --short`` is the variant CI runs; ``make soak`` the full one.

Modules: ``stack`` (the private stack), ``workload`` and ``load`` (what is sent, pushed by one
thread per stream), ``ledger`` (what was sent and answered), ``faults`` (the schedule and its
runner), ``settle`` (waiting for workers, processor and benchmark), ``verify`` (stores, KPIs,
assessments against the ledger), ``report`` (the summary), ``run`` (the whole soak).
"""
