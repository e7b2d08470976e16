"""The results folder as a Workflow Run RO-Crate (Provenance Run Crate 0.5).

``results/ro-crate-metadata.json`` describes a finished run, built from the provenance records
under the folder (:mod:`medrepro.provenance`):

- the crate root is the results folder; it conforms to Process Run Crate, Workflow Run Crate and
  Provenance Run Crate 0.5 (https://w3id.org/ro/wfrun/...) and Workflow RO-Crate 1.0, on
  RO-Crate 1.1 (whose JSON-LD context ro-crate-py ships; nothing is fetched);
- the main entity is the Snakefile, a ``ComputationalWorkflow`` (and ``HowTo``) in the
  Snakemake language; each rule is a ``SoftwareApplication`` the workflow lists in ``hasPart``,
  with a ``HowToStep`` (``workExample``: the rule) and a ``ControlAction`` (``instrument``: the
  step, ``object``: the rule's jobs);
- each job is a ``CreateAction`` made from its record: start and end time, its inputs
  (``object``) and outputs (``result``) as ``File`` / ``Dataset`` entities with ``sha256`` and
  ``contentSize``, its params as ``PropertyValue`` entities, and its record as a ``File`` about
  the action;
- one ``CreateAction`` for the whole run, from the config files to the leaderboard, and an
  ``OrganizeAction`` for Snakemake itself.

Where the Snakefile goes: a data entity must lie inside the crate root or be an absolute URI,
and the Snakefile lives beside results/, not in it. The ``crate`` rule therefore copies the
workflow definition (Snakefile, workflow/, envs/, config/, src/medrepro) into
``results/workflow-definition/`` (a name no study wildcard can take). The crate in results/ is
then complete on its own, and the zip (``medrepro crate --zip``) is the same crate written as
an archive: its metadata, every result file, every provenance record and the workflow copy, so
it can be read without the tree it came from. The copy is taken when the crate is made (the
rule runs after the leaderboard; the workflow files are not its Snakemake inputs, so editing the
tree later neither reruns it nor makes `medrepro verify` report the edit). Inputs a record
names from the workflow tree (a schema, the claims file) point at their copy; inputs from
elsewhere (raw data) are ``File`` entities with a ``file://`` URI, not packaged.

Every hash comes from a record and is checked against the bytes first: the folder must pass
:func:`medrepro.verify.verify_results` (outputs, lineage links, inputs that are present), and a
copied workflow file that a record names must have the bytes that record holds. Anything else
is refused with :class:`~medrepro.errors.MismatchError` naming the file.

The crate is a function of the folder: the publication date is the end of the last job, the
identifiers come from lineage ids, so building it twice from the same folder gives the same bytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterable

from medrepro.errors import InputError, MismatchError
from medrepro.fsutil import atomic_path, new_temp_dir, replace_dir, write_text
from medrepro.provenance import describe_dir_change, dir_file_hashes, path_sha256
from medrepro.verify import _base, _load_records, format_report, verify_results

METADATA = "ro-crate-metadata.json"
WORKFLOW_DIR = "workflow-definition"
OWN_RECORD = "crate.provenance.json"  # the record of the `crate` job, not part of the crate
CRATE_VERSION = "1.1"
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": ("Process Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/workflow/0.5": ("Workflow Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/provenance/0.5": ("Provenance Run Crate", "0.5"),
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": ("Workflow RO-Crate", "1.0"),
}
WRROC_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"
LICENSE = "https://spdx.org/licenses/MIT"
COMPLETED = "http://schema.org/CompletedActionStatus"  # a literal, as the profiles' examples give it
# what the workflow definition is: the files a run of it reads (caches and build output left out)
_WORKFLOW_PARTS = ("Snakefile", "snakefile", "workflow", "envs", "config", "src/medrepro")
# where Snakemake looks for the main Snakefile, in its order
_SNAKEFILES = ("Snakefile", "snakefile", "workflow/Snakefile", "workflow/snakefile")
_SKIP_PARTS = {"__pycache__", ".snakemake", ".ipynb_checkpoints"}
_FORMATS = {".json": "application/json", ".csv": "text/csv", ".md": "text/markdown", ".png": "image/png",
            ".yaml": "application/yaml", ".yml": "application/yaml", ".txt": "text/plain", ".py": "text/x-python",
            ".html": "text/html", ".svg": "image/svg+xml"}


def workflow_files(root: str | Path) -> list[Path]:
    """The workflow definition under ``root`` (relative paths, sorted): what the crate copies."""
    root = Path(root)
    out = []
    for part in _WORKFLOW_PARTS:
        p = root / part
        if p.is_file():
            out.append(Path(part))
        elif p.is_dir():
            out += [f.relative_to(root) for f in sorted(p.rglob("*"))
                    if f.is_file() and not _SKIP_PARTS & set(f.relative_to(root).parts) and f.suffix != ".pyc"]
    if not set(map(Path, _SNAKEFILES)) & set(out):
        raise InputError(root, "Snakefile", "not found", "the workflow root holding the Snakefile")
    return sorted(out)


def main_snakefile(root: str | Path) -> str | None:
    """The main Snakefile under ``root`` (relative), where Snakemake would find it."""
    return next((s for s in _SNAKEFILES if (Path(root) / s).is_file()), None)


def copy_workflow(root: str | Path, results_dir: str | Path) -> Path:
    """Copy the workflow definition into ``results_dir/workflow-definition`` (whole, atomically)."""
    root, dest = Path(root), Path(results_dir) / WORKFLOW_DIR
    tmp = new_temp_dir(dest)
    try:
        for rel in workflow_files(root):
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, target)
        replace_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _format(path: str) -> str | None:
    if path.endswith("Snakefile") or path.endswith(".smk"):
        return "text/x-snakemake"
    return _FORMATS.get(Path(path).suffix.lower())


def _value(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) else json.dumps(v, sort_keys=True)


def _job_name(rec: dict) -> str:
    wc = ", ".join(f"{k}={v}" for k, v in sorted(rec.get("wildcards", {}).items()))
    return f"{rec['rule']} ({wc})" if wc else rec["rule"]


def _positions(records: list[dict]) -> dict[str, int] | None:
    """Rule -> 1 + the longest chain of rules feeding it (a rule that reads another's output
    comes after it); None when the rules depend on each other in a cycle."""
    made_by = {o["path"]: r["rule"] for r in records for o in r["outputs"]}
    needs: dict[str, set[str]] = {r["rule"]: set() for r in records}
    for r in records:
        needs[r["rule"]] |= {made_by[i["path"]] for i in r["inputs"] if i["path"] in made_by} - {r["rule"]}
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def walk(rule: str) -> int | None:
        if rule in depth:
            return depth[rule]
        if rule in visiting:
            return None
        visiting.add(rule)
        parents = [walk(p) for p in sorted(needs[rule])]
        visiting.discard(rule)
        if any(p is None for p in parents):
            return None
        depth[rule] = 1 + max(parents, default=0)
        return depth[rule]

    return depth if all(walk(r) is not None for r in sorted(needs)) else None


def _configfiles(results: Path, configfiles: Iterable[str] | None) -> list[str]:
    if configfiles is not None:
        return list(configfiles)
    rec = _own_record(results)
    if rec and rec.get("params", {}).get("configfiles"):
        return list(rec["params"]["configfiles"])
    return ["config/config.yaml"]


def _own_record(results: Path) -> dict | None:
    """The record of a previous crate build (the job that wrote the metadata file), if any."""
    prov = results / OWN_RECORD
    try:
        return json.loads(prov.read_text()) if prov.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def _check_folder(results: Path) -> None:
    report = verify_results(results)
    if not report.clean:
        first = report.differences[0]
        raise MismatchError(first.path, "sha256", f"bytes differ from the provenance records, not packaged:\n"
                            f"{format_report(report)}", "a results folder that `medrepro verify` passes")


def build_crate(results_dir: str | Path, workflow_root: str | Path | None = None,
                configfiles: Iterable[str] | None = None, zip_path: str | Path | None = None) -> dict:
    """Write ``results_dir/ro-crate-metadata.json`` (and the zip ``zip_path``); return the metadata.

    ``workflow_root``: the folder with the Snakefile to copy into the crate; None: use the copy
    already in ``results_dir/workflow-definition``. ``configfiles``: the config files the run
    was given (relative to the workflow root); None: those a previous build recorded, else
    config/config.yaml."""
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    results = Path(results_dir).resolve()
    if not results.is_dir():
        raise InputError(results, "results", "not a folder", "a results folder")
    # refuse before writing anything: every recorded output and present input has its bytes
    _check_folder(results)
    configs = _configfiles(results, configfiles)
    if workflow_root is not None:
        copy_workflow(Path(workflow_root), results)
    copy = results / WORKFLOW_DIR
    main_file = main_snakefile(copy)
    if main_file is None:
        raise InputError(copy, "Snakefile", "no copy of the workflow in the results folder",
                         "a workflow root to copy it from (--workflow-root)")
    copied = dir_file_hashes(copy, cached=False)

    all_records = _load_records(results)
    own = [p for p, r in all_records.items() if any(Path(o["path"]).name == METADATA for o in r["outputs"])]
    records = {p: r for p, r in all_records.items() if p not in own}
    if not records:
        raise InputError(results, "results", "no provenance records besides the crate's own", "a finished run")
    base = next(_base(p, r) for p, r in records.items() if r["outputs"])

    crate = ROCrate(version=CRATE_VERSION)
    crate.metadata.extra_contexts.append(WRROC_CONTEXT)
    entities: dict[str, Any] = {}

    def add(entity):
        entities[entity.id] = crate.add(entity)
        return entities[entity.id]

    def context(id_: str, props: dict) -> Any:
        return entities.get(id_) or add(ContextEntity(crate, id_, properties=props))

    folder_files = {o["path"]: o["files"] for r in records.values() for o in r["outputs"] if "files" in o}

    def data_entity(path: str, sha: str, size: int, dataset: bool = False) -> Any:
        """The entity for a path a record names (relative to the run's working directory)."""
        where = Path(path) if Path(path).is_absolute() else base / path
        try:
            rel = where.resolve().relative_to(results).as_posix()
        except ValueError:
            rel = None
        if rel is None and not Path(path).is_absolute() and Path(path).as_posix() in copied:
            rel = f"{WORKFLOW_DIR}/{Path(path).as_posix()}"
            if copied[Path(path).as_posix()] != sha:
                raise MismatchError(copy / path, "sha256", f"the copy hashes to {copied[Path(path).as_posix()]}, "
                                    f"a record says {sha} for {path}", "the bytes the job read")
        props = {"sha256": sha, "contentSize": str(size)}
        if rel is None:  # not in the crate: an outside file, by absolute URI, not packaged
            uri = where.resolve().as_uri()
            props["name"] = Path(path).name
            return entities.get(uri) or add(_file(crate, uri, None, props, dataset))
        rel = rel + "/" if dataset else rel
        if rel in entities:
            return entities[rel]
        if not dataset:
            if fmt := _format(rel):
                props["encodingFormat"] = fmt
            return add(_file(crate, rel, results / rel, props, False))
        folder = add(_file(crate, rel, results / rel, props, True))
        # its files, each with the sha256 its producer recorded for it (the bytes checked here)
        recorded = folder_files.get(path) or {}
        on_disk = dir_file_hashes(results / rel)
        if recorded and recorded != on_disk:
            raise MismatchError(results / rel, "sha256", describe_dir_change(results / rel, recorded),
                                "the files the producing job wrote")
        parts = []
        for name, file_sha in sorted(on_disk.items()):
            fprops = {"sha256": file_sha, "contentSize": str((results / rel / name).stat().st_size)}
            if fmt := _format(name):
                fprops["encodingFormat"] = fmt
            parts.append(add(_file(crate, rel + name, results / rel / name, fprops, False)))
        if parts:
            folder["hasPart"] = _ref(parts)
        return folder

    # the workflow (its language: ro-crate-py's Snakemake entity) and the engine
    engine_version = _first(r.get("packages", {}).get("snakemake") for r in records.values())
    engine = context("https://snakemake.github.io/", {
        "@type": "SoftwareApplication", "name": "Snakemake", "url": "https://snakemake.github.io/",
        **({"softwareVersion": engine_version} if engine_version else {})})
    snakefile = f"{WORKFLOW_DIR}/{main_file}"
    main = crate.add_workflow(results / snakefile, snakefile, main=True, lang="snakemake",
                              lang_version=engine_version, properties={
        "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
        "name": "medrepro workflow", "sha256": copied[main_file],
        "contentSize": str((copy / main_file).stat().st_size), "encodingFormat": "text/x-snakemake",
        "conformsTo": {"@id": "https://bioschemas.org/profiles/ComputationalWorkflow/1.0-RELEASE"}})
    entities[main.id] = main
    for rel, sha in sorted(copied.items()):
        if rel != main_file:
            _copied_entity(crate, entities, add, copy, rel, sha)

    # tools, steps, jobs
    ordered = sorted(records.items(), key=lambda kv: (kv[1].get("start") or "", str(kv[0])))
    positions = _positions([r for _, r in ordered])
    jobs_of: dict[str, list[Any]] = {}
    for prov, rec in ordered:
        rule = rec["rule"]
        tool = context(f"#rule-{rule}", {"@type": "SoftwareApplication", "name": f"rule {rule}",
                                         "description": f"the Snakemake rule {rule} of the workflow"})
        lid = rec.get("lineage_id") or (rec["outputs"][0]["lineage_id"] if rec["outputs"] else None)
        action_id = f"#job-{lid[:16]}" if lid else f"#job-{prov.relative_to(results).as_posix()}"
        if action_id in entities:
            action_id = f"#job-{prov.relative_to(results).as_posix()}"
        params = [context(f"{action_id}-param-{k}", {"@type": "PropertyValue", "name": k, "value": _value(v)})
                  for k, v in sorted(rec.get("params", {}).items())]
        objects = [data_entity(i["path"], i["sha256"], i["size"], dataset=_is_dir(base, i)) for i in rec["inputs"]]
        results_ = [data_entity(o["path"], o["sha256"], o["size"], dataset="files" in o) for o in rec["outputs"]]
        action = context(action_id, {
            "@type": "CreateAction", "name": _job_name(rec),
            "description": f"job of rule {rule}; lineage id {lid}",
            "instrument": {"@id": tool.id}, "actionStatus": COMPLETED,
            **({"startTime": rec["start"]} if rec.get("start") else {}),
            **({"endTime": rec["end"]} if rec.get("end") else {}),
            "object": _ref(_unique(objects + params)),
            "result": _ref(_unique(results_))})
        prov_rel = prov.relative_to(results).as_posix()
        add(_file(crate, prov_rel, prov, {"name": f"provenance record of {_job_name(rec)}",
                                          "encodingFormat": "application/json", "about": {"@id": action.id},
                                          "sha256": path_sha256(prov, cached=False),
                                          "contentSize": str(prov.stat().st_size)}, False))
        jobs_of.setdefault(rule, []).append(action)
    steps, controls = [], []
    for rule in sorted(jobs_of, key=lambda r: ((positions or {}).get(r, 0), r)):
        step = context(f"#step-{rule}", {"@type": "HowToStep", "name": rule, "workExample": {"@id": f"#rule-{rule}"},
                                         **({"position": positions[rule]} if positions else {})})
        steps.append(step)
        controls.append(context(f"#control-{rule}", {
            "@type": "ControlAction", "name": f"step {rule}", "instrument": {"@id": step.id},
            "actionStatus": COMPLETED,
            "object": _ref(jobs_of[rule])}))
    main["hasPart"] = _ref([entities[f"#rule-{r}"] for r in sorted(jobs_of)])
    main["step"] = _ref(steps)

    # the run: from the config files to the leaderboard
    starts = [r["start"] for r in records.values() if r.get("start")]
    ends = [r["end"] for r in records.values() if r.get("end")]
    config_entities = []
    for cf in configs:  # relative to the workflow root, or to the working directory of the job
        rel = cf if cf in copied else _relative_to(cf, Path(workflow_root or results.parent).resolve())
        if rel in copied:
            config_entities.append(_copied_entity(crate, entities, add, copy, rel, copied[rel]))
    leaderboard = [entities[k] for k in ("leaderboard.md",) if k in entities]
    run = context("#run", {
        "@type": "CreateAction", "name": f"run of the medrepro workflow ({len(records)} jobs)",
        "description": "the whole run, from the config files it was given to the leaderboard",
        "instrument": {"@id": main.id}, "actionStatus": COMPLETED,
        **({"startTime": min(starts), "endTime": max(ends)} if starts and ends else {}),
        "object": _ref(config_entities),
        "result": _ref(leaderboard)})
    context("#engine-run", {
        "@type": "OrganizeAction", "name": "Snakemake run", "instrument": {"@id": engine.id},
        "object": _ref(controls), "result": {"@id": run.id},
        "description": "the Snakemake process that ran the steps",
        **({"startTime": min(starts), "endTime": max(ends)} if starts and ends else {})})

    # the root: profiles, license, dates, the actions it mentions
    for uri, (pname, version) in PROFILES.items():
        context(uri, {"@type": "CreativeWork", "name": pname, "version": version})
    license_ = context(LICENSE, {"@type": "CreativeWork", "name": "MIT License", "identifier": "MIT"})
    root = crate.root_dataset
    root["name"] = f"medrepro run: {results.name}"
    root["description"] = ("Results of a medrepro workflow run with the provenance of every job: "
                           "inputs, outputs, params, code and times.")
    root["license"] = {"@id": license_.id}
    root["datePublished"] = max(ends) if ends else "1970-01-01"
    root["conformsTo"] = [{"@id": u} for u in PROFILES]
    root["mentions"] = [{"@id": run.id}] + [{"@id": a.id} for acts in jobs_of.values() for a in acts]
    crate.metadata["conformsTo"] = [{"@id": f"https://w3id.org/ro/crate/{CRATE_VERSION}"},
                                    {"@id": "https://w3id.org/workflowhub/workflow-ro-crate/1.0"}]

    metadata = crate.metadata.generate()
    if broken := must_violations(metadata, results):  # a bug of this module, not of the run
        raise RuntimeError("the crate breaks its profiles' MUST rules: " + "; ".join(broken))
    write_text(results / METADATA, json.dumps(metadata, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    if zip_path is not None:
        write_zip(results, zip_path)
    return metadata


def crate_results(results_dir: str | Path, workflow_root: str | Path | None = None,
                  zip_path: str | Path | None = None) -> bool:
    """What ``medrepro crate`` does: keep the crate the workflow's ``crate`` job wrote (it is an
    output with a record; rewriting it here would leave that record stale), else build one; then
    write the zip. True when the metadata was (re)built here."""
    results = Path(results_dir)
    _check_folder(results.resolve())  # the kept crate too must have the bytes its record holds
    own = _own_record(results.resolve())
    recorded = own is not None and any(Path(o["path"]).name == METADATA for o in own.get("outputs", []))
    if recorded and (results / METADATA).is_file():
        metadata = json.loads((results / METADATA).read_text())
        if broken := must_violations(metadata, results):
            raise InputError(results / METADATA, "crate", "; ".join(broken), "a crate keeping its profiles' MUST rules")
        if zip_path is not None:
            write_zip(results, zip_path)
        return False
    if workflow_root is None and main_snakefile(results / WORKFLOW_DIR) is None:
        workflow_root = results.resolve().parent
    build_crate(results, workflow_root=workflow_root, zip_path=zip_path)
    return True


def write_zip(results_dir: str | Path, zip_path: str | Path) -> Path:
    """The crate in ``results_dir`` as a zip: its metadata at the top (the same entities, as
    ro-crate-py writes them) and every file and folder it lists."""
    from rocrate.rocrate import ROCrate

    results = Path(results_dir).resolve()
    zip_path = Path(zip_path).resolve()
    if zip_path.is_relative_to(results):
        raise InputError(zip_path, "--zip", "inside the crate it packages", "a path outside the results folder")
    # read from the metadata file: the zip holds what it lists (files it does not list stay out)
    crate = ROCrate(results / METADATA)
    context = json.loads((results / METADATA).read_text()).get("@context")
    crate.metadata.extra_contexts = [c for c in (context if isinstance(context, list) else [])[1:]]
    missing = [e.id for e in crate.data_entities if not _is_uri(e.id) and not (results / e.id).exists()]
    if missing:
        raise InputError(results / missing[0], "crate", "listed in the crate but not present", "the file")
    with atomic_path(zip_path) as tmp:
        crate.write_zip(tmp)
    return zip_path


def _is_uri(id_: str) -> bool:
    return "://" in id_


def _file(crate, id_: str, source: Path | None, props: dict, dataset: bool):
    from rocrate.model.dataset import Dataset
    from rocrate.model.file import File

    cls = Dataset if dataset else File
    if dataset:  # a folder: its sha256 is medrepro's folder hash (provenance.path_sha256)
        props = {**props, "description": "folder; sha256 of its sorted (relative path, file sha256) list"}
    if source is None:
        return cls(crate, id_, properties=props)
    return cls(crate, source=source, dest_path=id_, properties=props)


def _copied_entity(crate, entities, add, copy: Path, rel: str, sha: str):
    id_ = f"{WORKFLOW_DIR}/{rel}"
    if id_ in entities:
        return entities[id_]
    props = {"sha256": sha, "contentSize": str((copy / rel).stat().st_size)}
    if fmt := _format(rel):
        props["encodingFormat"] = fmt
    return add(_file(crate, id_, copy / rel, props, False))


def _is_dir(base: Path, rec: dict) -> bool:
    p = Path(rec["path"])
    return (p if p.is_absolute() else base / p).is_dir()


def _relative_to(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _ref(items: list) -> dict | list:
    """JSON-LD reference(s) to entities: one as a single value, several as a list."""
    refs = [{"@id": e.id} for e in items]
    return refs[0] if len(refs) == 1 else refs


def _unique(items: list) -> list:
    seen, out = set(), []
    for e in items:
        if e.id not in seen:
            seen.add(e.id)
            out.append(e)
    return out


def _first(values: Iterable[Any]) -> Any:
    return next((v for v in values if v), None)


# --- the profiles' MUST rules, checked offline ------------------------------------------------
# Written from the profile texts: RO-Crate 1.1 (as rocrate-validator's ro-crate/1.1/must
# shapes read it), Process / Workflow / Provenance Run Crate 0.5
# (ResearchObject/workflow-run-crate docs/profiles/0.5) and Workflow RO-Crate 1.0
# (workflowhub-eu/about Workflow-RO-Crate/1.0).

def _types(e: dict) -> set[str]:
    t = e.get("@type", [])
    return set(t if isinstance(t, list) else [t])


def _refs(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value] if value is not None else []
    return [v["@id"] for v in items if isinstance(v, dict) and "@id" in v]


def must_violations(metadata: dict, root: str | Path | None = None) -> list[str]:
    """The MUST rules of the five profiles that ``metadata`` breaks (empty: none). ``root``: the
    crate's folder, to check that the data entities and the main workflow are present."""
    import datetime as dt
    import re

    bad: list[str] = []
    graph = metadata.get("@graph")
    if not isinstance(graph, list) or "@context" not in metadata:
        return ["RO-Crate: the metadata must have @context and @graph"]
    ids = [e.get("@id") for e in graph]
    if None in ids:
        bad.append("RO-Crate: every entity of the flattened @graph must have an @id")
    if len(set(ids)) != len(ids):
        bad.append("RO-Crate: the @graph must not list an @id twice")
    ent = {e.get("@id"): e for e in graph}
    for e in graph:
        for key, value in e.items():
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, dict) and set(v) != {"@id"}:
                    bad.append(f"RO-Crate: {e.get('@id')} {key}: JSON-LD must be flattened (only {{'@id'}} references)")

    def has(id_: str, *types: str) -> bool:
        return id_ in ent and set(types) <= _types(ent[id_])

    desc = ent.get(METADATA, {})
    if "CreativeWork" not in _types(desc) or _refs(desc.get("about")) != ["./"]:
        bad.append("RO-Crate: ro-crate-metadata.json must be a CreativeWork about the root ./")
    if f"https://w3id.org/ro/crate/{CRATE_VERSION}" not in _refs(desc.get("conformsTo")):
        bad.append("RO-Crate: the metadata descriptor must conform to the RO-Crate version")
    rd = ent.get("./")
    if rd is None or "Dataset" not in _types(rd):
        return bad + ["RO-Crate: the root data entity ./ must be a Dataset"]
    for key in ("name", "description", "license", "datePublished"):
        if not rd.get(key):
            bad.append(f"RO-Crate: the root data entity must have {key}")
    try:
        dt.datetime.fromisoformat(str(rd.get("datePublished")))
    except ValueError:
        bad.append("RO-Crate: datePublished must be an ISO 8601 date")

    # data entities: File / Dataset, relative path or absolute URI, reachable by hasPart, present
    reach, todo = set(), list(_refs(rd.get("hasPart")))
    while todo:
        i = todo.pop()
        if i not in reach:
            reach.add(i)
            todo += _refs(ent.get(i, {}).get("hasPart")) if has(i, "Dataset") else []
    for e in graph:
        i = e.get("@id", "")
        if i in ("./", METADATA) or not _types(e) & {"File", "Dataset"}:
            continue
        if i.startswith("#") or " " in i:
            bad.append(f"RO-Crate: data entity {i}: @id must be a relative URI path or an absolute URI")
        if i not in reach:
            bad.append(f"RO-Crate: data entity {i} must be reached from the root by hasPart")
        if root is not None and not _is_uri(i) and not (Path(root) / i).exists():
            bad.append(f"RO-Crate: data entity {i} is not in the crate")

    # the profiles the root conforms to, each a CreativeWork of the crate
    conforms = _refs(rd.get("conformsTo"))
    for uri in ("https://w3id.org/ro/wfrun/process/0.5", "https://w3id.org/ro/wfrun/workflow/0.5",
                "https://w3id.org/ro/wfrun/provenance/0.5"):
        if uri not in conforms or not has(uri, "CreativeWork"):
            bad.append(f"Run Crate: the root must conform to {uri}, a CreativeWork entity")

    # Workflow RO-Crate 1.0: the main workflow
    main_ids = _refs(rd.get("mainEntity"))
    main = ent.get(main_ids[0]) if main_ids else None
    if main is None:
        return bad + ["Workflow RO-Crate: the root must refer to the main workflow via mainEntity"]
    mid = main["@id"]
    if not {"File", "SoftwareSourceCode", "ComputationalWorkflow"} <= _types(main):
        bad.append("Workflow RO-Crate: the main workflow must be File, SoftwareSourceCode, ComputationalWorkflow")
    if not any(has(lang, "ComputerLanguage") for lang in _refs(main.get("programmingLanguage"))):
        bad.append("Workflow RO-Crate: the main workflow must refer to its language via programmingLanguage")
    if root is not None and not (_is_uri(mid) or (Path(root) / mid).is_file()):
        bad.append(f"Workflow RO-Crate: the main workflow {mid} must be in the crate")

    actions = [e for e in graph if _types(e) & {"CreateAction", "ActivateAction", "UpdateAction"}]
    for a in actions:  # Process Run Crate
        if not [i for i in _refs(a.get("instrument")) if i in ent]:
            bad.append(f"Process Run Crate: action {a.get('@id')} must have an instrument in the crate")
    if not any(mid in _refs(a.get("instrument")) for a in actions):
        bad.append("Workflow Run Crate: a CreateAction must have the main workflow as instrument")
    for key in ("input", "output"):  # Workflow Run Crate: parameter slots are FormalParameters
        for p in _refs(main.get(key)):
            if not has(p, "FormalParameter") or not ent[p].get("additionalType"):
                bad.append(f"Workflow Run Crate: workflow {key} {p} must be a FormalParameter with additionalType")

    # Provenance Run Crate
    tools = _refs(main.get("hasPart"))
    if not tools:
        bad.append("Provenance Run Crate: the workflow must refer to its tools via hasPart")
    instruments = {i for a in actions for i in _refs(a.get("instrument"))}
    for t in tools:
        if t not in instruments:
            bad.append(f"Provenance Run Crate: tool {t} must be the instrument of an action")
    tool_actions = [a for a in actions if set(_refs(a.get("instrument"))) & set(tools)]
    if not tool_actions:
        bad.append("Provenance Run Crate: tool executions must be CreateActions with the tool as instrument")
    steps = _refs(main.get("step"))
    if steps and "HowTo" not in _types(main):
        bad.append("Provenance Run Crate: a workflow with steps must include HowTo in its types")
    for s in steps:
        if not has(s, "HowToStep") or not [w for w in _refs(ent[s].get("workExample")) if w in tools]:
            bad.append(f"Provenance Run Crate: step {s} must be a HowToStep whose workExample is a tool")
    for e in graph:
        i = e.get("@id")
        if "ControlAction" in _types(e):
            if not [s for s in _refs(e.get("instrument")) if has(s, "HowToStep")]:
                bad.append(f"Provenance Run Crate: ControlAction {i} must have a HowToStep as instrument")
            objs = _refs(e.get("object"))
            if not objs or not all(has(o, "CreateAction") for o in objs):
                bad.append(f"Provenance Run Crate: ControlAction {i} must have the tool runs as object")
        if "OrganizeAction" in _types(e):
            if not [x for x in _refs(e.get("instrument")) if x in ent]:
                bad.append(f"Provenance Run Crate: OrganizeAction {i} must have the engine as instrument")
            if not all(has(o, "ControlAction") for o in _refs(e.get("object"))) or not _refs(e.get("object")):
                bad.append(f"Provenance Run Crate: OrganizeAction {i} must have the step runs as object")
            if not [r for r in _refs(e.get("result")) if mid in _refs(ent.get(r, {}).get("instrument"))]:
                bad.append(f"Provenance Run Crate: OrganizeAction {i} must have the workflow run as result")
        if "resourceUsage" in e and not all(has(r, "PropertyValue") and ent[r].get("propertyID")
                                            for r in _refs(e["resourceUsage"])):
            bad.append(f"Provenance Run Crate: resourceUsage of {i} must be PropertyValues with propertyID")
    # position: a step that needs another's outputs comes after it
    pos = {s: ent[s].get("position") for s in steps if s in ent}
    if any(v is not None for v in pos.values()):
        made_by: dict[str, str] = {}
        step_of_tool = {w: s for s in steps if s in ent for w in _refs(ent[s].get("workExample"))}
        for a in tool_actions:
            for r in _refs(a.get("result")):
                made_by[r] = step_of_tool.get(_refs(a["instrument"])[0], "")
        for a in tool_actions:
            s2 = step_of_tool.get(_refs(a["instrument"])[0])
            for o in _refs(a.get("object")):
                s1 = made_by.get(o)
                if s1 and s2 and s1 != s2 and not int(pos[s2]) > int(pos[s1]):
                    bad.append(f"Provenance Run Crate: step {s2} needs outputs of {s1}, "
                               "so its position must be greater")
    if not re.fullmatch(r"\d{4}-\d\d-\d\d.*", str(rd.get("datePublished", ""))):
        bad.append("RO-Crate: datePublished must be an ISO 8601 date")
    return sorted(set(bad))
