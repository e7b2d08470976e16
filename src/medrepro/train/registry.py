"""Models and trainers found by name.

A study registers each of its models and trainers here (from its package ``__init__``) as a
``"module:attribute"`` string, so nothing is imported until a job builds one: the code hash of
a training job covers exactly the modules of its own model (see :mod:`medrepro.codehash`).
A model also declares the extra inputs it needs beyond the images (e.g. a per-sequence
feature file), so no rule or trainer has to test model names.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "package.module:attribute"
    needs: tuple[str, ...] = field(default=())

    @property
    def module(self) -> str:
        return self.target.split(":", 1)[0]

    def load(self) -> Any:
        module, attr = self.target.split(":", 1)
        return getattr(importlib.import_module(module), attr)


MODELS: dict[str, Entry] = {}
TRAINERS: dict[str, Entry] = {}


def _add(table: dict[str, Entry], kind: str, name: str, target: str, needs: tuple[str, ...]) -> None:
    if ":" not in target:
        raise ValueError(f"{kind} {name!r}: target {target!r} is not 'module:attribute'")
    entry = Entry(name, target, tuple(needs))
    if table.get(name, entry) != entry:
        raise ValueError(f"{kind} {name!r} is already registered as {table[name].target}")
    table[name] = entry


def register_model(name: str, target: str, needs: tuple[str, ...] = ()) -> None:
    _add(MODELS, "model", name, target, needs)


def register_trainer(name: str, target: str) -> None:
    _add(TRAINERS, "trainer", name, target, ())


def _get(table: dict[str, Entry], kind: str, name: str) -> Entry:
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; expected one of {sorted(table)}")
    return table[name]


def model_entry(name: str) -> Entry:
    return _get(MODELS, "model", name)


def trainer_entry(name: str) -> Entry:
    return _get(TRAINERS, "trainer", name)


def build_model(name: str, **kwargs: Any):
    """An instance of the registered model ``name``."""
    return model_entry(name).load()(**kwargs)


def model_needs(name: str) -> tuple[str, ...]:
    return model_entry(name).needs
