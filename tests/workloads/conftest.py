"""A prompt factory on the simulator's tokenization, for the workload tests."""

from __future__ import annotations

import pytest

from spark_harness.workloads import Prompts
from spark_harness.workloads.corpus import load_words
from spark_harness.workloads.counting import SimCounter


@pytest.fixture
def prompts() -> Prompts:
    return Prompts(SimCounter(), "completions", load_words(), seed=11)


@pytest.fixture
def chat_prompts() -> Prompts:
    return Prompts(SimCounter(), "chat", load_words(), seed=11)
