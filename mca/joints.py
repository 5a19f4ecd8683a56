"""Joint sets (names, skeleton edges, left/right flip pairs) in one place.

Training, evaluation, export metadata, flip testing and drawing all read joint
semantics from here, so a joint set is defined exactly once.  Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["JointSet", "MPII16", "COCO17", "JOINT_SETS", "get_joint_set"]


@dataclass(frozen=True)
class JointSet:
    """Names, skeleton edges and left/right pairs of a keypoint convention."""

    name: str
    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]
    flip_pairs: tuple[tuple[int, int], ...]
    flip_index: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        k = len(self.names)
        if len(set(self.names)) != k:
            raise ValueError(f"joint set {self.name!r} has duplicate joint names")
        perm = list(range(k))
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            if not (0 <= a < k and 0 <= b < k) or a == b or a in seen or b in seen:
                raise ValueError(f"joint set {self.name!r}: bad flip pair ({a}, {b})")
            seen.update((a, b))
            perm[a], perm[b] = b, a
        for a, b in self.skeleton:
            if not (0 <= a < k and 0 <= b < k):
                raise ValueError(f"joint set {self.name!r}: bad skeleton edge ({a}, {b})")
        object.__setattr__(self, "flip_index", tuple(perm))

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, joint_name: str) -> int:
        """Index of a joint by name (clear error listing the valid names)."""
        try:
            return self.names.index(joint_name)
        except ValueError:
            raise KeyError(
                f"joint {joint_name!r} is not in {self.name}; valid: {', '.join(self.names)}"
            ) from None


# MPII order as in the released annotations (0-based).
MPII16 = JointSet(
    name="mpii16",
    names=(
        "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
        "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder",
        "l_elbow", "l_wrist",
    ),
    skeleton=(
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
        (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15),
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
)

# COCO keypoint order.
COCO17 = JointSet(
    name="coco17",
    names=(
        "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow",
        "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle",
        "r_ankle",
    ),
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
        (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4),
        (3, 5), (4, 6),
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
)

JOINT_SETS: dict[str, JointSet] = {js.name: js for js in (MPII16, COCO17)}


def get_joint_set(name: str) -> JointSet:
    """Look a joint set up by name; the error lists the valid names."""
    try:
        return JOINT_SETS[name]
    except KeyError:
        raise KeyError(
            f"unknown joint set {name!r}; valid: {', '.join(sorted(JOINT_SETS))}"
        ) from None
