"""The report: the Markdown and JSON renderer, its templates' labels and the terminal summary."""
