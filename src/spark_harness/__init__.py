"""DGX Spark LLM storage harness: measure how storage shapes LLM inference."""

__version__ = "0.1.0"
