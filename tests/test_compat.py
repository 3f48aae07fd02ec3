import subprocess
import sys
import types

import pytest

from labkit import compat

PROBE = """
import json, importlib
ok = True
try:
    import torchvision
except RuntimeError as error:
    ok = False
print(json.dumps(ok))
"""


def _fresh(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).stdout.strip()


def test_guard_makes_transforms_models_and_datasets_work_in_a_fresh_process():
    out = _fresh("""
import torch, json
from labkit import compat
tv = compat.import_torchvision()
from torchvision.transforms import v2
import torchvision.models, torchvision.datasets
crop = v2.RandomCrop(8, padding=1)(torch.rand(1, 8, 8))
net = torchvision.models.resnet18(num_classes=3).eval()
print(json.dumps([list(crop.shape), net(torch.rand(1, 3, 32, 32)).shape[1], compat.guard_was_needed()]))
""")
    shape, classes, guarded = __import__("json").loads(out.splitlines()[-1])
    assert shape == [1, 8, 8] and classes == 3
    plain_import_works = _fresh(PROBE).splitlines()[-1] == "true"
    assert guarded is (not plain_import_works)  # the guard acts exactly when the plain import fails


def test_guard_does_nothing_when_torchvision_imports(monkeypatch):
    fake = types.ModuleType("torchvision")
    monkeypatch.setattr(compat.importlib, "import_module", lambda name: fake)
    monkeypatch.setattr(compat, "_declared", [])
    assert compat.import_torchvision() is fake and not compat.guard_was_needed()


def test_other_import_errors_are_not_hidden(monkeypatch):
    def failing(name):
        raise RuntimeError("CUDA driver exploded")

    monkeypatch.setattr(compat.importlib, "import_module", failing)
    monkeypatch.setattr(compat, "_declared", [])
    with pytest.raises(RuntimeError, match="CUDA driver exploded"):
        compat.import_torchvision()
