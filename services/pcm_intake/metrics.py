"""The intake's metrics: the push kit's set under the ``pcm_intake`` prefix, nothing else."""

from __future__ import annotations

from pcm_common.push import PushMetrics

METRICS = PushMetrics.declare("pcm_intake")
