"""Inference backends. ``base`` holds the protocol the search talks to; only
``llama*.py`` modules import ``llama_cpp``, and only when first used."""
