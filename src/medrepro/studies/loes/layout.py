"""The loes study's contract and the paths, inputs and checks of its rules."""

from __future__ import annotations

from medrepro import workflow as mw

NAME = "loes"
DESCRIPTOR = {
    "title": "Loes-score regression from brain MRI (reference lab's CSV + NIfTI layout)",
    "primary": "standardized_rmse",
    "higher_is_better": False,
    "columns": ["standardized_rmse", "rmse", "mae", "pearson_r", "spearman_rho", "r2"],
    "unit": "test subject",
    # a model that always predicts the mean of the test scores has standardized RMSE ~1
    "chance": 1.0,
}


def study_dir(config: dict) -> str:
    return mw.results_path(config, NAME)


def _cfg(config: dict) -> dict:
    return mw.study_cfg(config, NAME)


def synthetic(config: dict) -> bool:
    return _cfg(config).get("data", {}).get("source", "synthetic") == "synthetic"


def data_paths(config: dict) -> dict:
    """CSV, image folder and file pattern of the cohort (the synthetic folder's, or real)."""
    from medrepro.studies.loes.data import DEFAULT_PATTERN

    data = _cfg(config).get("data", {})
    if synthetic(config):
        base = f"{study_dir(config)}/data/synthetic"
        return {"csv": f"{base}/loes.csv", "image_dir": f"{base}/images", "pattern": DEFAULT_PATTERN}
    real = data.get("real", {}) or {}
    missing = [k for k in ("csv", "image_dir") if not real.get(k)]
    if missing:
        raise KeyError(f"studies.loes.data.real: set {missing} when data.source is real")
    return {"csv": real["csv"], "image_dir": real["image_dir"], "pattern": real.get("pattern") or DEFAULT_PATTERN}


def variant(config: dict, name: str) -> dict:
    variants = _cfg(config).get("normalization", {})
    if name not in variants:
        raise KeyError(f"studies.loes.normalization: no variant named {name!r}; known: {sorted(variants)}")
    return dict(variants[name])


def norm_params(config: dict, name: str) -> dict:
    """The variant's NormParams keys (``fit_split`` is the workflow's, not a parameter)."""
    return {k: v for k, v in variant(config, name).items() if k != "fit_split"}


def is_nyul(config: dict, name: str) -> bool:
    return variant(config, name).get("intensity", "zscore") == "nyul"


def landmarks_path(config: dict, name: str) -> str:
    return f"{study_dir(config)}/prep/{name}.nyul_landmarks.json"


def nyul_inputs(config: dict, name: str) -> dict:
    d = study_dir(config)
    return {"manifest": f"{d}/data/manifest.json", "split": f"{d}/splits/{variant(config, name)['fit_split']}.json"}


def normalize_inputs(config: dict, name: str) -> dict:
    out = {"manifest": f"{study_dir(config)}/data/manifest.json"}
    if is_nyul(config, name):
        out["landmarks"] = landmarks_path(config, name)
    return out


def run_inputs(config: dict, run: str, seed: int) -> dict:
    rc = mw.run_cfg(config, NAME, run)
    d = study_dir(config)
    out = {"manifest": f"{d}/data/manifest.json", "split": f"{d}/splits/{rc['split']}.json",
           "prep": f"{d}/prep/{rc['input']}"}
    if rc.get("init_from"):
        out["init"] = f"{d}/runs/{rc['init_from']}/seed{mw.init_seed(config, NAME, run, seed)}/checkpoint.pt"
    return out


def run_dir(config: dict, run: str, seed: int) -> str:
    return f"{study_dir(config)}/runs/{run}/seed{seed}"


def card_inputs(config: dict, run: str) -> dict:
    """A run's card: its first seed's evaluation (and that of the run named in compare_to)."""
    rc = mw.run_cfg(config, NAME, run)
    seed = rc["seeds"][0]
    out = {"metrics": f"{run_dir(config, run, seed)}/metrics.json",
           "predictions": f"{run_dir(config, run, seed)}/predictions.csv",
           "summary": f"{run_dir(config, run, seed)}/train_summary.json"}
    other = rc.get("compare_to")
    if other:
        out["previous"] = f"{run_dir(config, other, mw.run_cfg(config, NAME, other)['seeds'][0])}/predictions.csv"
    return out


def cards_dir(config: dict) -> str:
    return mw.results_path(config, "cards", NAME)


def check_config(config: dict) -> None:
    """Plan-time checks of the study's block, each naming the key (the schema checks types)."""
    mw.check_runs(config, NAME, same_as_init=("model", "input"))
    cfg = _cfg(config)
    splits = cfg.get("splits", {})
    variants = cfg.get("normalization", {})
    for name, v in variants.items():
        key = f"studies.loes.normalization.{name}"
        if v.get("intensity", "zscore") == "nyul":
            if v.get("fit_split") not in splits:
                raise ValueError(f"{key}.fit_split: a nyul variant fits its landmarks on the TRAIN subjects of a "
                                 f"split; got {v.get('fit_split')!r}, splits: {sorted(splits)}")
        elif "fit_split" in v:
            raise ValueError(f"{key}.fit_split: only a nyul variant fits anything (intensity is "
                             f"{v.get('intensity', 'zscore')!r})")
    runs = cfg.get("runs", {})
    for run in runs:
        rc = mw.run_cfg(config, NAME, run)
        key = f"studies.loes.runs.{run}"
        if rc["split"] not in splits:
            raise ValueError(f"{key}.split: no split {rc['split']!r}; splits has {sorted(splits)}")
        if rc["input"] not in variants:
            raise ValueError(f"{key}.input: no normalization variant {rc['input']!r}; known: {sorted(variants)}")
        fit = variants[rc["input"]].get("fit_split")
        if fit is not None and fit != rc["split"]:
            raise ValueError(f"{key}.input: variant {rc['input']!r} fits its Nyul landmarks on split {fit!r}, "
                             f"whose training subjects may be in this run's test set (split {rc['split']!r}): "
                             "use a variant fitted on the run's own split")
        other = rc.get("compare_to")
        if other is not None and (other not in runs or other == run):
            raise ValueError(f"{key}.compare_to: expected another run of studies.loes.runs, got {other!r}")


def used_variants(config: dict) -> list[str]:
    return sorted({mw.run_cfg(config, NAME, r)["input"] for r in _cfg(config).get("runs", {})})


def audit_inputs(config: dict) -> dict:
    d = study_dir(config)
    seeds = mw.run_seeds(config, NAME)
    cfgs = {r: mw.run_cfg(config, NAME, r) for r in _cfg(config)["runs"]}
    variants = used_variants(config)
    return {
        "metrics": [f"{d}/runs/{r}/seed{s}/metrics.json" for r, s in seeds],
        "summaries": [f"{d}/runs/{r}/seed{s}/train_summary.json" for r, s in seeds],
        "splits": sorted({f"{d}/splits/{c['split']}.json" for c in cfgs.values()}),
        "landmarks": [landmarks_path(config, v) for v in variants if is_nyul(config, v)],
        "cards": [f"{cards_dir(config)}/{r}.json" for r in cfgs],
        "manifest": f"{d}/data/manifest.json",
    }


def training(config: dict) -> list[mw.TrainingRun]:
    """Each run x seed for its report figures: the learning curve, and predicted against true
    Loes score of the selected checkpoint on TEST (a regression: no confusion matrix)."""
    plot = mw.PredictionPlot("scatter", truth="y_true", pred="y_pred", what="Loes score")
    return [mw.TrainingRun(r, s, log=f"{run_dir(config, r, s)}/train_log.jsonl",
                           metrics=f"{run_dir(config, r, s)}/metrics.json",
                           units=f"{run_dir(config, r, s)}/predictions.csv", test=plot)
            for r, s in mw.run_seeds(config, NAME)]


def layout(config: dict, results: str) -> mw.Layout:
    d = study_dir(config)
    targets = [f"{d}/prep/{v}.png" for v in used_variants(config)]
    targets += [f"{cards_dir(config)}/{r}.md" for r in _cfg(config)["runs"]]
    return mw.Layout(metrics=audit_inputs(config)["metrics"], targets=targets, audit=f"{results}/audit/{NAME}.md",
                     training=training(config))


def _cli(subparsers):
    from medrepro.studies.loes.cli import register

    return register(subparsers)


STUDY = mw.Study(name=NAME, descriptor=DESCRIPTOR, layout=layout, cli=_cli,
                 importer="medrepro.studies.loes.external:import_predictions")
