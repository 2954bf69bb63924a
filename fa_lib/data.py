"""Data: seeded synthetic inputs and teachers, and an offline-first IDX reader.

MNIST-format files (``train-images-idx3-ubyte`` etc., gzipped or not) are looked for in
``$FA_DATA_DIR/<name>``, the user cache ``$XDG_CACHE_HOME/fa-repro/<name>`` (default
``~/.cache/fa-repro/<name>``) and ``/usr/share/datasets/<name>`` (Debian's
``dataset-fashion-mnist``). Nothing is downloaded unless asked (:func:`download_dataset`);
a download is verified against the SHA-256 of the canonical files.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .networks import forward, init_weights, seeded_generator, seeded_normal
from .validation import check_choice, check_int

Tensor = torch.Tensor

SPLITS = ("train", "test")
_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
# Each data set's title (as the book names it), mirrors and SHA-256 of the canonical gzipped files (as served by the mirrors).
DATASETS: dict[str, dict] = {
    "mnist": {
        "title": "MNIST",
        "mirrors": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"],
        "sha256": {
            "train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
    },
    "fashion-mnist": {
        "title": "Fashion-MNIST",
        "mirrors": ["https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"],
        "sha256": {
            "train-images-idx3-ubyte": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
    },
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


# --------------------------------------------------------------------------- synthetic
def gaussian_inputs(
    n: int, d: int, seeds: Sequence[int], *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> Tensor:
    """``x ~ N(0, I_d)``: ``(S, n, d)``, drawn from each seed's "data" stream."""
    check_int("n", n, minimum=1)
    check_int("d", d, minimum=1)
    return seeded_normal([(n, d)], seeds, [1.0], stream="data", dtype=dtype, device=device)[0]


def teacher_data(
    n: int,
    widths: Sequence[int],
    seeds: Sequence[int],
    *,
    activation: str,
    std: float | str | Sequence[float] = 1.0,
    layer_scales: Sequence[float] | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> tuple[Tensor, Tensor]:
    """Gaussian inputs ``(S, n, widths[0])`` and the outputs ``(S, n, widths[-1])`` of a random
    teacher network (weights from each seed's "teacher" stream). A one-layer linear
    teacher gives ``y = X theta*``."""
    x = gaussian_inputs(n, widths[0], seeds, dtype=dtype, device=device)
    teacher = init_weights(widths, seeds, std=std, dtype=dtype, device=device, stream="teacher")
    return x, forward(teacher, x, activation, layer_scales=layer_scales).output


# --------------------------------------------------------------------------- IDX files
def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a numpy array, checking header and length."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX payload has {len(raw) - header} bytes; header {shape} needs {expected} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def search_dirs(name: str) -> list[Path]:
    """Where :func:`find_dataset` looks for ``name``, in order."""
    check_choice("name", name, DATASETS)
    dirs = []
    if os.environ.get("FA_DATA_DIR"):
        dirs.append(Path(os.environ["FA_DATA_DIR"]) / name)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    dirs += [cache / "fa-repro" / name, Path("/usr/share/datasets") / name]
    return dirs


def _file_in(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def find_dataset(name: str) -> Path | None:
    """The first search directory holding all four files of ``name``, or ``None``."""
    for directory in search_dirs(name):
        if all(_file_in(directory, stem) for stem in _FILES.values()):
            return directory
    return None


def download_dataset(name: str, dest: str | os.PathLike | None = None, *, timeout: float = 60.0) -> Path:
    """Download ``name``'s four gzipped files into ``dest`` (default: the user cache),
    verifying each SHA-256 before it is moved into place. Raises ``OSError`` if offline."""
    check_choice("name", name, DATASETS)
    spec = DATASETS[name]
    dest = Path(dest) if dest is not None else search_dirs(name)[-2]
    dest.mkdir(parents=True, exist_ok=True)
    for stem, sha in spec["sha256"].items():
        target = dest / f"{stem}.gz"
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == sha:
            continue
        errors = []
        for mirror in spec["mirrors"]:
            try:
                with urllib.request.urlopen(mirror + f"{stem}.gz", timeout=timeout) as response:
                    payload = response.read()
            except OSError as exc:
                errors.append(f"{mirror}: {exc}")
                continue
            digest = hashlib.sha256(payload).hexdigest()
            if digest != sha:
                errors.append(f"{mirror}: SHA-256 {digest} != expected {sha}")
                continue
            with tempfile.NamedTemporaryFile(dir=dest, delete=False) as handle:
                handle.write(payload)
            shutil.move(handle.name, target)
            break
        else:
            raise OSError(f"could not download {stem}.gz of {name}: " + "; ".join(errors))
    return dest


def dataset_sha256(directory: Path) -> dict[str, str]:
    """SHA-256 of each data file actually read (recorded in provenance)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for stem in _FILES.values() if (p := _file_in(directory, stem))}


def missing_dataset_message(name: str) -> str:
    looked = "\n".join(f"  - {d}" for d in search_dirs(name))
    return (
        f"dataset {name!r} not found. Looked for its four IDX files ({', '.join(_FILES.values())}, "
        f"optionally .gz) in:\n{looked}\n"
        f"Get them with fa_lib.download_dataset({name!r}) (needs internet; verifies SHA-256), "
        f"copy them into one of those folders, or point $FA_DATA_DIR at a folder holding {name}/."
        + ("\nOn Debian: apt-get install dataset-fashion-mnist." if name == "fashion-mnist" else "")
    )


@dataclass
class ClassificationData:
    """A standardised image-classification split pair: ``x_*`` float ``(N, 784)``, ``y_*`` int64 ``(N,)``."""

    name: str
    directory: Path
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    sha256: dict[str, str]

    @property
    def title(self) -> str:
        """The data set's name as the book writes it ("MNIST", "Fashion-MNIST")."""
        return DATASETS[self.name]["title"]


def resolve_dataset(name: str = "auto") -> str:
    """``"auto"`` -> MNIST where its files are present, else Fashion-MNIST; else ``name``."""
    check_choice("dataset", name, ("auto", *DATASETS))
    if name != "auto":
        return name
    return "mnist" if find_dataset("mnist") is not None else "fashion-mnist"


def load_dataset(
    name: str = "auto",
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    download: bool = False,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> ClassificationData:
    """Load MNIST or Fashion-MNIST (``"auto"``: MNIST if present), flattened, scaled to
    [0, 1] and standardised with the training set's pixel mean and sd. ``n_train`` /
    ``n_test`` keep the first samples of each split."""
    name = resolve_dataset(name)
    for arg, value in (("n_train", n_train), ("n_test", n_test)):
        if value is not None:
            check_int(arg, value, minimum=1)
    directory = find_dataset(name)
    if directory is None and download:
        directory = download_dataset(name)
    if directory is None:
        raise FileNotFoundError(missing_dataset_message(name))
    arrays = {key: load_idx(_file_in(directory, stem)) for key, stem in _FILES.items()}
    for split in SPLITS:
        images, labels = arrays[(split, "images")], arrays[(split, "labels")]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match")
        if labels.max() > 9:
            raise ValueError(f"{directory}: {split} labels exceed 9")
    train_x = arrays[("train", "images")][:n_train].reshape(-1, 784).astype(np.float64) / 255.0
    test_x = arrays[("test", "images")][:n_test].reshape(-1, 784).astype(np.float64) / 255.0
    mean, sd = train_x.mean(), train_x.std()

    def tensor(a: np.ndarray) -> Tensor:
        return torch.as_tensor((a - mean) / sd, dtype=dtype, device=device)

    return ClassificationData(
        name=name,
        directory=directory,
        x_train=tensor(train_x),
        y_train=torch.as_tensor(arrays[("train", "labels")][:n_train].astype(np.int64), device=device),
        x_test=tensor(test_x),
        y_test=torch.as_tensor(arrays[("test", "labels")][:n_test].astype(np.int64), device=device),
        sha256=dataset_sha256(directory),
    )


def noisy_subset(
    x: Tensor, y: Tensor, n: int, *, n_classes: int, noise: float, seed: int
) -> tuple[Tensor, Tensor, Tensor]:
    """A random ``n``-sample subset of the classes ``0..n_classes-1``, with label noise.

    ``x``: ``(N, d)``, ``y``: ``(N,)`` int64. Draws ``n`` samples without replacement among those
    with ``y < n_classes``, then gives ``round(noise * n)`` of them, chosen at random, a label
    drawn uniformly among the *other* classes (all from ``seed``'s "subset" stream). Returns
    ``(x_sub (n, d), noisy labels (n,), flipped (n,) bool)``.
    """
    check_int("n", n, minimum=1)
    check_int("n_classes", n_classes, minimum=2)
    check_int("seed", seed, minimum=0)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0.0 <= noise < 1.0:
        raise ValueError(f"noise={noise!r} must be a fraction in [0, 1)")
    if x.dim() != 2 or y.shape != (x.shape[0],) or y.dtype != torch.int64:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} {y.dtype} must be (N, d) and int64 (N,)")
    if n_classes > int(y.max()) + 1:
        raise ValueError(f"n_classes={n_classes} exceeds the {int(y.max()) + 1} classes of y")
    pool = (y < n_classes).nonzero().squeeze(-1)
    if n > len(pool):
        raise ValueError(f"n={n} exceeds the {len(pool)} samples of classes 0..{n_classes - 1}")
    gen = seeded_generator(seed, "subset")
    chosen = pool[torch.randperm(len(pool), generator=gen)[:n].to(pool.device)]
    labels = y[chosen].clone()
    flipped = torch.zeros(n, dtype=torch.bool, device=y.device)
    flip = torch.randperm(n, generator=gen)[: round(noise * n)].to(y.device)
    shift = torch.randint(1, n_classes, (len(flip),), generator=gen).to(y.device)  # another class, uniformly
    labels[flip] = (labels[flip] + shift) % n_classes
    flipped[flip] = True
    return x[chosen], labels, flipped
