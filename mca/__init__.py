"""Multi-Context Attention pose network (Chu et al., CVPR 2017).

Torch-free on import: joint sets, configs and the heatmap codec work with numpy
alone; ``create_model`` imports PyTorch when called.
"""

from __future__ import annotations

from mca.config import MCAConfig, get_config, list_models, register_config
from mca.joints import COCO17, JOINT_SETS, MPII16, JointSet, get_joint_set
from mca.registry import create_model

__all__ = [
    "MCAConfig", "get_config", "list_models", "register_config", "create_model",
    "JointSet", "MPII16", "COCO17", "JOINT_SETS", "get_joint_set",
]
__version__ = "0.1.0"
