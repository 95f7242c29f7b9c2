"""`pcm-benchmark assess`: assess and rank every entity on a period's KPIs and reported
indicators (PCM_BENCHMARK_MONTH, default the last complete month; PCM_BENCHMARK_GRAIN QUARTER or
YEAR assesses the quarter or year holding it, on its months so far) and write the results.
`pcm-benchmark web`: the dashboard of the results (PCM_BENCHMARK_WEB_ADDRESS).
`pcm-benchmark export`: a month's results as open data (PCM_BENCHMARK_EXPORT_MONTH, default the
newest assessed) in PCM_BENCHMARK_EXPORT_DIR/<YYYY-MM>/.
`pcm-benchmark work`: keep the results within a minute of the KPIs (reassess, publish).
`pcm-benchmark serve`: the BenchmarkService, gRPC (PCM_BENCHMARK_ADDRESS): results by role,
the peer view, improvement plans."""

from __future__ import annotations

from pcm_common.startup import service_main

from pcm_benchmark.job import run
from pcm_benchmark.open_data_export import export
from pcm_benchmark.server import run as serve_grpc
from pcm_benchmark.settings import BenchmarkSettings
from pcm_benchmark.worker import run_worker


def web(settings: BenchmarkSettings) -> None:
    from pcm_benchmark.web.app import serve  # aiohttp and Jinja2 only for this command

    serve(settings)


def main(argv: list[str] | None = None) -> int:
    return service_main(
        "pcm-benchmark",
        __doc__,
        BenchmarkSettings,
        {"assess": run, "web": web, "export": export, "serve": serve_grpc, "work": run_worker},
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
