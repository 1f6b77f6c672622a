"""Reading a checkpoint's own Python code as text: imports, hazards and the call graph."""
