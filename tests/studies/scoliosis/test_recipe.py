"""The OpenGait recipe keys of the scoliosis trainer (label smoothing, triplet reduction and
labels, initialisation, fp16 at test) and the models' input check, against hand computations
that follow the released code (ShiqiYu/OpenGait, commit 0efafd4779f127fbce34f22aff301bd82e923da5)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import medrepro.studies.scoliosis  # noqa: F401  (registers the models)
from medrepro.errors import InputError
from medrepro.studies.scoliosis import trainer as trainer_mod
from medrepro.studies.scoliosis.evaluate import evaluate_checkpoint, fp16_at_eval
from medrepro.studies.scoliosis.losses import part_cross_entropy, part_triplet
from medrepro.studies.scoliosis.run import train_config
from medrepro.studies.scoliosis.store import PKSampler, SequenceStore, subject_of
from medrepro.studies.scoliosis.trainer import ScoliosisTrainer, TrainConfig, train
from medrepro.train.registry import build_model

from repo_paths import REPO

SPLIT_CLASSES = {"negative": 0, "neutral": 1, "positive": 2}
TINY = dict(width=0.0625, p=2, k=3, clip=3, device="cpu", threads=1)


def tiny_store(seqs_per_subject=(2, 2, 1), frames=5):
    """Sequences ``<subject>/<label>/<view>``; every frame of sequence i holds the value i, so a
    batch shows which sequence each sample came from."""
    seqs, labels, order = {}, {}, []
    for s, n in enumerate(seqs_per_subject):
        for v in range(n):
            sid = f"{s:05d}/{['negative', 'neutral', 'positive'][s % 3]}/view{v}"
            seqs[sid] = np.full((frames, 1, 64, 64), len(order), dtype=np.uint8)
            labels[sid] = s % 3
            order.append(sid)
    ids = sorted(seqs)
    split = {"train": ids, "val": ids, "test": ids, "class_map": SPLIT_CLASSES}
    return SequenceStore(seqs, labels), split, order


# --- cross-entropy with label smoothing ---------------------------------------------------------

def test_label_smoothing_matches_the_released_formula():
    """ce.py: F.cross_entropy(logits * scale, labels per part, label_smoothing=eps): per sample and
    part, (1 - eps) * (-log p_y) + eps * mean_c(-log p_c), averaged over samples and parts."""
    logits = torch.tensor([[[0.1, -0.3], [0.5, 0.2], [-0.2, 0.4]],
                           [[0.3, 0.0], [-0.1, 0.1], [0.2, -0.5]]])  # (N=2, K=3, P=2)
    labels = torch.tensor([2, 0])
    eps, scale = 0.1, 16.0
    terms = []
    for n in range(2):
        for p in range(2):
            z = [scale * float(logits[n, c, p]) for c in range(3)]
            log_norm = math.log(sum(math.exp(v) for v in z))
            nll = [log_norm - v for v in z]
            terms.append((1 - eps) * nll[int(labels[n])] + eps * sum(nll) / 3)
    expected = sum(terms) / len(terms)
    got = part_cross_entropy(logits, labels, scale, label_smoothing=eps).item()
    assert got == pytest.approx(expected, rel=1e-5)
    assert part_cross_entropy(logits, labels, scale).item() != pytest.approx(expected, rel=1e-3)


# --- triplet loss --------------------------------------------------------------------------------

def _hand_triplet(emb, labels, margin, per_part):
    """Loops over parts, anchors, positives, negatives. per_part follows the released triplet.py
    (positives from the label match matrix, diagonal included; mean of the non-zero hinge terms
    per part, 0 when none; then mean over parts); pooled is medrepro's earlier loss (positive !=
    anchor, one mean over the non-zero terms of all parts)."""
    n, _, parts = emb.shape
    per, pooled = [], []
    for p in range(parts):
        v = [emb[i, :, p].tolist() for i in range(n)]
        terms = []
        for a in range(n):
            for q in range(n):
                if labels[q] != labels[a] or (not per_part and q == a):
                    continue
                for m in range(n):
                    if labels[m] != labels[a]:
                        terms.append(max(0.0, math.dist(v[a], v[q]) - math.dist(v[a], v[m]) + margin))
        nonzero = [t for t in terms if t > 0]
        per.append(sum(nonzero) / len(nonzero) if nonzero else 0.0)
        pooled += nonzero
    return sum(per) / parts if per_part else sum(pooled) / max(1, len(pooled))


def test_triplet_per_part_follows_released_code_and_differs_from_pooled():
    # part 0: classes overlap, many small hinge terms; part 1: a few large ones. per_part weighs
    # the two parts equally, pooled by their numbers of non-zero terms.
    emb = torch.tensor([[[0.0, 0.0], [0.0, 0.0]],
                        [[0.3, 2.0], [0.1, 0.0]],
                        [[0.2, 2.3], [0.0, 0.0]],
                        [[0.1, 5.0], [0.2, 0.0]]])  # (N=4, D=2, P=2)
    labels = torch.tensor([0, 0, 1, 1])
    per_part = part_triplet(emb, labels, 0.2, "per_part").item()
    pooled = part_triplet(emb, labels, 0.2, "pooled").item()
    assert per_part == pytest.approx(_hand_triplet(emb, labels.tolist(), 0.2, True), rel=1e-5)
    assert pooled == pytest.approx(_hand_triplet(emb, labels.tolist(), 0.2, False), rel=1e-5)
    assert abs(per_part - pooled) > 0.01
    with pytest.raises(ValueError, match="per_part"):
        part_triplet(emb, labels, 0.2, "mean")


# --- subject sampler and triplet labels ------------------------------------------------------------

def test_subject_of():
    assert subject_of("00042/positive/000_180") == "00042"
    assert subject_of("00042") == "00042"  # this repo's manifests: the id is the subject


def test_sampler_draws_p_subjects_times_k_sequences():
    store, split, order = tiny_store()
    sampler = PKSampler(split["train"], store.labels, p=2, k=2, clip=3, by="subject")
    assert sampler.subjects == ["00000", "00001", "00002"]
    rng = np.random.default_rng(0)
    seen_both = False
    for _ in range(20):
        x, y, tri, _ = sampler.batch(store, rng)
        assert x.shape == (4, 1, 3, 64, 64)
        source = [order[int(x[i, 0, 0, 0, 0])] for i in range(4)]
        blocks = [tri[:2].tolist(), tri[2:].tolist()]
        assert all(len(set(b)) == 1 for b in blocks) and blocks[0][0] != blocks[1][0]  # P = 2 subjects
        for i, sid in enumerate(source):
            assert subject_of(sid) == sampler.subjects[tri[i]]  # triplet label = the sample's subject
            assert y[i] == store.labels[sid]  # class label kept for the cross-entropy
        for b in (source[:2], source[2:]):
            if subject_of(b[0]) != "00002":  # 2 sequences, K = 2: drawn without replacement
                assert len(set(b)) == 2
                seen_both = True
    assert seen_both


def test_sampler_draws_with_replacement_when_a_subject_has_fewer_than_k():
    store, split, order = tiny_store()
    sampler = PKSampler(split["train"], store.labels, p=3, k=3, clip=2, by="subject")
    x, _, tri, _ = sampler.batch(store, np.random.default_rng(0))
    assert x.shape[0] == 9 and sorted(np.bincount(tri).tolist()) == [3, 3, 3]


def test_class_mode_is_p_sequences_times_k_clips_with_class_labels():
    store, split, order = tiny_store()
    sampler = PKSampler(split["train"], store.labels, p=2, k=3, clip=2, by="class")
    x, y, tri, _ = sampler.batch(store, np.random.default_rng(0))
    source = [order[int(x[i, 0, 0, 0, 0])] for i in range(6)]
    assert len(set(source[:3])) == 1 and len(set(source[3:])) == 1
    assert tri.tolist() == y.tolist()


@pytest.mark.parametrize("mode", ["subject", "class"])
def test_trainer_passes_subject_ids_to_the_triplet_loss(monkeypatch, mode):
    store, split, order = tiny_store()
    calls = {}

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] = (args, kwargs)
            return fn(*args, **kwargs)
        monkeypatch.setattr(trainer_mod, name, wrapped)

    spy("part_triplet", part_triplet)
    spy("part_cross_entropy", part_cross_entropy)
    trainer = ScoliosisTrainer(TrainConfig(**TINY, triplet_labels=mode), store, split)
    torch.manual_seed(0)
    model = trainer.build_model()
    batch = trainer.next_batch(np.random.default_rng(0))
    trainer.loss(model, batch)
    x = batch[0]
    source = [order[int(x[i, 0, 0, 0, 0])] for i in range(len(x))]
    tri_labels = calls["part_triplet"][0][1].tolist()
    if mode == "subject":
        assert [trainer.sampler.subjects[t] for t in tri_labels] == [subject_of(s) for s in source]
    else:
        assert tri_labels == [store.labels[s] for s in source]
    assert calls["part_triplet"][0][3] == "per_part"
    assert calls["part_cross_entropy"][0][1].tolist() == [store.labels[s] for s in source]
    assert calls["part_cross_entropy"][0][4] == pytest.approx(0.1)


# --- initialisation ----------------------------------------------------------------------------------

def _built(seed, init="opengait", model="sconet", channels=1):
    store = SequenceStore({"a": np.zeros((2, channels, 64, 64), np.uint8)}, {"a": 0})
    trainer = ScoliosisTrainer(TrainConfig(**TINY, model=model, init=init), store,
                               {"train": ["a"], "val": [], "test": []})
    torch.manual_seed(seed)  # as the shared loop does right before build_model
    return trainer.build_model()


def test_opengait_init_bounds_and_moments():
    model = _built(0)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs
    for m in convs:
        fan_in, fan_out = m.weight[0].numel(), m.weight[:, 0].numel()
        bound = math.sqrt(6.0 / (fan_in + fan_out))  # Xavier-uniform, gain 1
        w = m.weight.detach().abs()
        assert w.max() <= bound + 1e-7 and w.max() > 0.8 * bound
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    w = torch.cat([m.weight.detach() for m in bns])
    assert len(w) > 300
    assert abs(w.mean().item() - 1.0) < 0.005 and 0.015 < w.std().item() < 0.025
    assert all(torch.count_nonzero(m.bias) == 0 for m in bns)
    # PyTorch's defaults differ: BN weights are all 1
    default = _built(0, init="pytorch")
    assert all(torch.equal(m.weight, torch.ones_like(m.weight))
               for m in default.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_opengait_init_covers_drf_gates_and_is_deterministic():
    drf = _built(0, model="drf", channels=2)
    assert torch.count_nonzero(drf.pga.channel.bias) == 0 and torch.count_nonzero(drf.pga.part.bias) == 0
    a, b, c = (_built(s).state_dict() for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


# --- fp16 autocast at test ----------------------------------------------------------------------------

def test_fp16_at_eval_only_on_cuda():
    assert fp16_at_eval(True, torch.device("cuda")) is True
    assert fp16_at_eval(True, torch.device("cpu")) is False
    assert fp16_at_eval(False, torch.device("cuda")) is False


def _autocast_spy(monkeypatch):
    calls, real = [], torch.autocast

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "autocast", spy)
    return calls


def test_eval_fp16_not_used_on_cpu_and_recorded(tmp_path, monkeypatch):
    store, split, _ = tiny_store()
    calls = _autocast_spy(monkeypatch)
    cfg = TrainConfig(**TINY, iterations=2, eval_every=2, checkpoint_every=2, milestones=(10,))
    summary = train(cfg, store, split, tmp_path, tmp_path / "ckpt.pt", tmp_path / "log.jsonl", tmp_path / "s.json")
    assert summary["config"]["eval_fp16"] is True and summary["eval_fp16"] is False
    assert calls and not any(c["enabled"] for c in calls)
    calls.clear()
    result = evaluate_checkpoint(tmp_path / "ckpt.pt", store, split, study="scoliosis", run="r", seed=0,
                                 split_name="s", data_kind="synthetic", train_summary=summary,
                                 metrics_out=tmp_path / "m.json", predictions_out=tmp_path / "p.csv",
                                 iterations=5, boot_seed=0, eval_fp16=True)
    cuda = torch.cuda.is_available()  # evaluate_checkpoint picks CUDA where there is one
    assert result["details"]["eval_fp16"] is cuda
    assert calls and all(c["enabled"] is cuda for c in calls)


def test_eval_fp16_autocasts_on_cuda(monkeypatch):
    if not torch.cuda.is_available():
        print("skipped: no CUDA device")
        pytest.skip("no CUDA device: fp16 autocast at test only applies on CUDA")
    from medrepro.studies.scoliosis.evaluate import predict

    store, split, _ = tiny_store()
    torch.manual_seed(0)
    model = build_model("sconet", in_channels=1, n_classes=3, width=0.0625).cuda()
    calls = _autocast_spy(monkeypatch)
    half = predict(model, store, split["test"], torch.device("cuda"), fp16=True)
    assert calls and all(c["enabled"] and c["dtype"] == torch.float16 and c["device_type"] == "cuda" for c in calls)
    calls.clear()
    full = predict(model, store, split["test"], torch.device("cuda"), fp16=False)
    assert calls and not any(c["enabled"] for c in calls)
    cols = [c for c in half.columns if c.startswith("logit_")]
    assert np.allclose(half[cols].to_numpy(), full[cols].to_numpy(), atol=1e-2)


# --- model input check --------------------------------------------------------------------------------

@pytest.mark.parametrize("name,channels,shape", [
    ("sconet", 1, (2, 1, 7, 64, 44)),  # already cut: would be cut again to 64 x 24
    ("sconet", 1, (2, 2, 7, 64, 64)),  # wrong channels
    ("sconet", 2, (2, 7, 64, 64)),  # 4-D
    ("drf", 2, (2, 2, 7, 64, 44)),
    ("drf", 2, (2, 1, 7, 64, 64)),
])
def test_models_refuse_other_input_shapes(name, channels, shape):
    model = build_model(name, in_channels=channels, n_classes=3, width=0.0625)
    x = torch.zeros(shape, dtype=torch.uint8)
    with pytest.raises(InputError) as err:
        model(x, torch.zeros(2, 8, 3))
    msg = str(err.value)
    assert f"(N, {channels}, T, 64, 64)" in msg and str(tuple(shape)) in msg


# --- key validation, schema, real-data template -------------------------------------------------------

@pytest.mark.parametrize("key,value,allowed", [
    ("triplet_labels", "pid", "subject, class"),
    ("triplet_reduction", "mean", "per_part, pooled"),
    ("init", "xavier", "opengait, pytorch"),
    ("label_smoothing", 1.0, "[0, 1)"),
    ("label_smoothing", "0.1", "[0, 1)"),
    ("label_smoothing", True, "[0, 1)"),
    ("eval_fp16", "yes", "true or false"),
])
def test_bad_recipe_values_raise_input_error(key, value, allowed):
    with pytest.raises(InputError) as err:
        TrainConfig(**{key: value})
    assert err.value.field == key and allowed in str(err.value)
    with pytest.raises(InputError, match=key):
        train_config({"model": "sconet", key: value}, seed=0)


NEW_KEYS = {"triplet_labels": "subject", "label_smoothing": 0.1, "triplet_reduction": "per_part",
            "init": "opengait", "eval_fp16": True}


def test_defaults_schema_and_real_template_agree():
    cfg = TrainConfig()
    assert {k: getattr(cfg, k) for k in NEW_KEYS} == NEW_KEYS
    schema = yaml.safe_load((REPO / "workflow/schemas/studies/scoliosis.schema.yaml").read_text())
    props = schema["$defs"]["train"]["properties"]
    assert all(k in props and props[k].get("description") for k in NEW_KEYS)
    assert props["triplet_labels"]["enum"] == ["subject", "class"]
    assert props["triplet_reduction"]["enum"] == ["per_part", "pooled"]
    assert props["init"]["enum"] == ["opengait", "pytorch"]
    real = yaml.safe_load(Path(REPO / "config/real/scoliosis1k.yaml").read_text())
    defaults = real["studies"]["scoliosis"]["train_defaults"]
    assert {k: defaults[k] for k in NEW_KEYS} == NEW_KEYS and defaults["amp"] is True
