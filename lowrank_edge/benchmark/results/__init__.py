"""Benchmark results: one record per configuration (`records`), jsonl/csv files (`storage`),
a finished results folder or a merge of several (`folder`), and the provenance of a folder
(`provenance`: command.json with the command, git commit, date and machine)."""
