"""Classifying inbound mail: the learned model, the phrase rules, their evaluation and training."""

from handlers.classify.models_on_disk import model_file

__all__ = ["model_file"]
