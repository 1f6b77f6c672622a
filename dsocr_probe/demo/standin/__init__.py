"""Offline stand-ins of the models dsocr-probe checks, small enough for a CPU test run."""

from .v1 import StandinUnavailable, write_v1_standin

__all__ = ["StandinUnavailable", "write_v1_standin"]
