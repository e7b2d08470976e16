"""The scoliosis study's contract and the paths, inputs and resources of its rules."""

from __future__ import annotations

from pathlib import Path

from medrepro import workflow as mw
from medrepro.train.registry import model_needs

NAME = "scoliosis"
DESCRIPTOR = {
    "title": "Scoliosis screening from gait (Scoliosis1K format)",
    "primary": "macro_f1",
    "higher_is_better": True,
    "columns": ["accuracy", "macro_precision", "macro_recall", "macro_f1"],
    "unit": "test sequence",
    "chance": 0.3333,
}


def study_dir(config: dict) -> str:
    return mw.results_path(config, NAME)


def _cfg(config: dict) -> dict:
    return mw.study_cfg(config, NAME)


def synthetic(config: dict) -> bool:
    return _cfg(config).get("data", {}).get("source", "synthetic") == "synthetic"


def split_file(config: dict, split: str) -> str:
    data = _cfg(config)["data"]
    name = data["splits"][split]
    if synthetic(config):
        return f"{study_dir(config)}/data/synthetic/{name}"
    return str(Path(data["real"]["split_dir"]) / name)


def split_input(config: dict, split: str) -> str:
    """The split file itself for real data; the synthetic folder that holds it otherwise."""
    return f"{study_dir(config)}/data/synthetic" if synthetic(config) else split_file(config, split)


def data_roots(config: dict) -> dict:
    data = _cfg(config).get("data", {})
    if synthetic(config):
        base = f"{study_dir(config)}/data/synthetic"
        return {"pose_root": f"{base}/Scoliosis1K-pose-pkl", "sil_root": f"{base}/Scoliosis1K-sil-pkl"}
    real = data.get("real", {})
    missing = [k for k in ("pose_root", "split_dir") if not real.get(k)]
    if missing:
        raise KeyError(f"studies.scoliosis.data.real: set {missing} when data.source is real")
    return {"pose_root": real["pose_root"], "sil_root": real.get("sil_root")}


def variant_of(input_name: str) -> str | None:
    return input_name.split(".", 1)[1] if input_name.startswith("skeleton_maps.") else None


def run_inputs(config: dict, run: str, seed: int) -> dict:
    """Inputs of a run's training / evaluation job (and of the resume check): the manifest,
    the split, the skeleton maps of its variant, what its model needs, the checkpoint it
    starts from."""
    rc = mw.run_cfg(config, NAME, run)
    d = study_dir(config)
    out = {"manifest": f"{d}/data/manifest.json", "split": f"{d}/splits/{rc['split']}.json"}
    variant = variant_of(rc["input"])
    if variant:
        if variant not in _cfg(config).get("skeleton_maps", {}):
            raise KeyError(f"studies.scoliosis.runs.{run}.input: no skeleton_maps variant named {variant!r}")
        out["prep"] = f"{d}/prep/skeleton_maps/{variant}"
    if "pav" in model_needs(rc["model"]):
        out["pav"] = f"{d}/prep/pav/{rc['split']}/pav.npz"
    if rc.get("init_from"):
        out["init"] = f"{d}/runs/{rc['init_from']}/seed{mw.init_seed(config, NAME, run, seed)}/checkpoint.pt"
    return out


def check_config(config: dict) -> None:
    """Plan-time checks of the study's block, each naming the key (the schema checks types)."""
    mw.check_runs(config, NAME, same_as_init=("model", "input"))
    cfg = _cfg(config)
    splits = cfg.get("data", {}).get("splits", {})
    variants = cfg.get("skeleton_maps", {})
    for run in cfg["runs"]:
        rc = mw.run_cfg(config, NAME, run)
        if rc["split"] not in splits:
            raise ValueError(f"studies.scoliosis.runs.{run}.split: no split {rc['split']!r}; "
                             f"data.splits has {sorted(splits)}")
        variant = variant_of(rc["input"])
        if variant and variant not in variants:
            raise ValueError(f"studies.scoliosis.runs.{run}.input: no skeleton_maps variant {variant!r}; "
                             f"known: {sorted(variants)}")
    check = cfg.get("resume_check", {})
    if check.get("run") is not None and check["run"] not in cfg["runs"]:
        raise ValueError(f"studies.scoliosis.resume_check.run: no run named {check['run']!r}")
    if cfg.get("figure_variant") is not None and cfg["figure_variant"] not in variants:
        raise ValueError(f"studies.scoliosis.figure_variant: no skeleton_maps variant {cfg['figure_variant']!r}")


def audit_inputs(config: dict) -> dict:
    d = study_dir(config)
    cfgs = {r: mw.run_cfg(config, NAME, r) for r in _cfg(config)["runs"]}
    seeds = mw.run_seeds(config, NAME)
    return {
        "metrics": [f"{d}/runs/{r}/seed{s}/metrics.json" for r, s in seeds],
        "summaries": [f"{d}/runs/{r}/seed{s}/train_summary.json" for r, s in seeds],
        "splits": sorted({f"{d}/splits/{c['split']}.json" for c in cfgs.values()}),
        "pav_stats": sorted({f"{d}/prep/pav/{c['split']}/minmax_train.json" for c in cfgs.values()
                             if "pav" in model_needs(c["model"])}),
    }


def training(config: dict) -> list[mw.TrainingRun]:
    """Each run x seed for its report figures: the learning curve, and the confusion matrix of
    the selected checkpoint on TEST (classes named by the evaluation's metrics.json)."""
    d = study_dir(config)
    plot = mw.PredictionPlot("confusion", truth="y_true", pred="y_pred")
    return [mw.TrainingRun(r, s, log=f"{d}/runs/{r}/seed{s}/train_log.jsonl",
                           metrics=f"{d}/runs/{r}/seed{s}/metrics.json", units=f"{d}/runs/{r}/seed{s}/predictions.csv",
                           test=plot)
            for r, s in mw.run_seeds(config, NAME)]


def layout(config: dict, results: str) -> mw.Layout:
    d = study_dir(config)
    return mw.Layout(metrics=audit_inputs(config)["metrics"], targets=[f"{d}/figures/skeleton_maps.png"],
                     audit=f"{results}/audit/{NAME}.md", training=training(config))


STUDY = mw.Study(name=NAME, descriptor=DESCRIPTOR, layout=layout)
