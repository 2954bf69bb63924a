"""Argument checks shared by the library and the notebooks.

Every check raises ``ValueError`` naming the parameter and what was allowed, so bad
input fails before any computation starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

PROFILES = ("ci", "default", "paper")

T = TypeVar("T")


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``; else raise naming ``name``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; expected one of {list(allowed)}")
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Return ``value`` if it is an int (not a bool) at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r} must be an integer")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    return value


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as float if it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise ValueError(f"{name}={value!r} must be a finite number > 0")
    return float(value)


def select_profile(profile: str, configs: Mapping[str, T]) -> T:
    """Return ``configs[profile]`` after checking ``profile`` is one of :data:`PROFILES`."""
    check_choice("profile", profile, PROFILES)
    missing = [p for p in PROFILES if p not in configs]
    if missing:
        raise ValueError(f"configs has no entry for profile(s) {missing}; expected keys {list(PROFILES)}")
    return configs[profile]


def check_parameters(*, profile: str, seed: Any, results_dir: Any, device: str = "cpu") -> None:
    """Validate the parameters every notebook shares (``profile``, ``seed``, ``results_dir``, ``device``)."""
    check_choice("profile", profile, PROFILES)
    check_int("seed", seed, minimum=0)
    if not isinstance(results_dir, str) or not results_dir:
        raise ValueError(f"results_dir={results_dir!r} must be a non-empty path string")
    if not isinstance(device, str) or device.split(":")[0] not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={device!r} is not allowed; expected 'cpu', 'cuda', 'cuda:N' or 'mps'")
