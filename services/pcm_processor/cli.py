"""`pcm-processor`: run the stream processor worker, or show which KPIs it computes.

pcm-processor worker   # create topics and tables if missing, serve /metrics, consume
pcm-processor plan     # KPIs per fact domain, and those the stream leaves to others
pcm-processor recompute --from 2026-01-01   # every stored KPI since then, under the catalogue
                                            # in force (after a catalogue change)
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import logging

import faust
from pcm_common.catalogues import Catalogues, load_catalogues
from pcm_common.clickhouse.client import connect
from pcm_common.clickhouse.migrate import migrate
from pcm_common.kafka.admin import ensure_topics
from pcm_common.logging import configure_logging, get_logger
from pcm_common.metrics import serve_metrics
from tenacity import Retrying, stop_after_delay, wait_exponential

from pcm_processor.app import build_app
from pcm_processor.domain.kpis import build_plan
from pcm_processor.domain.registry import derived_for, fact_domain
from pcm_processor.recompute import recompute
from pcm_processor.settings import ProcessorSettings, load_processor_settings

log = get_logger(__name__)
_PREPARE_TIMEOUT_S = 300
_FAUST_LEVELS = {"CRITICAL": "crit", "ERROR": "error", "WARNING": "warn", "DEBUG": "debug"}


def prepare(settings: ProcessorSettings) -> None:
    """Topics and tables must exist before consuming; wait (bounded) for Kafka and ClickHouse."""
    for attempt in Retrying(
        wait=wait_exponential(multiplier=0.5, max=10),
        stop=stop_after_delay(_PREPARE_TIMEOUT_S),
        reraise=True,
    ):
        with attempt:
            ensure_topics(
                settings.kafka_bootstrap, settings.topic_prefix, settings.kafka_replication_factor
            )
            client = connect(settings, database="default")
            try:
                migrate(client, settings.clickhouse_database)
            finally:
                client.disconnect()


def run_worker(settings: ProcessorSettings, catalogues: Catalogues) -> None:
    prepare(settings)
    if settings.processor_metrics_port:
        serve_metrics(settings.processor_metrics_port, settings.metrics_host)
    app = build_app(settings, catalogues)
    tune_garbage_collector(settings.processor_gc_threshold)
    log.info(
        "processor starting",
        domains=settings.domain_names,
        group=settings.group_id,
        database=settings.clickhouse_database,
        metrics_port=settings.processor_metrics_port,
    )
    worker = faust.Worker(
        app,
        loglevel=_FAUST_LEVELS.get(settings.log_level.upper(), "info"),
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,  # keep the platform's structured logging
    )
    worker.execute_from_commandline()


def tune_garbage_collector(threshold: int) -> None:
    """Fewer cyclic collections (``processor_gc_threshold``), none over what start-up made:
    reference counting frees almost everything a flush makes, and the collector's full passes
    cost in proportion to every object held (the KPI states), not to the garbage."""
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(threshold, middle, oldest)


def show_plan(settings: ProcessorSettings, catalogues: Catalogues) -> None:
    shown = [fact_domain(name) for name in settings.domain_names]
    derived = {d.name: d for name in settings.domain_names for d in derived_for(name)}
    shown += list(derived.values())
    for domain in shown:
        plan = build_plan(domain, catalogues)
        print(f"{domain.name}: table {plan.domain.table}, grains {', '.join(plan.grains)}")
        for planned in plan.kpis:
            print(f"  {planned.kpi.code:28} {planned.kpi.unit.value:8} {', '.join(planned.grains)}")
        for code, reason in plan.skipped:
            print(f"  {code:28} not computed: {reason}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pcm-processor", description=__doc__)
    parser.add_argument("command", choices=["worker", "plan", "recompute"])
    parser.add_argument(
        "--from",
        dest="since",
        type=dt.date.fromisoformat,
        help="recompute: every stored KPI of periods from this date (YYYY-MM-DD)",
    )
    args = parser.parse_args(argv)
    if args.command == "recompute" and args.since is None:
        parser.error("recompute needs --from YYYY-MM-DD")
    settings = load_processor_settings()
    configure_logging(settings.log_level, settings.log_json)
    # The driver logs every failed connect with a traceback; the retry loop already reports it.
    logging.getLogger("clickhouse_driver").setLevel(logging.ERROR)
    catalogues = load_catalogues(settings.catalogue_dir)
    if args.command == "plan":
        show_plan(settings, catalogues)
    elif args.command == "recompute":
        prepare(settings)
        done = recompute(settings, catalogues, args.since)
        print(
            f"recomputed {done.keys:,} periods and {done.procedures:,} procedures since "
            f"{args.since} under {catalogues.version_label}"
        )
    else:
        run_worker(settings, catalogues)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
