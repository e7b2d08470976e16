from pathlib import Path

from medrepro.studies.counterfactual.pipeline import verify_bundle
from medrepro.smk import job

with job(snakemake):
    verify_bundle(
        manifests=[Path(p) for p in snakemake.params.manifests],
        bundle_root=Path(snakemake.params.bundle_root),
        pairs_csv=Path(snakemake.params.pairs_csv),
        out_json=Path(snakemake.output.report),
        data_kind=snakemake.params.data_kind,
    )
