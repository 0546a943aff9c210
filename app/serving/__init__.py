"""Serving: the dynamic batcher, the LRU of loaded models and the PredictionService that ties them to the store."""
from app.serving.service import PredictionService

__all__ = ["PredictionService"]
