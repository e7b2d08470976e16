"""Loes-score regression from brain MRI (the reference lab's CSV + NIfTI layout; MRI
normalization; MONAI's 3D residual regressor with OneCycleLR). Models and the trainer are
registered by name; nothing is imported until one is built."""

from medrepro.train.registry import register_model, register_trainer

register_model("loes_regressor", "medrepro.studies.loes.model:LoesRegressor")
register_trainer("loes", "medrepro.studies.loes.trainer:LoesTrainer")
