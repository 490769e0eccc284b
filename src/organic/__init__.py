"""organic: improve an open chat model by learning from its organic conversations with people."""

__version__ = "0.1.0"
