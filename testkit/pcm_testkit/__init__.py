"""Test and demo support, kept out of the services' runtime packages.

- ``events``: one builder per event domain of ``pcm_common.domains`` (realistic defaults,
  keyword overrides) and the envelope around it;
- ``generator``: the one seeded synthetic generator (a national dataset for the demo,
  time-ordered Kafka streams for the tests and the benchmark);
- ``processor``, ``kafka``, ``kpis``: run the processor as its own process, produce and read
  topics, wait until it caught up, compare its KPIs with the reference computation;
- ``waiting``: poll a condition with a deadline instead of sleeping a fixed time.

Nothing under ``services/`` imports this package at run time: a deployed image needs none of it.
"""
