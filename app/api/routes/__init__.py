"""Routers, one per resource: datasets, jobs, base_models, ops (service); models, predict (serving)."""
