import struct

import numpy as np
import pytest
import torch

from labkit import data
from labkit.errors import DataMissingError, LabkitError


def test_digits_are_nchw_floats_in_unit_range():
    ds = data.load("digits")
    assert ds.x_train.shape[1:] == (1, 16, 16) and ds.x_train.dtype == torch.float32
    assert ds.x_train.min() >= 0 and ds.x_train.max() <= 1
    assert ds.y_train.dtype == torch.int64 and set(ds.y_train.tolist()) == set(range(10))
    assert len(ds.y_train) + len(ds.y_test) == 1797 and ds.num_classes == 10
    raw = data.load("digits", image_size=8)
    assert raw.image_shape == (1, 8, 8)


def test_subsample_is_deterministic_and_bounded():
    ds = data.load("digits")
    small = data.subsample(ds, 100, 50)
    assert len(small.y_train) == 100 and len(small.y_test) == 50
    assert torch.equal(small.x_train, data.subsample(ds, 100, 50).x_train)
    assert data.subsample(ds, None, None) == ds


def test_binary_pair_gives_plus_minus_one_labels():
    x_train, y_train, x_test, y_test = data.binary_pair(data.load("digits", image_size=8), 1, 7)
    assert x_train.shape[1] == 64 and set(np.unique(y_train)) == {-1.0, 1.0}
    assert len(x_test) == len(y_test) > 0


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(LabkitError, match="digits, mnist, fashion-mnist, cifar10, gtsrb"):
        data.load("imagenet")


def test_missing_files_name_the_download_command_and_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path))
    with pytest.raises(DataMissingError) as error:
        data.load("mnist")
    assert "labkit data download mnist" in str(error.value) and str(tmp_path) in str(error.value)
    assert not data.is_present("fashion-mnist")


def _write_idx(path, array: np.ndarray) -> None:
    """The MNIST on-disk format (big-endian idx) torchvision reads."""
    magic = {1: 0x0801, 3: 0x0803}[array.ndim]
    with open(path, "wb") as stream:
        stream.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape))
        stream.write(array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_format_files_load(tmp_path, monkeypatch, name, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n))
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path))
    data._load_full.cache_clear()
    ds = data.load(name)
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    assert ds.x_train.max() <= 1 and ds.x_train.dtype == torch.float32
    expected = np.fromfile(raw / "train-images-idx3-ubyte", dtype=np.uint8)[16:16 + 784].reshape(28, 28) / 255
    assert np.allclose(ds.x_train[0, 0].numpy(), expected, atol=1e-6)
    assert data.is_present(name)
    data._load_full.cache_clear()


def test_gtsrb_folder_format_loads_resized(tmp_path, monkeypatch):
    from PIL import Image

    base = tmp_path / "gtsrb"
    for cls in (0, 1):
        folder = base / "GTSRB" / "Training" / f"{cls:05d}"
        folder.mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (30 + i, 34), (200 * cls, 10, 50)).save(folder / f"{i}.ppm")
    test_images = base / "GTSRB" / "Final_Test" / "Images"
    test_images.mkdir(parents=True)
    Image.new("RGB", (40, 40), (255, 0, 0)).save(test_images / "00000.ppm")
    (base / "GT-final_test.csv").write_text("Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
                                            "00000.ppm;40;40;0;0;40;40;1\n")
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path))
    data._load_full.cache_clear()
    ds = data.load("gtsrb")
    assert ds.x_train.shape == (4, 3, 32, 32) and ds.y_train.tolist() == [0, 0, 1, 1]
    assert ds.x_test.shape == (1, 3, 32, 32) and ds.num_classes == 43
    assert torch.allclose(ds.x_test[0, 0], torch.ones(32, 32), atol=1e-3)
    assert (base / "labkit-32x32.pt").exists()  # converted once, read back with weights_only
    data._load_full.cache_clear()
    assert torch.equal(data.load("gtsrb").x_train, ds.x_train)
    data._load_full.cache_clear()


def test_untouched_sample_skips_the_excluded_and_repeats_with_its_seed():
    exclude = torch.arange(0, 100, 3)
    pick = data.untouched_sample(100, 20, seed=4, exclude=exclude)
    assert len(pick) == 20 and len(set(pick.tolist())) == 20
    assert not set(pick.tolist()) & set(exclude.tolist())
    assert torch.equal(pick, data.untouched_sample(100, 20, seed=4, exclude=exclude))
    assert not torch.equal(pick, data.untouched_sample(100, 20, seed=5, exclude=exclude))
    everything = data.untouched_sample(10, 10, seed=0)
    assert torch.equal(everything, torch.randperm(10, generator=torch.Generator().manual_seed(0)))
