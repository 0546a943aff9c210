"""model_core: BERT tokenizer, encoder, classifier, trainer and evaluator (no web, DB or Celery imports)."""
