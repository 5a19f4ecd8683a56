"""Detector and model metadata in ONNX ``metadata_props`` (what the realtime pipeline reads), torch-free.

Lives in ``engines`` so the exporter needs nothing from ``realtime`` (layers point one way:
``mca`` <- ``engines`` <- ``calibration``/``realtime``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from engines.base import ModelError

__all__ = ["DETECTOR_FAMILY_NAMES", "set_metadata", "add_detector_metadata"]

# The families realtime.detectors decodes out of the box (its registry can add more).
DETECTOR_FAMILY_NAMES = ("yolo", "ssd", "ssd_decoded")


def set_metadata(model_proto: Any, meta: dict[str, str]) -> None:
    """Replace/insert ``metadata_props`` keys of an in-memory ONNX model."""
    keep = [p for p in model_proto.metadata_props if p.key not in meta]
    del model_proto.metadata_props[:]
    for p in keep:
        model_proto.metadata_props.add(key=p.key, value=p.value)
    for k, v in meta.items():
        model_proto.metadata_props.add(key=k, value=str(v))


def add_detector_metadata(path: str | Path, family: str, input_size: int, person_class: int,
                          source: str = "", extra: dict[str, str] | None = None,
                          class_names: list[str] | None = None, families: Iterable[str] | None = None) -> Path:
    """Stamp any detector ONNX with the metadata the realtime pipeline reads (family, size, classes).

    ``families``: the valid family names (default :data:`DETECTOR_FAMILY_NAMES`; a runtime with more
    families registered passes its own, e.g. ``realtime.detectors.DETECTOR_FAMILIES``).
    """
    import onnx

    valid = tuple(families) if families is not None else DETECTOR_FAMILY_NAMES
    if family not in valid:
        raise ValueError(f"unknown detector family {family!r}; valid: {', '.join(valid)}")
    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise ModelError(f"{path} is not an ONNX file ({type(e).__name__})") from None
    meta = {"mca.kind": "detector", "mca.detector_family": family, "mca.input_size": str(int(input_size)),
            "mca.person_class": str(int(person_class)), "mca.source": source or path.name, **(extra or {})}
    if class_names is not None:
        if not 0 <= person_class < len(class_names):
            raise ValueError(f"person class {person_class} is not one of the {len(class_names)} class names")
        meta["mca.class_names"] = json.dumps([str(c) for c in class_names])
    set_metadata(proto, meta)
    onnx.save(proto, str(path))
    return path
