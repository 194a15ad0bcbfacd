"""Media building blocks (extra ``treadle[media]``: PyAV): probe, renditions in
keyframe-aligned segments joined without re-encoding, thumbnails, HLS and audio (ADR 0012).

The pipeline that runs them as a durable workflow (``treadle media process``,
``POST /v1/media``) lands once workflows are on main.
"""
