"""marco: o1-style reasoning (Marco-o1 + Monte Carlo Tree Search) over llama.cpp.

This package's top level is the library API; it imports no CLI or UI code.
"""

__version__ = "0.1.0"
