"""The generate tests share ``tiny_model_dir`` and ``prepared_home`` (tests/conftest.py); torch gets one thread."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

torch.set_num_threads(1)  # the test machine's cores are shared
