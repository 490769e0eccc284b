"""Data in and out of the store: the BB3x release format, flat JSONL / Parquet / HF datasets, TRL training
sets, PII scrubbing and the data card. Formats convert files to and from ``organic.store.records``."""
