from pathlib import Path

from medrepro.smk import job
from medrepro.studies.loes.split import build_split

split = dict(snakemake.params.split)
with job(snakemake, seeds={"split": split.get("seed", 42), "val": split.get("val_seed", 0)}) as rec:
    out = build_split(Path(snakemake.input.manifest), Path(snakemake.output.split), **split)
    rec.extra["check"] = out["check"]
