"""Parameter initialisation schemes for the scoliosis models (a training-recipe key, kept out of
the model modules: models are loaded by name, so a model's code hash covers only its own files).

``opengait``: OpenGait's (ShiqiYu/OpenGait, commit 0efafd4779f127fbce34f22aff301bd82e923da5);
``pytorch``: the modules' own defaults.
"""

from __future__ import annotations

from torch import nn

INITS = ("opengait", "pytorch")


def opengait_init(model: nn.Module) -> nn.Module:
    """Re-initialise ``model`` in place as OpenGait's ``BaseModel.init_parameters``
    (opengait/modeling/base_model.py, run right after ``build_network``): Conv1d/2d/3d and Linear
    weights Xavier-uniform, their biases 0; affine BatchNorm1d/2d/3d weights N(1, 0.02), biases 0.
    Parameters outside such modules (the part weights of SeparateFCs / SeparateBNNecks) keep the
    Xavier-uniform init they got at construction, as in OpenGait's modules.py. Draws from torch's
    global RNG, so a seeded build gives the same weights."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return model
