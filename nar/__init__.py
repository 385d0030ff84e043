"""The Neural Architecture Ranker: model, training, evaluation and search by sampling."""
