from pathlib import Path

from medrepro.smk import job
from medrepro.studies.fracture.prepare import PrepParams, prepare

out = Path(snakemake.output.prep)
with job(snakemake) as rec:
    rec.extra["prepare"] = prepare(
        Path(snakemake.input.manifest),
        PrepParams.from_dict(dict(snakemake.params.variant)),
        out / "data.npz",
        out / "index.json",
    )
