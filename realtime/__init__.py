"""Real-time multi-person pose estimation: ``python -m realtime.run``.

Torch-free (numpy, OpenCV, ONNX Runtime or TensorRT, PyAV).  Stages, each a class
with one verb, pass checked dataclasses (:mod:`realtime.types`):
:class:`~realtime.sources.VideoSource` -> :class:`~realtime.detectors.PersonDetector` ->
:class:`~realtime.pose.Cropper` -> :class:`~realtime.pose.PoseEstimator` ->
:class:`~realtime.tracking.Tracker` -> :class:`~realtime.tracking.Smoother` ->
:class:`~realtime.draw.Renderer` -> sinks (:mod:`realtime.sinks`), run in threads by
:class:`~realtime.pipeline.Pipeline`.
"""
