"""Offline means offline: with an empty, a partial or a damaged dataset folder, `labkit run`, `data list`,
`info` and every notebook's first cells attempt no network connection (an audit hook watches sockets and
urllib); a damaged file gets one line naming it, its expected md5 and the command that fetches it again.
Only `labkit data download NAME` may try the network (mocked here).
"""
import gzip
import hashlib
import socket
import struct
import sys
import urllib.request
from pathlib import Path

import jupytext
import numpy as np
import pytest

from labkit import cli, data
from labkit.errors import DataCorruptError, DataMissingError

ROOT = Path(__file__).resolve().parent.parent
NETWORK_EVENTS = {"socket.connect", "socket.connect_ex", "socket.getaddrinfo", "socket.gethostbyname",
                  "socket.gethostbyname_ex", "socket.gethostbyaddr", "socket.sendto", "urllib.Request",
                  "http.client.connect"}
_watch = {"armed": False, "attempts": []}


def _audit(event: str, args) -> None:
    if not _watch["armed"] or event not in NETWORK_EVENTS:
        return
    if event.startswith("socket.connect") and getattr(args[0], "family", None) not in (socket.AF_INET,
                                                                                         socket.AF_INET6):
        return  # local (unix) sockets are not the network
    _watch["attempts"].append((event, repr(args)[:120]))
    raise ConnectionRefusedError(f"test: network access attempted ({event})")


sys.addaudithook(_audit)  # audit hooks cannot be removed; this one acts only while a test arms it


@pytest.fixture
def no_network():
    """Arms the audit hook for the test; fails it if anything tried to reach the network."""
    _watch["attempts"].clear()
    _watch["armed"] = True
    yield _watch["attempts"]
    _watch["armed"] = False
    assert not _watch["attempts"], f"network access attempted: {_watch['attempts']}"


def test_the_watch_catches_a_real_attempt():
    _watch["attempts"].clear()
    _watch["armed"] = True
    try:
        with pytest.raises(OSError):
            urllib.request.urlopen("http://192.0.2.1/mnist.gz", timeout=1)  # TEST-NET: never routed
        assert _watch["attempts"] and _watch["attempts"][0][0] == "urllib.Request"
    finally:
        _watch["armed"] = False
        _watch["attempts"].clear()


def _idx_gz(array: np.ndarray) -> bytes:
    magic = {1: 0x0801, 3: 0x0803}[array.ndim]
    raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", n) for n in array.shape) + array.astype(np.uint8).tobytes()
    return gzip.compress(raw, mtime=0)


FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


def fake_archives(root: Path, name: str) -> dict[str, bytes]:
    """Small valid MNIST-format .gz archives for `name` under root (not the real files: their md5s differ)."""
    rng = np.random.default_rng(0)
    blobs = {}
    for prefix, n in (("train", 12), ("t10k", 5)):
        blobs[f"{prefix}-images-idx3-ubyte.gz"] = _idx_gz(rng.integers(0, 256, (n, 28, 28)))
        blobs[f"{prefix}-labels-idx1-ubyte.gz"] = _idx_gz(rng.integers(0, 10, n))
    raw = root / FOLDERS[name] / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for file_name, blob in blobs.items():
        (raw / file_name).write_bytes(blob)
    return blobs


def make_folder(root: Path, kind: str, name: str = "mnist") -> Path:
    """An `empty` folder, a `partial` one (a download cut short: the first archive half written, the others
    absent) or a `corrupt` one (every archive random bytes)."""
    raw = root / FOLDERS[name] / "raw"
    if kind == "empty":
        root.mkdir(exist_ok=True)
    elif kind == "partial":
        blobs = fake_archives(root, name)
        first, *others = blobs
        (raw / first).write_bytes(blobs[first][:len(blobs[first]) // 2])
        for file_name in others:
            (raw / file_name).unlink()
    elif kind == "corrupt":
        raw.mkdir(parents=True)
        for file_name, _ in data.archive_checksums(name):
            (raw / file_name).write_bytes(np.random.default_rng(1).bytes(300))
    return root


@pytest.fixture(autouse=True)
def fresh_memo():
    data._load_full.cache_clear()
    yield
    data._load_full.cache_clear()


KINDS = ("empty", "partial", "corrupt")


def expected_fragment(kind: str, name: str, root: Path) -> str:
    if kind == "empty":
        return f"{name} is not in {root}: run `labkit data download {name}`"
    md5 = dict(data.archive_checksums(name))["train-images-idx3-ubyte.gz"]
    return f"expected {md5}): run `labkit data download {name}` to fetch it again"


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("kind", KINDS)
def test_run_with_a_missing_or_damaged_dataset_is_one_line_and_offline(capsys, tmp_path, tmp_cache, monkeypatch,
                                                                        no_network, kind, name):
    root = make_folder(tmp_path / "data", kind, name)
    monkeypatch.setenv("LABKIT_DATA_DIR", str(root))
    assert cli.main(["run", "badnets", "--set", f"dataset={name}", "epochs=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert expected_fragment(kind, name, root) in err
    if kind != "empty":
        assert f"{root / FOLDERS[name] / 'raw' / 'train-images-idx3-ubyte.gz'} is damaged (md5 " in err


@pytest.mark.parametrize("kind", KINDS)
def test_data_list_and_info_stay_offline(capsys, tmp_path, monkeypatch, no_network, kind):
    root = make_folder(tmp_path / "data", kind)
    monkeypatch.setenv("LABKIT_DATA_DIR", str(root))
    assert cli.main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    mnist_line = next(line for line in listing.splitlines() if line.startswith("mnist "))
    assert ("missing" if kind == "empty" else "damaged") in mnist_line
    if kind != "empty":
        assert "labkit data download mnist" in mnist_line
    assert cli.main(["info"]) == 0
    info = capsys.readouterr().out
    assert str(root) in info and str(root / "cache") in info  # LABKIT_DATA_DIR moves the cache too


NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def first_cells(path: Path, count: int = 3) -> list[str]:
    """The parameter cell and the code cells after it (the first `count` code cells)."""
    cells = [c.source for c in jupytext.read(path).cells if c.cell_type == "code"]
    return cells[:count]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebooks_first_cells_stop_with_the_fix_and_stay_offline(tmp_path, tmp_cache, monkeypatch, no_network,
                                                                     notebook, kind):
    root = make_folder(tmp_path / "data", kind)
    monkeypatch.setenv("LABKIT_DATA_DIR", str(root))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(notebook.parent)
    parameters, *rest = first_cells(notebook)
    namespace: dict = {}
    exec(compile(parameters, f"{notebook.name}:parameters", "exec"), namespace)
    namespace["DATASET"] = namespace["DATASET"].replace("digits", "mnist")  # "digits-1-7" → "mnist-1-7"
    with pytest.raises(DataMissingError) as error:
        for index, source in enumerate(rest):
            exec(compile(source, f"{notebook.name}:cell{index + 1}", "exec"), namespace)
    assert "labkit data download mnist" in str(error.value) and "\n" not in str(error.value)


def test_verified_archives_are_unpacked_offline_and_load(tmp_path, monkeypatch, no_network):
    root = tmp_path / "data"
    blobs = fake_archives(root, "mnist")
    monkeypatch.setattr(data, "archive_checksums",
                        lambda name: [(n, hashlib.md5(b).hexdigest()) for n, b in blobs.items()])
    monkeypatch.setenv("LABKIT_DATA_DIR", str(root))
    ds = data.load("mnist")
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    raw = root / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted([*blobs, *(Path(n).stem for n in blobs)])  # no leftovers
    assert data.status("mnist") == ("present", "")


def test_a_damaged_unpacked_file_names_the_fix(tmp_path, monkeypatch, no_network):
    root = tmp_path / "data"
    blobs = fake_archives(root, "mnist")
    raw = root / "MNIST" / "raw"
    for file_name, blob in blobs.items():
        (raw / Path(file_name).stem).write_bytes(gzip.decompress(blob)[:40])  # unpacked, but cut short
    monkeypatch.setenv("LABKIT_DATA_DIR", str(root))
    with pytest.raises(DataCorruptError, match="mnist in .* is damaged .*: delete its files and run `labkit data "
                                               "download mnist`") as error:
        data.load("mnist")
    assert "\n" not in str(error.value)


def test_only_data_download_tries_the_network(capsys, tmp_path, monkeypatch):
    """With urlopen mocked (no real connection), `data download` is the one command that asks for a file,
    and a failure is one line without torchvision's multi-line text."""
    asked = []

    def refuse(request, *args, **kwargs):
        asked.append(getattr(request, "full_url", request))
        raise urllib.error.URLError("offline (mocked)\nsecond line\nthird line")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    root = make_folder(tmp_path / "data", "corrupt")
    monkeypatch.setenv("LABKIT_DATA_DIR", str(root))
    for args in (["data", "list"], ["info"], ["run", "badnets", "--set", "dataset=mnist"]):
        cli.main(args)
    assert asked == []
    capsys.readouterr()
    assert cli.main(["data", "download", "mnist"]) == 2
    err = capsys.readouterr().err
    assert asked and all("train-images-idx3-ubyte.gz" in str(url) for url in asked[:1])
    assert err.count("\n") == 1 and "could not download mnist" in err and "second line" not in err
