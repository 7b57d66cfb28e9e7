"""The end-to-end job: orchestration (`run`), measurement (`measure`), the pipeline's markdown
report (`report`) and plots (`plots`)."""
