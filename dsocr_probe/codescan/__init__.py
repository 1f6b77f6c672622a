"""Reading a checkpoint's own Python code as text: imports, hazards and the call graph.

``collect(folder)`` is the entry point: the modules ``trust_remote_code`` would load, each scanned,
with every hazard placed on the call graph.
"""

from .callgraph import FORWARD, IMPORT, INFERENCE, LOAD, PHASES, UNREACHED, CallGraph, Reach
from .collect import (
    AUTO_MAP_FILES, AutoMapEntry, AutoMapError, MissingModule, RemoteCode, RemoteModule, auto_map_entries, collect,
)
from .packages import is_installed, is_stdlib, pip_name
from .scan import NO_WEIGHTS_ONLY, Hazard, ImportRef, ModuleScan, scan_file, scan_source

__all__ = [
    "AUTO_MAP_FILES", "FORWARD", "IMPORT", "INFERENCE", "LOAD", "NO_WEIGHTS_ONLY", "PHASES", "UNREACHED",
    "AutoMapEntry", "AutoMapError", "CallGraph", "Hazard", "ImportRef", "MissingModule", "ModuleScan", "Reach",
    "RemoteCode", "RemoteModule", "auto_map_entries", "collect", "is_installed", "is_stdlib", "pip_name",
    "scan_file", "scan_source",
]
