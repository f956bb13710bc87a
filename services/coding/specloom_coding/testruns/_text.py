"""The text helpers the coding steps clip with (kept where they were imported from)."""

from specloom.testruns._text import clip, clip_lines, normalize, tail

__all__ = ["clip", "clip_lines", "normalize", "tail"]
