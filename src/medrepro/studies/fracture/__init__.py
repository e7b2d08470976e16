"""Fracture segmentation and presence on radiographs (the challenge's image / mask / CSV layout
and FracAtlas's own; MONAI's 2D U-Net, optionally with a presence head on its bottleneck; the
challenge leaderboard's rules). Models and the trainer are registered by name; nothing is
imported until one is built."""

from medrepro.train.registry import register_model, register_trainer

register_model("unet", "medrepro.studies.fracture.model:FractureUNet")
register_model("unet_presence", "medrepro.studies.fracture.model:FractureUNetPresence", needs=("presence_head",))
register_trainer("fracture", "medrepro.studies.fracture.trainer:FractureTrainer")
