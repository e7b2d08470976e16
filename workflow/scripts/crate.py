from pathlib import Path

from medrepro.crate import build_crate
from medrepro.smk import job

with job(snakemake):
    build_crate(
        Path(snakemake.output.metadata).parent,
        # the workflow root: the folder with the Snakefile (this script is in workflow/scripts)
        workflow_root=Path(snakemake.scriptdir).resolve().parents[1],
        configfiles=list(snakemake.params.configfiles),
    )
