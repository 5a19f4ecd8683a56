"""Many videos at once on Ray: ``python -m realtime.batch INPUTS... --out DIR`` (``mca-pose-batch``).

Each video runs through the same pipeline as ``python -m realtime.run`` on a long-lived
worker actor that loaded the models once; ``DIR/manifest.jsonl`` records every video as it
finishes so a rerun resumes.  Ray is the optional ``cluster`` extra: importing this package
does not import Ray, and the realtime runtime never needs it.

Modules: :mod:`~realtime.batch.inputs` (expanding inputs, naming outputs),
:mod:`~realtime.batch.manifest`, :mod:`~realtime.batch.worker` (one video, Ray-free),
:mod:`~realtime.batch.runner` (the actor pool), :mod:`~realtime.batch.cli`.
"""

from realtime.batch.cli import build_parser, main

__all__ = ["build_parser", "main"]
