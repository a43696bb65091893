"""Reading and writing generator checkpoints, and the named-weights registry."""

from .loader import detect_format, load_generator, read_generator_file

__all__ = ["detect_format", "load_generator", "read_generator_file"]
