"""One package per study. Each holds everything that knows the study: data and readers,
synthetic data, preprocessing, models, trainer, evaluation, the layout of its outputs and its
audit note; ``<study>/layout.py`` defines its :class:`medrepro.workflow.Study` as ``STUDY``."""
