"""Scoliosis screening from gait (Scoliosis1K: silhouettes and 2D pose; ScoNet, ScoNet-MT-ske,
DRF). Models and the trainer are registered by name; nothing is imported until one is built."""

from medrepro.train.registry import register_model, register_trainer

register_model("sconet", "medrepro.studies.scoliosis.models.sconet:ScoNet")
register_model("drf", "medrepro.studies.scoliosis.models.drf:DRF", needs=("pav",))
register_trainer("scoliosis", "medrepro.studies.scoliosis.trainer:ScoliosisTrainer")
