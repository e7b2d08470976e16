"""What the Snakefile uses that no study owns: the study registry, run configs, code params.

Kept here (not in the .smk files) so they are plain functions that the tests can call.

A study package registers one :class:`Study` from its ``.smk`` file; the shared rules
(``workflow/rules/aggregate.smk``) read the registry through input functions, so the order of
includes does not matter and nothing shared names a study.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import medrepro.studies as pkg
from medrepro.codehash import TEMPLATE_DIR, code_param
from medrepro.train.registry import model_entry


@dataclass(frozen=True)
class PredictionPlot:
    """How to draw a run's predictions on TEST from its per-unit table: ``kind`` is
    ``"confusion"`` (class indices in columns ``truth`` / ``pred``, named by ``classes``, or by
    ``details.classes`` of the run's metrics.json when ``classes`` is empty) or ``"scatter"``
    (predicted against true values). ``what``: what is predicted, in words, for the figure."""

    kind: str
    truth: str = "y_true"
    pred: str = "y_pred"
    classes: tuple[str, ...] = ()
    what: str = ""

    def __post_init__(self):
        if self.kind not in PLOT_KINDS:
            raise ValueError(f"PredictionPlot.kind: {self.kind!r} (expected one of {PLOT_KINDS})")


PLOT_KINDS = ("confusion", "scatter")


@dataclass(frozen=True)
class TrainingRun:
    """One trained run x seed, for its report figures: the training log (``train_log.jsonl``),
    the metrics.json of the standalone evaluation of its selected checkpoint (the selected step,
    class names), and optionally its per-unit TEST table with how to draw it."""

    run: str
    seed: int
    log: str
    metrics: str
    units: str | None = None
    test: PredictionPlot | None = None


def export_src(src: str | Path) -> str:
    """Put ``src`` first on ``PYTHONPATH`` for every job this Snakemake starts, so each job's
    script imports medrepro from the workflow's own tree (the modules its code params hash) in
    a conda env (``--sdm conda``) or a container (``--sdm apptainer``), where medrepro is not
    installed. Returns the new value."""
    import os

    src = str(Path(src).resolve())
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != src]
    os.environ["PYTHONPATH"] = os.pathsep.join([src, *rest])
    return os.environ["PYTHONPATH"]


@dataclass(frozen=True)
class Layout:
    """What a study produces for the aggregation: its metrics.json files (one per run x seed or
    per scored model), extra targets of ``rule all`` (figures, cards), its audit note,
    optionally its own leaderboard table (``section``: Markdown that the leaderboard shows in
    place of the generic ranked table, for a study whose field ranks by other rules) and its
    trained runs (``training``: one learning curve each, and a TEST figure where declared)."""

    metrics: list[str]
    targets: list[str] = field(default_factory=list)
    audit: str | None = None
    section: str | None = None  # a Markdown file that replaces the generic ranked table of the study's section
    training: list[TrainingRun] = field(default_factory=list)


@dataclass(frozen=True)
class Study:
    """A study's contract with the shared machinery.

    ``descriptor``: primary metric (a :mod:`medrepro.metrics.registry` name), direction
    (``higher_is_better``), leaderboard ``columns``, resampling ``unit``, ``chance`` level and
    ``title``; the study's config block may override any key under ``descriptor``.
    ``layout(config, results)`` returns the study's :class:`Layout`. ``cli`` (optional)
    registers the study's subcommands on the ``medrepro`` command line. ``importer`` (optional,
    ``"module:function"``) turns results made outside the pipeline (the study block's
    ``external:`` entries) into the study's metrics; see :mod:`medrepro.external`.
    """

    name: str
    descriptor: dict
    layout: Callable[[dict, str], Layout]
    cli: Callable | None = None
    importer: str | None = None


_REGISTRY: dict[str, Study] = {}


def register(study: Study) -> Study:
    if _REGISTRY.get(study.name, study) is not study:
        raise ValueError(f"study {study.name!r} is registered twice")
    _REGISTRY[study.name] = study
    return study


def registered() -> dict[str, Study]:
    return dict(_REGISTRY)


def discover() -> dict[str, Study]:
    """Every study package under ``medrepro.studies`` (each has ``layout.STUDY``)."""
    found = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.ispkg:
            study = importlib.import_module(f"{pkg.__name__}.{info.name}.layout").STUDY
            found[study.name] = study
    return found


def study_cfg(config: dict, study: str) -> dict:
    return config["studies"][study]


def enabled_studies(config: dict) -> list[str]:
    return [s for s, c in config["studies"].items() if c.get("enabled", True)]


def active_studies(config: dict) -> list[Study]:
    """Registered studies that the config enables, in config order; an enabled study without
    a registered package is an error."""
    unknown = [s for s in enabled_studies(config) if s not in _REGISTRY]
    if unknown:
        raise ValueError(f"config studies {unknown}: no study package registered them; known: {sorted(_REGISTRY)}")
    return [_REGISTRY[s] for s in enabled_studies(config)]


def descriptor(config: dict, study: str) -> dict:
    """The study's descriptor with its config block's ``descriptor`` keys over it."""
    return {**_REGISTRY[study].descriptor, **study_cfg(config, study).get("descriptor", {})}


def layouts(config: dict) -> dict[str, Layout]:
    """Each active study's layout; its metrics include those of its ``external:`` entries."""
    out = {}
    for s in active_studies(config):
        lay = s.layout(config, config["results"])
        figures = [p for f in training_figures(config, s.name, lay.training) for p in (f["curve"], f["test_png"]) if p]
        out[s.name] = Layout(metrics=lay.metrics + external_metrics(config, s.name), targets=lay.targets + figures,
                             audit=lay.audit, section=lay.section, training=lay.training)
    return out


def training_figures(config: dict, study: str, training: list[TrainingRun]) -> list[dict]:
    """The report figures of a study's trained runs, one entry per run x seed: its inputs
    (``log``, ``metrics``, ``units``), what to draw on TEST (``test``, or None) and the figures
    written (``curve``: the learning curve; ``test_png``: the confusion matrix or scatter)."""
    out = []
    for t in training:
        stem = results_path(config, study, "figures", "training", f"{t.run}.seed{t.seed}")
        draw = t.test is not None and t.units is not None
        out.append({"run": t.run, "seed": int(t.seed), "log": t.log, "metrics": t.metrics,
                    "units": t.units if draw else None,
                    "test": {"kind": t.test.kind, "truth": t.test.truth, "pred": t.test.pred,
                             "classes": list(t.test.classes), "what": t.test.what} if draw else None,
                    "curve": f"{stem}.learning_curve.png",
                    "test_png": f"{stem}.{t.test.kind}.png" if draw else None})
    return out


# --- results made outside the pipeline ------------------------------------------------------

def external_entries(config: dict, study: str) -> dict[str, dict]:
    """The study block's ``external:`` entries, name -> {path, data}; an entry is a path (a file
    or a folder, as the study's importer expects) or ``{path: ..., data: real | synthetic}``."""
    entries = study_cfg(config, study).get("external", {}) or {}
    if entries and _REGISTRY.get(study) is not None and _REGISTRY[study].importer is None:
        raise ValueError(f"studies.{study}.external: this study takes no results from outside the pipeline")
    out = {}
    for name, entry in entries.items():
        if not _RUN_NAME.match(str(name)):
            raise ValueError(f"studies.{study}.external: names must be plain identifiers, got {name!r}")
        if name in study_cfg(config, study).get("runs", {}):
            raise ValueError(f"studies.{study}.external.{name}: a run has this name too")
        entry = {"path": entry} if isinstance(entry, str) else dict(entry)
        out[name] = {"path": str(entry["path"]), "data": entry.get("data", "real")}
    return out


def external_dir(config: dict, study: str, name: str) -> str:
    return results_path(config, study, "external", name)


def external_metrics(config: dict, study: str) -> list[str]:
    return [f"{external_dir(config, study, n)}/metrics.json" for n in external_entries(config, study)]


def importer(study: str) -> str:
    imp = _REGISTRY[study].importer
    if imp is None:
        raise ValueError(f"study {study!r} registers no importer")
    return imp


def run_cfg(config: dict, study: str, run: str) -> dict:
    """A run's full training config: the study's train_defaults overridden by the run's keys."""
    sc = study_cfg(config, study)
    if run not in sc["runs"]:
        raise KeyError(f"studies.{study}.runs: no run named {run!r}; known: {sorted(sc['runs'])}")
    merged = {**sc.get("train_defaults", {}), **sc["runs"][run]}
    merged["resources"] = {**sc.get("train_defaults", {}).get("resources", {}), **sc["runs"][run].get("resources", {})}
    init = merged.get("init_from")
    if init is not None and init not in sc["runs"]:
        raise KeyError(f"studies.{study}.runs.{run}.init_from: no run named {init!r}")
    return merged


_RUN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_runs(config: dict, study: str, same_as_init: Iterable[str] = ("model",)) -> None:
    """Plan-time checks of a study's runs, each naming the key: run names are plain
    identifiers, seeds are unique, ``init_from`` names a run, forms no cycle and starts from a
    run with the same ``same_as_init`` keys (e.g. model and input)."""
    runs = study_cfg(config, study).get("runs", {})
    for run in runs:
        key = f"studies.{study}.runs.{run}"
        if not _RUN_NAME.match(str(run)):
            raise ValueError(f"{key}: run names must be plain identifiers (letters, digits, '_'), got {run!r}")
        rc = run_cfg(config, study, run)
        seeds = list(rc.get("seeds", []))
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{key}.seeds: duplicate seeds {seeds}")
        parent = rc.get("init_from")
        if parent is not None:
            prc = run_cfg(config, study, parent)
            for k in same_as_init:
                if prc.get(k) != rc.get(k):
                    raise ValueError(f"{key}.init_from: run {parent!r} has {k} {prc.get(k)!r}, this run {rc.get(k)!r} "
                                     f"(a run can only start from a checkpoint of the same {k})")
        seen = [run]
        while parent is not None:
            if parent in seen:
                raise ValueError(f"{key}.init_from: cycle {' -> '.join(seen + [parent])}")
            seen.append(parent)
            parent = run_cfg(config, study, parent).get("init_from")


def run_seeds(config: dict, study: str) -> list[tuple[str, int]]:
    sc = study_cfg(config, study)
    return [(run, seed) for run in sc["runs"] for seed in run_cfg(config, study, run)["seeds"]]


def init_chain(config: dict, study: str, run: str) -> list[dict]:
    """The run's config, then that of the run it starts from, and so on."""
    chain, current = [], run
    while current is not None:
        if len(chain) > len(study_cfg(config, study)["runs"]):
            raise KeyError(f"studies.{study}.runs.{run}.init_from: cycle")
        rc = run_cfg(config, study, current)
        chain.append(rc)
        current = rc.get("init_from")
    return chain


def init_seed(config: dict, study: str, run: str, seed: int) -> int:
    """The seed of the init_from run to start from: the same seed if it has it, else its first."""
    parent = run_cfg(config, study, run_cfg(config, study, run)["init_from"])
    return seed if seed in parent["seeds"] else parent["seeds"][0]


def run_resource(config: dict, study: str, run: str, key: str, default, attempt: int = 1):
    """A run's resource; runtime and memory grow with the retry attempt. A run's ``slurm_extra``
    is added after ``default`` (the profile's, which asks SLURM for ``--signal``), not in its place."""
    value = run_cfg(config, study, run).get("resources", {}).get(key)
    if key == "slurm_extra":
        return " ".join(v for v in (default, value) if v) or None
    value = default if value is None else value
    return value * attempt if key in ("runtime", "mem_mb") else value


#: Keys of a run's ``resources`` that go to the SLURM executor plugin as they are.
SLURM_KEYS = ("gres", "gpu_model", "constraint", "qos", "slurm_partition", "slurm_extra", "tasks_per_gpu")


def default_resource(workflow, key: str):
    """``key`` of Snakemake's ``--default-resources`` (the profile's), or None. A rule that
    declares a resource replaces the default for every job of the rule, so a rule that takes the
    key from the run must fall back to the default itself. Only constants are known here: a
    quoted or plain string, a number (an expression of the job's attempt or input is not)."""
    defaults = getattr(getattr(workflow, "resource_settings", None), "default_resources", None)
    res = defaults.get(key) if defaults is not None else None
    if res is None:
        return None
    if not res.is_evaluable():
        return res.value
    raw = str(res.raw)
    try:
        value = ast.literal_eval(raw)
    except SyntaxError:  # not a Python expression (gpu:1): Snakemake takes it as a string too
        return raw
    except ValueError:  # an expression: of the job (attempt, input, ...) or of unknown names
        job_names = {"attempt", "input", "threads", "wildcards", "system_tmpdir", "shutil"}
        used = {node.id for node in ast.walk(ast.parse(raw, mode="eval")) if isinstance(node, ast.Name)}
        return None if used & job_names else raw  # unknown names: Snakemake's NameError -> string
    return value if isinstance(value, (str, int)) else None


def slurm_resources(config: dict, study: str, workflow) -> dict:
    """The SLURM plugin's other keys (:data:`SLURM_KEYS`) for a study's training or evaluation
    rule (``resources: ..., **mw.slurm_resources(config, study, workflow)``): the run's value,
    else the profile's default; None (no option) when neither sets it."""
    def resource(key: str):
        return lambda wildcards: run_resource(config, study, wildcards.run, key, default_resource(workflow, key))

    return {key: resource(key) for key in SLURM_KEYS}


def results_path(config: dict, *parts: str) -> str:
    return str(Path(config["results"], *parts))


# --- code params ----------------------------------------------------------------------------

SCRIPTS_DIR = TEMPLATE_DIR.parent / "scripts"


def importer_code(study: str, script: str) -> dict:
    """``code`` param of the shared import rule for ``study``: the script plus its importer."""
    return rule_code(script, [importer(study).split(":", 1)[0]])


def rule_code(script: str, extra: Iterable[str] = (), scripts_dir: Path | None = None,
              template_dir: Path | None = None) -> dict:
    """``code`` param of the rule that runs ``workflow/scripts/<script>``: the static medrepro
    import closure of the script (plus modules ``extra``), the templates it renders, one hash."""
    scripts_dir = Path(scripts_dir) if scripts_dir else SCRIPTS_DIR
    return code_param(scripts_dir / script, script, template_dir, extra)


def model_code(config: dict, study: str, run: str, script: str, **kwargs) -> dict:
    """``code`` param of a training / evaluation job: its script's closure plus exactly the
    modules of its model (and of the models of the runs it starts from)."""
    extra = sorted({model_entry(rc["model"]).module for rc in init_chain(config, study, run)})
    return rule_code(script, extra, **kwargs)

