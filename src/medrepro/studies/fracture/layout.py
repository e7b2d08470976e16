"""The fracture study's contract and the paths, inputs and checks of its rules."""

from __future__ import annotations

from medrepro import workflow as mw

NAME = "fracture"
#: The challenge's columns; ``roc_auc`` / ``ap`` are each run's own presence score's.
COLUMNS = ["dice_pos", "iou_pos", "roc_auc", "ap", "precision_pos", "recall_pos"]
DESCRIPTOR = {
    "title": "Fracture segmentation and presence on radiographs (challenge rules)",
    "primary": "dice_pos",
    "higher_is_better": True,
    "columns": COLUMNS,
    "unit": "test image",
}


def study_dir(config: dict) -> str:
    return mw.results_path(config, NAME)


def _cfg(config: dict) -> dict:
    return mw.study_cfg(config, NAME)


def synthetic(config: dict) -> bool:
    return _cfg(config).get("data", {}).get("source", "synthetic") == "synthetic"


def data_inputs(config: dict) -> dict:
    """What the manifest job reads: the synthetic folder, or the real layout's files."""
    if synthetic(config):
        return {"data": f"{study_dir(config)}/data/synthetic"}
    real = _cfg(config).get("data", {}).get("real", {}) or {}
    layout = real.get("layout", "spec")
    keys = ("csv", "image_dir", "mask_dir") if layout == "spec" else ("root",)
    missing = [k for k in keys if not real.get(k)]
    if missing:
        raise KeyError(f"studies.fracture.data.real: set {missing} for layout {layout!r}")
    return {k: real[k] for k in keys}


def data_params(config: dict) -> dict:
    if synthetic(config):
        base = f"{study_dir(config)}/data/synthetic"
        return {"layout": "spec", "csv": f"{base}/labels.csv", "image_dir": f"{base}/images",
                "mask_dir": f"{base}/masks"}
    real = dict(_cfg(config).get("data", {}).get("real", {}) or {})
    return {"layout": real.get("layout", "spec"), **{k: v for k, v in real.items() if k != "layout"},
            "masks_out": f"{study_dir(config)}/data/fracatlas_masks"}


def run_inputs(config: dict, run: str, seed: int) -> dict:
    rc = mw.run_cfg(config, NAME, run)
    d = study_dir(config)
    out = {"prep": f"{d}/prep/{rc['input']}"}
    if rc.get("init_from"):
        out["init"] = f"{d}/runs/{rc['init_from']}/seed{mw.init_seed(config, NAME, run, seed)}/checkpoint.pt"
    return out


def check_config(config: dict) -> None:
    mw.check_runs(config, NAME, same_as_init=("model", "input"))
    cfg = _cfg(config)
    variants = cfg.get("preprocessing", {})
    for run in cfg["runs"]:
        rc = mw.run_cfg(config, NAME, run)
        if rc["input"] not in variants:
            raise ValueError(f"studies.fracture.runs.{run}.input: no preprocessing variant {rc['input']!r}; "
                             f"known: {sorted(variants)}")
    ref = cfg.get("reference")
    known = set(cfg["runs"]) | set(cfg.get("external", {}) or {})
    if ref is not None and ref not in known and "/" not in str(ref):
        raise ValueError(f"studies.fracture.reference: {ref!r} is neither a run nor an external entry "
                         f"(nor a run inside an external folder, written entry/run); known: {sorted(known)}")


def metrics_paths(config: dict) -> list[str]:
    d = study_dir(config)
    return [f"{d}/runs/{r}/seed{s}/metrics.json" for r, s in mw.run_seeds(config, NAME)]


def challenge_inputs(config: dict) -> dict:
    d = study_dir(config)
    return {"metrics": metrics_paths(config), "external": mw.external_metrics(config, NAME),
            "per_image": [f"{d}/runs/{r}/seed{s}/per_image.csv" for r, s in mw.run_seeds(config, NAME)]}


def training(config: dict) -> list[mw.TrainingRun]:
    """Each run x seed for its report figures: the learning curve, and the confusion matrix of
    the presence call (``present``: the saved presence threshold) against the label on TEST."""
    d = study_dir(config)
    plot = mw.PredictionPlot("confusion", truth="label", pred="present", classes=("no fracture", "fracture"),
                             what="presence call at the saved presence threshold")
    return [mw.TrainingRun(r, s, log=f"{d}/runs/{r}/seed{s}/train_log.jsonl",
                           metrics=f"{d}/runs/{r}/seed{s}/metrics.json", units=f"{d}/runs/{r}/seed{s}/per_image.csv",
                           test=plot)
            for r, s in mw.run_seeds(config, NAME)]


def layout(config: dict, results: str) -> mw.Layout:
    d = study_dir(config)
    return mw.Layout(metrics=metrics_paths(config), targets=[f"{d}/challenge.csv"],
                     audit=f"{results}/audit/{NAME}.md", section=f"{d}/challenge.md", training=training(config))


def _cli(subparsers):
    from medrepro.studies.fracture.cli import register

    return register(subparsers)


STUDY = mw.Study(name=NAME, descriptor=DESCRIPTOR, layout=layout, cli=_cli,
                 importer="medrepro.studies.fracture.external:import_results")
