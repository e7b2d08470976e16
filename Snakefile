# medrepro: from raw data to every leaderboard number, with provenance.
# Layout, data flow and provenance model: see README.md and config/README.md.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


# the shared part; each study's .smk validates its own block
validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


# every study's rules: one file per study, each registers the study's contract
for study_rules in sorted(
    Path(workflow.basedir, "workflow/rules/studies").glob("*.smk")
):

    include: study_rules


include: "workflow/rules/aggregate.smk"


rule all:
    default_target: True
    input:
        f"{R}/leaderboard.md",
