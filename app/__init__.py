"""HTTP API of the fine-tuning service (FastAPI)."""
