"""IDX reader, dataset search, verified download, synthetic data."""

import gzip
import hashlib
import io

import numpy as np
import pytest
import torch

import fa_lib as F
from fa_lib import data as D


def _idx_bytes(array: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.int32: 0x0C}[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write_fake_dataset(folder, n_train=12, n_test=5, compress=True):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for stem, array in arrays.items():
        raw = _idx_bytes(array)
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    arrays = _write_fake_dataset(tmp_path, compress=compress)
    suffix = ".gz" if compress else ""
    np.testing.assert_array_equal(F.load_idx(tmp_path / f"train-images-idx3-ubyte{suffix}"), arrays["train-images-idx3-ubyte"])
    ints = np.arange(6, dtype=np.int32).reshape(2, 3) - 3
    (tmp_path / "ints").write_bytes(_idx_bytes(ints))
    np.testing.assert_array_equal(F.load_idx(tmp_path / "ints"), ints)


def test_truncated_and_wrong_magic_files_fail_clearly(tmp_path):
    raw = _idx_bytes(np.zeros((3, 4, 4), np.uint8))
    (tmp_path / "short").write_bytes(raw[:-5])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        F.load_idx(tmp_path / "short")
    (tmp_path / "magic").write_bytes(b"\x12\x34" + raw[2:])
    with pytest.raises(ValueError, match="bad magic"):
        F.load_idx(tmp_path / "magic")
    (tmp_path / "header").write_bytes(raw[:9])
    with pytest.raises(ValueError, match="truncated IDX header"):
        F.load_idx(tmp_path / "header")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(raw)[:-10])
    with pytest.raises(ValueError, match="cannot read"):
        F.load_idx(tmp_path / "broken.gz")


def test_search_order_and_loading_from_fa_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dirs = F.search_dirs("mnist")
    assert dirs[0] == tmp_path / "data" / "mnist" and dirs[1] == tmp_path / "cache" / "fa-repro" / "mnist"
    arrays = _write_fake_dataset(tmp_path / "data" / "mnist", compress=False)
    assert F.resolve_dataset("auto") == "mnist"
    data = F.load_dataset("auto", n_train=10)
    assert data.name == "mnist" and data.title == "MNIST" and data.x_train.shape == (10, 784) and data.x_test.shape == (5, 784)
    np.testing.assert_array_equal(data.y_train.numpy(), arrays["train-labels-idx1-ubyte"][:10])
    assert data.y_train.dtype == torch.int64
    assert abs(float(data.x_train.mean())) < 0.2  # standardised with the training subset's statistics
    assert set(data.sha256) == {f"{s}" for s in arrays}


def test_missing_dataset_error_lists_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("FA_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(D, "search_dirs", lambda name: [tmp_path / "nothing" / name, tmp_path / "cache" / name])
    with pytest.raises(FileNotFoundError) as info:
        F.load_dataset("mnist")
    message = str(info.value)
    assert str(tmp_path / "nothing" / "mnist") in message and "download_dataset" in message
    with pytest.raises(ValueError, match="dataset='cifar'"):
        F.load_dataset("cifar")


class _Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_verifies_sha256(tmp_path, monkeypatch):
    payloads = {stem: gzip.compress(stem.encode()) for stem in D.DATASETS["mnist"]["sha256"]}
    good = {stem: hashlib.sha256(p).hexdigest() for stem, p in payloads.items()}
    monkeypatch.setitem(D.DATASETS, "mnist", {"mirrors": ["http://mirror/"], "sha256": good})
    monkeypatch.setattr(D.urllib.request, "urlopen", lambda url, timeout: _Response(payloads[url.rsplit("/", 1)[1][:-3]]))
    dest = F.download_dataset("mnist", tmp_path / "ok")
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{s}.gz" for s in payloads)
    bad = dict(good, **{"t10k-labels-idx1-ubyte": "0" * 64})
    monkeypatch.setitem(D.DATASETS, "mnist", {"mirrors": ["http://mirror/"], "sha256": bad})
    with pytest.raises(OSError, match="SHA-256"):
        F.download_dataset("mnist", tmp_path / "bad")
    assert not (tmp_path / "bad" / "t10k-labels-idx1-ubyte.gz").exists()


def test_synthetic_data_is_seeded():
    x1, y1 = F.teacher_data(7, [5, 4, 2], [0, 1], activation="relu")
    x2, y2 = F.teacher_data(7, [5, 4, 2], [1], activation="relu")
    assert x1.shape == (2, 7, 5) and y1.shape == (2, 7, 2)
    torch.testing.assert_close(x1[1:], x2)
    torch.testing.assert_close(y1[1:], y2)
    with pytest.raises(ValueError, match="n=0"):
        F.gaussian_inputs(0, 3, [0])


def test_noisy_subset_is_seeded_restricted_and_flips_exactly_the_noise_fraction():
    x = torch.arange(300, dtype=torch.float64).reshape(100, 3)
    y = torch.arange(100) % 5
    xs, ys, flipped = F.noisy_subset(x, y, 40, n_classes=3, noise=0.25, seed=7)
    assert xs.shape == (40, 3) and ys.shape == (40,) and flipped.sum() == 10
    original = y[(xs[:, 0] / 3).long()]  # row i of x is [3i, 3i+1, 3i+2]
    assert (original < 3).all() and (ys < 3).all()
    assert torch.equal(ys != original, flipped)  # every flipped label changed, no other did
    assert len(set(xs[:, 0].tolist())) == 40  # without replacement
    again = F.noisy_subset(x, y, 40, n_classes=3, noise=0.25, seed=7)
    assert torch.equal(again[0], xs) and torch.equal(again[1], ys)
    assert not torch.equal(F.noisy_subset(x, y, 40, n_classes=3, noise=0.25, seed=8)[0], xs)


@pytest.mark.parametrize("kwargs,match", [
    (dict(n=0), "n=0"), (dict(n=100), "n=100 exceeds"), (dict(n_classes=1), "n_classes=1"),
    (dict(n_classes=6), "n_classes=6 exceeds"), (dict(noise=1.0), "noise=1.0"), (dict(noise=-0.1), "noise=-0.1"),
])
def test_noisy_subset_rejects_bad_arguments(kwargs, match):
    x, y = torch.zeros(100, 3), torch.arange(100) % 5
    args = dict(n=10, n_classes=3, noise=0.2, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        F.noisy_subset(x, y, args.pop("n"), **args)
