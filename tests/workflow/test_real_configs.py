"""The real-data templates: pointed at data in the real on-disk format (here generated), the
same rules plan the real recipe with no synthesis step."""

import subprocess

import yaml

from medrepro.studies.scoliosis.synthetic import SyntheticScoliosisParams, generate_scoliosis1k
from workflow_utils import REPO, SNAKEMAKE, make_workdir


def test_scoliosis_template_plans_real_data_runs(tmp_path):
    data = tmp_path / "Scoliosis1K"
    generate_scoliosis1k(data, SyntheticScoliosisParams(n_positive=16, n_neutral=16, n_negative=40, test_per_class=6,
                                                         frames_min=10, frames_max=12))
    wd = make_workdir(tmp_path / "wd", {})
    cfg = yaml.safe_load((REPO / "config/real/scoliosis1k.yaml").read_text())
    cfg["studies"]["scoliosis"]["data"]["real"] = {
        "pose_root": str(data / "Scoliosis1K-pose-pkl"), "sil_root": str(data / "Scoliosis1K-sil-pkl"),
        "split_dir": str(data)}
    cfg["studies"]["scoliosis"]["data"]["splits"] = {"112": "Scoliosis1K_112.json", "118": "Scoliosis1K_118.json"}
    (wd / "real.yaml").write_text(yaml.safe_dump(cfg))
    out = subprocess.run(["timeout", "-k", "10", "300", SNAKEMAKE, "-n", "--configfile", "real.yaml", "-p"],
                         cwd=wd, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "scoliosis_synthesize" not in out.stdout
    assert "counterfactual_" not in out.stdout  # disabled by the template
    assert out.stdout.count("rule scoliosis_train:") == 14  # 5 default runs + drf_118 + ske_og_112, 2 seeds each
    assert "prep/skeleton_maps/opengait" in out.stdout  # the released pretreatment's maps


def test_templates_validate_against_the_schema(tmp_path):
    from snakemake.utils import validate

    default = yaml.safe_load((REPO / "config/config.yaml").read_text())
    from workflow_utils import merged

    for path in sorted((REPO / "config/real").glob("*.yaml")):
        cfg = merged(default, yaml.safe_load(path.read_text()))
        validate(cfg, str(REPO / "workflow/schemas/config.schema.yaml"))
