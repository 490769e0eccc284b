"""Learning from organic feedback: training data, the CRINGE loss and its trainer, iterative CRINGE, TRL baselines.

This package reads labelled conversations (from the store or an export) and writes new model versions; it never
imports `organic.serve`. The mathematics (losses) are pure functions; trainers are `transformers.Trainer`
subclasses so that `accelerate launch` (DDP, FSDP, DeepSpeed) works unchanged.
"""
