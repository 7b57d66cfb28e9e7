"""Benchmark results: one record per configuration (`records`), jsonl/csv files (`storage`),
and a finished results folder or a merge of several (`folder`)."""
