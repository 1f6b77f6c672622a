"""What each finding code says, in English (the msgids), one module per area of the probes."""
