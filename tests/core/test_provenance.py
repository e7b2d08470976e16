import json

import jsonschema
import pytest

from medrepro.codehash import files_hash as code_hash
from medrepro.errors import MismatchError
from medrepro.provenance import Recorder, lineage_id, lookup_lineage

from repo_paths import REPO


def test_code_hash_depends_on_exactly_the_named_modules():
    a = code_hash(["medrepro.fsutil"])
    assert a == code_hash(["medrepro.fsutil"])
    assert a != code_hash(["medrepro.errors"])
    assert len(a) == 64


def test_lineage_id_changes_with_params_code_and_inputs():
    base = lineage_id("r", {"lr": 0.1}, "c" * 64, ["x"])
    assert base == lineage_id("r", {"lr": 0.1}, "c" * 64, ["x"])
    assert base != lineage_id("r", {"lr": 0.2}, "c" * 64, ["x"])
    assert base != lineage_id("r", {"lr": 0.1}, "d" * 64, ["x"])
    assert base != lineage_id("r", {"lr": 0.1}, "c" * 64, ["y"])


def test_record_fields_and_schema(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text("data")
    mid = tmp_path / "a" / "mid.txt"
    mid.parent.mkdir()
    mid.write_text("step 1")
    rec1 = Recorder("step1", {}, {"k": 1}, [raw], [mid], code_modules=["medrepro.fsutil"], seeds={"s": 3})
    r1 = rec1.finish(mid.parent / "step1.provenance.json")
    assert lookup_lineage(mid) == r1["lineage_id"]
    out = tmp_path / "b" / "out.txt"
    out.parent.mkdir()
    out.write_text("step 2")
    r2 = Recorder("step2", {"run": "x"}, {}, [mid], [out], code_modules=["medrepro.fsutil"]).finish(
        out.parent / "step2.provenance.json")
    schema = json.loads((REPO / "workflow/schemas/provenance.schema.json").read_text())
    for r in (r1, r2):
        jsonschema.validate(r, schema)
        assert r["device"]["used"] == "cpu" and r["device"]["cpu"]
        assert r["packages"]["torch"].startswith("2.13.0")
    # the input's lineage is the producing job's lineage id, not just its hash
    assert r2["inputs"][0]["lineage_id"] == r1["lineage_id"]
    assert r1["inputs"][0]["lineage_id"] == r1["inputs"][0]["sha256"]
    assert r1["seeds"] == {"s": 3}
    assert r2["wildcards"] == {"run": "x"}
    assert r2["outputs"][0]["sha256"] and r2["outputs"][0]["size"] == 6


def test_lineage_differs_between_seeds(tmp_path):
    """Two seeds of one run share rule, params, code and inputs; the wildcards tell them apart."""
    ids = []
    for seed in ("0", "1"):
        out = tmp_path / seed / "out.txt"
        out.parent.mkdir()
        out.write_text("same bytes")
        ids.append(Recorder("train", {"run": "a", "seed": seed}, {"lr": 0.1}, [], [out],
                            code_modules=["medrepro.fsutil"]).finish(out.parent / "p.json")["lineage_id"])
    assert ids[0] != ids[1]


def test_slurm_fields_from_the_job_environment(monkeypatch):
    from medrepro.provenance import slurm_info

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert slurm_info() is None
    for key, value in {"SLURM_JOB_ID": "42", "SLURM_JOB_PARTITION": "gpu", "SLURMD_NODENAME": "n1",
                       "SLURM_CLUSTER_NAME": "lab", "SLURM_GPUS_ON_NODE": "1", "SLURM_STEP_ID": "0"}.items():
        monkeypatch.setenv(key, value)
    info = slurm_info()
    assert info["job_id"] == "42" and info["partition"] == "gpu" and info["node"] == "n1"
    assert info["cluster"] == "lab" and info["gpus"] == "1" and info["step_id"] == "0"


def test_inputs_are_hashed_from_their_bytes_once_per_change(tmp_path, monkeypatch):
    """Every job hashes the bytes it reads; an unchanged file is hashed once and the hash is
    reused from the cache (keyed by size, mtime, ctime and inode), never from another record."""
    import medrepro.hashcache as hc

    monkeypatch.setenv(hc.ENV, str(tmp_path / "cache"))
    mid = tmp_path / "a" / "mid.txt"
    mid.parent.mkdir()
    mid.write_text("step 1")
    r1 = Recorder("step1", {}, {}, [], [mid], code_modules=["medrepro.fsutil"]).finish(mid.parent / "s1.provenance.json")
    out = tmp_path / "out.txt"
    out.write_text("x")
    hashed = []
    real = hc.sha256_file
    monkeypatch.setattr(hc, "sha256_file", lambda p: hashed.append(str(p)) or real(p))
    r2 = Recorder("step2", {}, {}, [mid], [out], code_modules=["medrepro.fsutil"]).finish(tmp_path / "s2.provenance.json")
    assert str(mid) not in hashed  # unchanged since step1 hashed it: from the cache
    assert r2["inputs"][0]["sha256"] == r1["outputs"][0]["sha256"]
    assert r2["inputs"][0]["lineage_id"] == r1["lineage_id"]
    mid.write_text("step 1, edited")
    with pytest.raises(MismatchError) as err:
        Recorder("step2", {}, {}, [mid], [out]).check_inputs()
    assert str(mid) in str(err.value) and "s1.provenance.json" in str(err.value)
    assert str(mid) in hashed  # changed: hashed again


def test_the_cache_never_serves_a_changed_file(tmp_path, monkeypatch):
    import medrepro.hashcache as hc

    monkeypatch.setenv(hc.ENV, str(tmp_path / "cache"))
    f = tmp_path / "f.bin"
    f.write_bytes(b"a" * 100)
    first = hc.file_sha256(f)
    f.unlink()
    f.write_bytes(b"b" * 100)  # same size, new inode
    assert hc.file_sha256(f) != first
    monkeypatch.setenv(hc.ENV, "")
    assert hc.file_sha256(f) == hc.sha256_file(f)


def test_snakemakes_directory_marker_is_not_part_of_a_folder_hash(tmp_path):
    from medrepro.provenance import path_sha256

    (tmp_path / "a.txt").write_text("a")
    before = path_sha256(tmp_path, cached=False)
    (tmp_path / ".snakemake_timestamp").write_text("")
    assert path_sha256(tmp_path, cached=False) == before
    (tmp_path / "b.txt").write_text("b")
    assert path_sha256(tmp_path, cached=False) != before


def test_a_changed_file_inside_a_produced_folder_is_named(tmp_path):
    folder = tmp_path / "maps"
    folder.mkdir()
    (folder / "a.npy").write_bytes(b"a")
    (folder / "b.npy").write_bytes(b"b")
    rec = Recorder("make", {}, {}, [], [folder]).finish(tmp_path / "make.provenance.json")
    assert set(rec["outputs"][0]["files"]) == {"a.npy", "b.npy"}
    (folder / "b.npy").write_bytes(b"B")
    (folder / "c.npy").write_bytes(b"c")
    with pytest.raises(MismatchError, match=r"changed: b\.npy \(recorded [0-9a-f]{64}, now [0-9a-f]{64}\); added: c\.npy"):
        Recorder("use", {}, {}, [folder], []).check_inputs()


def test_records_say_what_decides_bitwise_reproducibility(tmp_path):
    import torch  # noqa: F401  (a training job has imported it)

    out = tmp_path / "o.txt"
    out.write_text("o")
    rec = Recorder("r", {}, {}, [], [out]).finish(tmp_path / "r.provenance.json")
    num = rec["numerics"]
    assert isinstance(num["cpu_flags"], list) and "blas" in num
    assert set(num["torch"]) >= {"num_threads", "deterministic_algorithms", "mkldnn", "cudnn"}


def test_an_output_outside_its_records_folder_keeps_its_lineage(tmp_path, monkeypatch):
    """A job whose record sits beside its first output also wrote a figure in a sibling folder;
    a job reading that figure takes the producer's lineage id, not a raw file's."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results/study/qc").mkdir(parents=True)
    (tmp_path / "results/study/figures").mkdir()
    (tmp_path / "results/study/qc/table.csv").write_text("t")
    (tmp_path / "results/study/figures/qc.png").write_bytes(b"png")
    qc = Recorder("qc", {}, {}, [], ["results/study/qc/table.csv", "results/study/figures/qc.png"]).finish(
        "results/study/qc/qc.provenance.json")
    (tmp_path / "results/board.md").write_text("b")
    board = Recorder("board", {}, {}, ["results/study/figures/qc.png"], ["results/board.md"]).finish(
        "results/board.provenance.json")
    assert board["inputs"][0]["lineage_id"] == qc["lineage_id"]
    from medrepro.verify import verify_results

    assert verify_results(tmp_path / "results").clean


def test_records_carry_the_full_package_set_and_environment_txt_matches(tmp_path):
    import hashlib
    import importlib.metadata

    import numpy

    from medrepro.provenance import environment, read_environment, write_environment

    env = environment()
    assert env["distributions"]["numpy"] == numpy.__version__
    assert env["distributions"]["medrepro"] == importlib.metadata.version("medrepro")
    assert len(env["distributions"]) == len({d.metadata["Name"].lower().replace("_", "-")
                                               for d in importlib.metadata.distributions() if d.metadata["Name"]})
    lines = "".join(f"{n}=={v}\n" for n, v in env["distributions"].items())
    assert env["sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    out = tmp_path / "o.txt"
    out.write_text("x")
    rec = Recorder("r", {}, {}, [], [out], code_modules=["medrepro.fsutil"]).finish(tmp_path / "r.provenance.json")
    assert rec["environment"] == env
    path = tmp_path / "environment.txt"
    write_environment(path)
    text = path.read_text()
    assert f"numpy=={numpy.__version__}\n" in text and env["sha256"] in text.splitlines()[2]
    assert read_environment(path) == {"sha256": env["sha256"], "n_distributions": len(env["distributions"])}
    # the hash is recomputed from the lines, not read from the header
    path.write_text(text.replace(f"numpy=={numpy.__version__}", "numpy==0.0"))
    assert read_environment(path)["sha256"] != env["sha256"]
