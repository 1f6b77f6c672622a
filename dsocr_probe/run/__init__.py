"""Running the probes: one probe at a time, in a child process when a time limit is set."""
