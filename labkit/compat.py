"""Importing torchvision on a CPU-only torch.

PyPI's torchvision 0.28.0 is a CUDA build. With the CPU build of torch its compiled
extension cannot load, and `import torchvision` then fails with
`RuntimeError: operator torchvision::nms does not exist` (pytorch/vision#9085): the
package registers fake kernels for `nms`/`qnms` whose schemas only the extension defines.
labkit uses no compiled torchvision op, so declaring those two schemas with
`torch.library` before importing is enough: transforms, models and datasets then work.
On a machine where torchvision imports normally this guard does nothing.
"""
from __future__ import annotations

import importlib
import sys

import torch

MISSING_OP_MESSAGE = "operator torchvision::nms does not exist"
# The schemas torchvision's C++ extension would have defined (torchvision/csrc/ops/nms.cpp).
_MISSING_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_declared: list = []  # keeps the torch.library.Library alive; non-empty once the guard has acted


def guard_was_needed() -> bool:
    """True when this process had to declare the missing schemas."""
    return bool(_declared)


def _forget_partial_import() -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]


def import_torchvision():
    """Import and return torchvision, declaring the missing operator schemas only if needed."""
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as error:
        if MISSING_OP_MESSAGE not in str(error) or _declared:
            raise
    _forget_partial_import()
    library = torch.library.Library("torchvision", "DEF")
    for schema in _MISSING_SCHEMAS:
        library.define(schema)
    _declared.append(library)
    return importlib.import_module("torchvision")


def transforms_v2():
    """`torchvision.transforms.v2`, imported through the guard."""
    import_torchvision()
    return importlib.import_module("torchvision.transforms.v2")
