"""Measuring the pipeline, beside it rather than inside its stages.

- ``python -m realtime.bench``: per-stage latency, end-to-end frames/s, efficiency, roofline, peers, memory
  (:mod:`realtime.bench.stages`).
- ``python -m realtime.bench.real``: this project and its peers (MoveNet, BlazePose) on the same real video.
- ``python -m realtime.bench.evaluate_detector``: person AP50 on held-out synthetic scenes.
- ``python -m realtime.bench.detector_real``: detectors on held-out real people, judged by teachers' keypoints
  (coverage, recall against MoveNet multipose, a threshold sweep) and AP50 on synthetic scenes.
- ``python -m realtime.bench.verify_band``: the pipeline with and without pose-verified boxes under the detector's
  threshold, on held-out real frames.
- ``python -m realtime.bench.evaluate_pipeline``: does the pipeline lose accuracy against the model alone?
- ``python -m realtime.bench.batch``: ``realtime.batch`` (Ray) vs a shell loop of ``realtime.run`` over the same clips.
- :mod:`realtime.bench.peers`: torch-free runners for the peer models.
"""
