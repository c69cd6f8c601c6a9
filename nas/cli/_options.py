"""A command's options checked before it works: one rule per option, and one error naming the
option, the value given and what is allowed (a bad value found after an hour of search loses the
hour).

Each command lists its rules (``SEARCH``, ``PIPELINE``, ...) as data: a dotted key and a rule.
A rule is a small function returning what is allowed when the value breaks it, else None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from nas.errors import HwnasError
from nas.tables import METRICS

__all__ = ["OptionError", "check_constraints", "check_options", "safe_name"]

Rule = Callable[[Any], "str | None"]


class OptionError(HwnasError, ValueError):
    """An option whose value is not allowed (the message names both and what is)."""


def whole(minimum: int) -> Rule:
    def rule(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        return None if ok else f"a whole number >= {minimum}"

    return rule


def number(*, minimum: float | None = None, above: float | None = None) -> Rule:
    allowed = (
        "a finite number"
        + (f" >= {minimum}" if minimum is not None else "")
        + (f" > {above}" if above is not None else "")
    )

    def rule(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return allowed
        if (minimum is not None and value < minimum) or (above is not None and value <= above):
            return allowed
        return None

    return rule


def optional(inner: Rule) -> Rule:
    def rule(value: Any) -> str | None:
        broken = None if value is None else inner(value)
        return None if broken is None else f"null or {broken}"

    return rule


def each(inner: Rule) -> Rule:
    def rule(value: Any) -> str | None:
        if not isinstance(value, list | tuple | ListConfig):
            return f"a list, each {inner(object())}"
        broken = next((inner(v) for v in value if inner(v) is not None), None)
        return None if broken is None else f"a list, each {broken}"

    return rule


def one_of(*choices: str) -> Rule:
    def rule(value: Any) -> str | None:
        return None if isinstance(value, str) and value in choices else f"one of {', '.join(choices)}"

    return rule


def one_or_list(inner: Rule) -> Rule:
    """``inner``'s value, or a non-empty list of such values."""

    def rule(value: Any) -> str | None:
        values = list(value) if isinstance(value, list | tuple | ListConfig) else [value]
        ok = values and all(inner(v) is None for v in values)
        return None if ok else f"{inner(object())}, or a list of them"

    return rule


#: The characters of a name that becomes a folder name: no separators, nothing a shell or a URL
#: mangles (and no '..'); ``${hwnas.safe_name:}`` replaces every other one.
SAFE_CHARACTERS = "A-Za-z0-9._+-"
_SAFE = re.compile(rf"[A-Za-z0-9][{SAFE_CHARACTERS}]{{0,99}}")


def name(value: Any) -> str | None:
    ok = isinstance(value, str) and _SAFE.fullmatch(value) is not None and ".." not in value
    return None if ok else "a name of letters, digits, '.', '_', '+' and '-' (it names folders: no '/', no '..')"


def safe_name(option: str, value: Any) -> str:
    """``value`` when it is safe as a folder name, else :class:`OptionError` naming ``option``."""
    broken = name(value)
    if broken is not None:
        raise OptionError(f"{option}={value!r}: expected {broken}")
    return value


def check_options(cfg: DictConfig, rules: Mapping[str, Rule]) -> None:
    """Every option in ``rules`` that ``cfg`` holds, checked; the first bad one raises
    :class:`OptionError`."""
    for key, rule in rules.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT:
            continue
        plain = OmegaConf.to_object(value) if isinstance(value, DictConfig | ListConfig) else value
        broken = rule(plain)
        if broken is not None:
            raise OptionError(f"{key}={plain!r}: expected {broken}")


def check_constraints(constraints: Mapping[str, Any] | None) -> None:
    """Each constraint's bounds: finite numbers, at least one, ``lower <= upper``."""
    for metric, bounds in (constraints or {}).items():
        if not isinstance(bounds, Mapping):  # a DictConfig is one too
            raise OptionError(f"constraints.{metric}={bounds!r}: expected upper=<x> or lower=<x> (or both)")
        unknown = sorted(str(k) for k in bounds if k not in ("lower", "upper", "bound"))
        if unknown:
            raise OptionError(
                f"constraints.{metric}: unknown setting(s) {unknown}; a constraint has lower, upper and bound"
            )
        given = {side: bounds.get(side) for side in ("lower", "upper") if bounds.get(side) is not None}
        if not given:
            raise OptionError(f"constraints.{metric}: give upper=<x> or lower=<x> (or both)")
        for side, value in given.items():
            broken = number()(value)
            if broken is not None:
                raise OptionError(f"constraints.{metric}.{side}={value!r}: expected {broken}")
        if len(given) == 2 and given["lower"] > given["upper"]:
            raise OptionError(
                f"constraints.{metric}: lower={given['lower']} is above upper={given['upper']}; nothing is feasible"
            )


_ABSENT = object()

_BUDGET = {"budget.n_trials": whole(1), "budget.timeout_s": optional(number(above=0))}
_FRONT = {"reference_point": optional(each(number())), "regret_budgets": optional(each(whole(1)))}
_COMMON = {"seed": whole(0), "torch_threads": whole(1)}

SEARCH: dict[str, Rule] = {
    **_COMMON,
    **_BUDGET,
    **_FRONT,
    "worker": whole(0),
    "tensorboard_figure_every": whole(1),
    "space.name": name,
    "device.name": name,
    "deployment.name": name,
    "export.opset": whole(7),
    "export.int8_min_agreement": number(minimum=0),
}
PIPELINE: dict[str, Rule] = {
    **SEARCH,
    "n_profile": whole(2),
    "max_rounds": whole(1),
    "hv_tolerance": number(minimum=0),
    "fit.n_train": optional(whole(1)),
}
FIT: dict[str, Rule] = {
    **_COMMON,
    "metric": one_of(*METRICS),
    "source_metric": one_or_list(one_of(*METRICS)),
    "n_train": optional(whole(1)),
    "n_source": whole(1),
    "space.name": name,
    "device.name": name,
}
SCORE: dict[str, Rule] = {**_COMMON, "n_archs": whole(1), "proxy_data.batch_size": whole(1), "space.name": name}
TRAIN_SUPERNET: dict[str, Rule] = {
    **_COMMON,
    "epochs": whole(1),
    "batch_size": whole(1),
    "optimizer.lr": number(above=0),
    "optimizer.momentum": number(minimum=0),
    "optimizer.weight_decay": number(minimum=0),
    "evaluation.archs": whole(0),
    "evaluation.bn_batches": whole(1),
    "evaluation.batch_size": whole(1),
    "num_workers": whole(0),
}
EXPORT: dict[str, Rule] = {
    "k": whole(1),
    "int8_min_agreement": number(minimum=0),
    "bn_batches": whole(1),
    "seed": whole(0),
    "opset": whole(7),
    "batches": each(whole(1)),
    "parity_rtol": number(minimum=0),
    "parity_atol": number(minimum=0),
    "measure.threads": whole(1),
    "measure.warmup": whole(0),
    "measure.repeats": whole(1),
}
