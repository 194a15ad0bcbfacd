"""Media pipelines (extra ``treadle[media]``: PyAV): probe, thumbnails, renditions
(H.264/AAC MP4), HLS and audio, as a durable workflow over artifacts (ADR 0014).

>>> from treadle.media import submit
>>> handle = submit(app, "talk.mov", renditions="360p,720p", thumbnails=4, hls=True)
>>> handle.wait(600).result["renditions"]["720p"]    # doctest: +SKIP

``treadle media process INPUT``, ``POST /v1/media`` and this function all start the
workflow ``treadle.media.process``; see docs/artifacts-and-media.md.
"""

from treadle.media.pipeline import WORKFLOW, budget_for, check_request, register, submit

__all__ = ["WORKFLOW", "budget_for", "check_request", "register", "submit"]
