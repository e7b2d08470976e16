"""The workflow end to end on the tiny config: plan, run, partial reruns, lint, config checks."""

import copy
import json
import re
import zipfile

import jsonschema
import numpy as np
import pytest

from workflow_utils import REPO, TINY, make_workdir, planned_jobs, planned_wildcards, snakemake, write_config

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def done(tiny_local_results):
    """The full tiny run (once per session, see conftest), shared by the tests below."""
    return tiny_local_results.workdir, tiny_local_results.proc


def test_plan_lists_the_expected_rules(tmp_path):
    wd = make_workdir(tmp_path)
    jobs = planned_jobs(wd)
    assert jobs["scoliosis_train"] == 5 and jobs["scoliosis_evaluate"] == 5
    for rule in ("scoliosis_synthesize", "scoliosis_manifest", "scoliosis_skeleton_maps", "scoliosis_pav",
                 "scoliosis_resume_check", "scoliosis_figure", "study_summary", "leaderboard", "scoliosis_audit"):
        assert jobs.get(rule, 0) >= 1, rule
    assert jobs["scoliosis_split"] == 2


def test_full_run_outputs(done):
    wd, _ = done
    res = wd / "results"
    board = (res / "leaderboard.md").read_text()
    for run in TINY["studies"]["scoliosis"]["runs"]:
        assert f"`{run}`" in board
    assert "synthetic" in board and "[" in board  # CIs
    audit = (res / "audit/scoliosis.md").read_text()
    for heading in ("Is the stack working", "published claims", "Strongest practical model",
                    "Evaluation caveats", "Preprocessing details"):
        assert heading in audit
    assert "not comparable" in audit
    # a run whose checkpoint was picked on test metrics is flagged wherever its number appears
    assert "`ske_112_ft` (test-guided)" in board
    assert "found in ske_112_ft" in audit
    summary = (res / "scoliosis/summary.csv").read_text()
    assert "ske_112_ft,0,112,synthetic,test,True" in summary
    metrics_schema = json.loads((REPO / "workflow/schemas/metrics.schema.json").read_text())
    prov_schema = json.loads((REPO / "workflow/schemas/provenance.schema.json").read_text())
    metrics = sorted(res.glob("scoliosis/runs/*/seed*/metrics.json"))
    assert len(metrics) == 5
    for m in metrics:
        jsonschema.validate(json.loads(m.read_text()), metrics_schema)
    provs = sorted(res.rglob("*.provenance.json"))
    assert len(provs) >= 20
    for p in provs:
        jsonschema.validate(json.loads(p.read_text()), prov_schema)
    # the leaderboard has its own provenance naming the summaries it was built from
    lb = json.loads((res / "leaderboard.provenance.json").read_text())
    assert any(i["path"].endswith("scoliosis/summary.csv") for i in lb["inputs"])
    # every lineage link on the leaderboard points at an existing provenance file
    import re

    links = re.findall(r"\]\(([^)]+\.provenance\.json)\)", board)
    assert links and all((res / l).exists() for l in links)
    # the fine-tune's lineage includes its parent's checkpoint lineage
    ft = json.loads((res / "scoliosis/runs/ske_112_ft/seed0/scoliosis_train.provenance.json").read_text())
    parent = json.loads((res / "scoliosis/runs/ske_112/seed0/scoliosis_train.provenance.json").read_text())
    init = next(i for i in ft["inputs"] if i["path"].endswith("ske_112/seed0/checkpoint.pt"))
    assert init["lineage_id"] == parent["lineage_id"]
    resume = json.loads((res / "scoliosis/checks/resume.json").read_text())
    assert resume["identical"] and resume["resumed"]
    assert (res / "scoliosis/figures/skeleton_maps.png").stat().st_size > 1000
    # the opengait preset: named in the config, resolved in provenance and the maps' index,
    # and every one of its keys in the audit's preprocessing table
    og = json.loads((res / "scoliosis/prep/skeleton_maps/opengait.scoliosis_skeleton_maps.provenance.json").read_text())
    assert og["params"]["variant"] == {"preset": "opengait"}
    resolved = og["extra"]["skeleton_maps"]["resolved_params"]
    assert resolved["preset"] == "opengait" and resolved["window"] == "truncated" and resolved["align"] == "per_channel"
    assert og["extra"]["skeleton_maps"]["zero_height_frames"] == 0
    index = json.loads((res / "scoliosis/prep/skeleton_maps/opengait/index.json").read_text())
    assert index["params"] == resolved
    audit = (res / "audit/scoliosis.md").read_text()
    for key in ("missing", "normalise_on", "window", "short_limb", "quantize", "crop_width"):
        assert f"| `{key}` |" in audit, key
    assert "| `preset` | " in audit and "opengait" in audit
    assert "`opengait`: preset opengait, no key overridden." in audit
    assert "`body_only`: preset medrepro, overriding `representation` = body-only." in audit
    # the run's package set, once, and every record behind the leaderboard names it
    from medrepro.provenance import environment, read_environment

    env_file = read_environment(res / "environment.txt")
    assert env_file["sha256"] == environment()["sha256"]  # the tests' Python ran the jobs
    assert f"numpy=={np.__version__}" in (res / "environment.txt").read_text().splitlines()
    assert board.count("every job record behind these rows names the package set in [environment.txt]") == 1


def test_nothing_to_do_after_a_run_and_readme_edit_reruns_nothing(done):
    wd, _ = done
    (wd / "README.md").write_text("edited\n")
    assert planned_jobs(wd) == {}


def test_changing_one_runs_lr_reruns_exactly_that_run(done):
    wd, _ = done
    cfg = copy.deepcopy(TINY)
    cfg["studies"]["scoliosis"]["runs"]["drf_112"]["lr"] = 0.01
    write_config(wd, cfg)
    try:
        jobs = planned_jobs(wd)
        outputs = planned_wildcards(wd)
    finally:
        write_config(wd, TINY)
    # the study's figures job draws every run's learning curve, so it redraws them all
    assert jobs == {"scoliosis_train": 1, "scoliosis_evaluate": 1, "study_summary": 1, "leaderboard": 1,
                    "scoliosis_audit": 1, "study_figures_scoliosis": 1, "crate": 1, "all": 1}
    runs = {o.split("/runs/")[1].split("/")[0] for o in outputs if "/runs/" in o}
    assert runs == {"drf_112"}


def _plan_after_edit(wd, relpath, planner):
    """What Snakemake would run after appending a comment to one library module."""
    module = wd / relpath
    original = module.read_text()
    module.write_text(original + "\n# edited\n")
    try:
        return planner(wd)
    finally:
        module.write_text(original)


def test_editing_a_model_module_reruns_only_its_runs(done):
    wd, _ = done
    outputs = _plan_after_edit(wd, "src/medrepro/studies/scoliosis/models/drf.py", planned_wildcards)
    runs = {o.split("/runs/")[1].split("/")[0] for o in outputs if "/runs/" in o}
    assert runs == {"drf_112"}


def test_editing_the_shared_backbone_reruns_every_run_but_not_preprocessing(done):
    wd, _ = done
    jobs = _plan_after_edit(wd, "src/medrepro/studies/scoliosis/models/common.py", planned_jobs)
    assert jobs["scoliosis_train"] == 5
    assert "scoliosis_skeleton_maps" not in jobs and "scoliosis_synthesize" not in jobs


def test_editing_the_skeleton_map_renderer_reruns_maps_and_their_runs_only(done):
    """PAV reads the poses through the data module, not the renderer: it stays; every run on
    skeleton maps, and what follows, reruns; the silhouette run does not."""
    wd, _ = done
    outputs = _plan_after_edit(wd, "src/medrepro/studies/scoliosis/skeleton_maps/render.py", planned_wildcards)
    jobs = _plan_after_edit(wd, "src/medrepro/studies/scoliosis/skeleton_maps/render.py", planned_jobs)
    assert jobs["scoliosis_skeleton_maps"] == 2  # body_only and opengait
    assert "scoliosis_pav" not in jobs and "scoliosis_manifest" not in jobs and "scoliosis_split" not in jobs
    runs = {o.split("/runs/")[1].split("/")[0] for o in outputs if "/runs/" in o}
    assert runs == {"ske_112", "ske_118", "drf_112", "ske_112_ft"}
    for rule in ("scoliosis_evaluate", "study_summary", "scoliosis_audit", "leaderboard"):
        assert rule in jobs, rule


def test_editing_the_pose_readers_reruns_skeleton_maps_pav_and_everything_after(done):
    """The manifest reader and pose checks that skeleton maps and PAV share live in the data
    module: editing it replans the manifest, both preprocessing steps and every run."""
    wd, _ = done
    jobs = _plan_after_edit(wd, "src/medrepro/studies/scoliosis/data.py", planned_jobs)
    assert jobs["scoliosis_manifest"] == 1 and jobs["scoliosis_skeleton_maps"] == 2
    assert jobs["scoliosis_pav"] == 1 and jobs["scoliosis_train"] == 5 and jobs["scoliosis_evaluate"] == 5
    assert "scoliosis_synthesize" not in jobs


def test_editing_a_shared_template_reruns_only_the_leaderboard(done):
    wd, _ = done
    jobs = _plan_after_edit(wd, "workflow/templates/leaderboard.md.j2", planned_jobs)
    assert jobs == {"leaderboard": 1, "crate": 1, "all": 1}


def test_every_job_imported_only_modules_its_code_param_covers(done):
    """Provenance records every medrepro module a job imported; each must be in the job's code
    param (the static import closure of its script, plus its model's modules)."""
    wd, _ = done
    provs = sorted((wd / "results").rglob("*.provenance.json"))
    rules = set()
    for p in provs:
        rec = json.loads(p.read_text())
        imported = set(rec["code"]["imported"]["modules"])
        covered = set(rec["params"]["code"]["modules"])
        assert imported <= covered, f"{p}: imported but not hashed: {sorted(imported - covered)}"
        assert rec["code"]["rule_modules"] == rec["params"]["code"]["modules"]
        assert rec["code"]["rule_modules_sha256"] == rec["params"]["code"]["sha256"], p
        rules.add(rec["rule"])
    assert {"scoliosis_train", "scoliosis_evaluate", "scoliosis_pav", "scoliosis_skeleton_maps",
            "scoliosis_audit", "study_summary", "leaderboard"} <= rules
    drf = json.loads((wd / "results/scoliosis/runs/drf_112/seed0/scoliosis_train.provenance.json").read_text())
    sconet = json.loads((wd / "results/scoliosis/runs/ske_112/seed0/scoliosis_train.provenance.json").read_text())
    assert "medrepro.studies.scoliosis.models.drf" in drf["params"]["code"]["modules"]
    assert "medrepro.studies.scoliosis.models.drf" not in sconet["params"]["code"]["modules"]


def test_lint_is_clean(tmp_path):
    wd = make_workdir(tmp_path)
    proc = snakemake(wd, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


@pytest.mark.parametrize("mutate,needle", [
    (lambda c: c.update(unknown_key=1), "unknown_key"),
    (lambda c: c["studies"]["scoliosis"]["train_defaults"].update(iterations="many"), "iterations"),
    (lambda c: c["studies"]["scoliosis"]["runs"]["ske_112"].update(lr_typo=0.1), "lr_typo"),
])
def test_config_schema_rejects_bad_keys(tmp_path, mutate, needle):
    wd = make_workdir(tmp_path)
    cfg = copy.deepcopy(TINY)
    mutate(cfg)
    write_config(wd, cfg)
    proc = snakemake(wd, "-n", check=False)
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr
    assert not (wd / "results").exists()


#: the first words of the captions of the per-run figures (workflow/report/*.rst)
CURVE_CAPTION = "Learning curve of one training run and seed"
CONFUSION_CAPTION = "Confusion matrix on the TEST split of one run and seed"


def test_html_report_has_figures_and_tables(done, tmp_path):
    """`snakemake --report` (HTML and zip): every table and figure, and per trained run x seed
    its learning curve and confusion matrix with their captions, grouped by study and run."""
    wd, _ = done
    res = wd / "results"
    trained = sorted(p.parent for p in res.glob("scoliosis/runs/*/seed*/train_log.jsonl"))
    assert len(trained) == 5
    per_run = [f"{d.parent.name}.{d.name}.{kind}.png" for d in trained for kind in ("learning_curve", "confusion")]
    snakemake(wd, "--report", str(tmp_path / "report.html"))
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert len(html) > 10_000
    for name in ("leaderboard.md", "skeleton_maps.png", "summary.csv", "primary_metric.png", "scoliosis.md", *per_run):
        assert name in html, name
    assert CURVE_CAPTION in html and CONFUSION_CAPTION in html
    # grouped by study (category) and run (subcategory)
    categories = json.loads(re.search(r"var categories = (\{.*?\});", html).group(1))
    for d in trained:
        files = categories["scoliosis"][d.parent.name]
        assert f"results/scoliosis/figures/training/{d.parent.name}.{d.name}.learning_curve.png" in files

    snakemake(wd, "--report", str(tmp_path / "report.zip"))
    with zipfile.ZipFile(tmp_path / "report.zip") as z:
        names = z.namelist()
        inner = z.read("report/report.html").decode(errors="replace")
        for name in per_run:
            found = [n for n in names if n.endswith(f"/{name}")]
            assert len(found) == 1, name
            assert z.read(found[0]) == (res / "scoliosis/figures/training" / name).read_bytes()
    assert CURVE_CAPTION in inner and CONFUSION_CAPTION in inner
    assert not (wd / "report.zip").exists()
