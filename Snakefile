# medrepro: from raw data to every leaderboard number, with provenance.
# Layout, data flow and provenance model: see README.md and config/README.md.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/scoliosis.smk"
include: "workflow/rules/counterfactual.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    default_target: True
    input:
        leaderboard_inputs(),
