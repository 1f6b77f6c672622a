"""What the probes know, as data: version rules, transformers symbols, model families, trial settings."""
