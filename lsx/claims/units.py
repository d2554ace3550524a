"""Independent units and the two disjoint seed sets a reproduction runs on.

A claim's interval is only as honest as its units are independent: a unit is a training seed, a toy
model's trial seed, or a disjoint *set* of training seeds when one job needs several optima. Each
preset declares its unit once (``reproduce.unit``), so a seed list on the command line means the same
thing for every preset — unit indices — and changes what every preset computes; nothing is ignored.

``{key: seed}``: unit u → ``seed=u``. ``{key: optima.seeds, size: 3}``: unit u → the disjoint set
``optima.seeds=[3u, 3u+1, 3u+2]``. ``{key: seed, stride: 2}``: unit u → ``seed=2u``, for jobs that also
train seed+1 (so unit u owns seeds 2u and 2u+1 and shares no model with unit u+1). Seed lists:
``10-15``, ``[10,11,12]`` or ``10,11,12``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

SETS = ("discovery", "replication")
UNIT_KEYS = ("key", "size", "stride", "what")


@dataclass(frozen=True)
class Unit:
    """How a unit index becomes a config value (and so an override)."""

    key: str = "seed"
    size: int = 1
    what: str = ""
    stride: int = 1

    def value(self, u: int) -> int | list[int]:
        return u * self.stride if self.size == 1 else list(range(u * self.size, (u + 1) * self.size))

    def override(self, u: int) -> str:
        v = self.value(u)
        return f"{self.key}={v}" if isinstance(v, int) else f"{self.key}=[{','.join(map(str, v))}]"

    def describe(self) -> str:
        if self.what:
            return self.what
        if self.size > 1:
            return f"a disjoint set of {self.size} training seeds ({self.key})"
        if self.stride > 1:
            k = self.stride
            return f"{self.key} = {k}u (unit u owns {self.key} {k}u ... {k}u+{k - 1})"
        return "a training seed" if self.key == "seed" else f"one value of {self.key}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "size": self.size, "stride": self.stride, "what": self.describe()}


def parse_unit(preset: str, spec: Any) -> Unit:
    """A preset's ``reproduce.unit`` (absent: the training seed) → :class:`Unit`; one-line ValueError otherwise."""
    if spec is None:
        return Unit()
    where = f"preset {preset!r}: reproduce.unit"
    if not isinstance(spec, dict) or not isinstance(spec.get("key"), str) or not spec["key"]:
        raise ValueError(f"{where} must be a mapping like {{key: seed}} or {{key: optima.seeds, size: 3}}, got {spec!r}")
    unknown = sorted(set(spec) - set(UNIT_KEYS))
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; valid: {', '.join(UNIT_KEYS)}")
    size, stride = spec.get("size", 1), spec.get("stride", 1)
    for name, v in (("size", size), ("stride", stride)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{where}.{name} must be a positive integer, got {v!r}")
    if size > 1 and stride > 1:
        raise ValueError(f"{where}: give size (a set of values per unit) or stride (one value every stride), not both")
    return Unit(spec["key"], size, str(spec.get("what") or ""), stride)


def parse_units(text: Any, name: str = "seeds") -> list[int]:
    """``10-15`` / ``[10,11,12]`` / ``10,11,12`` / a YAML list → sorted-as-given unit indices (≥ 0, distinct)."""
    example = f"e.g. {name}=10-15 or {name}=[10,11,12,13,14,15]"
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        s = str(text).strip()
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", s)
        if m:
            a, b = int(m[1]), int(m[2])
            if a > b:
                raise ValueError(f"{name}={s}: a range runs from low to high; {example}")
            return list(range(a, b + 1))
        s = s[1:-1] if s.startswith("[") and s.endswith("]") else s
        items = [p.strip() for p in s.split(",")] if s else []
    try:
        units = [int(str(v)) for v in items]
    except ValueError:
        raise ValueError(f"{name}={text}: not a list of unit indices; {example}") from None
    if not units or any(u < 0 for u in units):
        raise ValueError(f"{name}={text}: needs non-negative unit indices; {example}")
    if len(set(units)) != len(units):
        raise ValueError(f"{name}={text}: lists a unit twice; {example}")
    return units


def next_block(units: Sequence[int]) -> list[int]:
    """The replication set implied by a discovery set alone: the next len(units) indices after its largest."""
    start = max(units) + 1
    return list(range(start, start + len(units)))


def check_sets(where: str, sets: dict[str, list[int]], min_units: int) -> dict[str, list[int]]:
    """Both sets present, each with at least ``min_units`` units, and disjoint (one-line ValueError)."""
    for name in SETS:
        if not sets.get(name):
            raise ValueError(f"{where}: no {name} units; give both, e.g. seeds=0-5 replication=6-11")
        if len(sets[name]) < min_units:
            raise ValueError(
                f"{where}: {len(sets[name])} {name} unit(s) {sets[name]}; a claim needs at least {min_units} "
                f"independent units per set (MIN_UNITS)"
            )
    common = sorted(set(sets["discovery"]) & set(sets["replication"]))
    if common:
        raise ValueError(f"{where}: discovery and replication share unit(s) {common}; the two sets must be disjoint")
    return {name: list(sets[name]) for name in SETS}


def preset_sets(preset: str, spec: Any) -> dict[str, list[int]]:
    """A preset's ``reproduce.seeds`` mapping → {discovery, replication} unit lists (not yet size-checked)."""
    if not isinstance(spec, dict) or set(spec) != set(SETS):
        raise ValueError(
            f"preset {preset!r}: reproduce.seeds must be {{discovery: [...], replication: [...]}} (unit "
            f"indices), got {spec!r}; on the command line use seeds=10-15 replication=16-21"
        )
    return {name: parse_units(spec[name], f"reproduce.seeds.{name}") for name in SETS}


def claim_unit(claim: dict[str, Any]) -> str | None:
    """The unit key a claim's statistic groups by: ``args.unit``, else the statistic's default (``seed``);
    None for a statistic without a ``unit`` argument (it takes one value per job, and each job is one unit)."""
    import inspect

    from .statistics import get_statistic

    param = inspect.signature(get_statistic(str(claim["statistic"]))).parameters.get("unit")
    if param is None:
        return None
    args = claim.get("args") or {}
    return str(args.get("unit", param.default if param.default is not inspect.Parameter.empty else "seed"))


def check_claim_units(preset: str, claims: Sequence[dict[str, Any]], unit: Unit) -> None:
    """Every claim groups by the preset's unit (else its n would count jobs, or merge units): one line if not."""
    for c in claims:
        key = claim_unit(c)
        if key is not None and key != unit.key:
            raise ValueError(
                f"preset {preset!r} claim {c.get('id')!r}: its statistic groups by unit {key!r} but the preset's "
                f"unit is {unit.key!r} (reproduce.unit); set the claim's args.unit: {unit.key} "
                "or change reproduce.unit"
            )
