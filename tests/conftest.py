"""Shared fixtures. No __init__.py anywhere under tests/ (it would put the checkout root on sys.path and let
gnn/, operators/, datasets/ shadow installed packages such as HuggingFace `datasets`)."""
import signal

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Tests must not leak handlers, deterministic flags or thread settings into each other."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)}
    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    yield
    for s, h in handlers.items():
        signal.signal(s, h)
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)
