"""The job's report: figures (``plots``) and the summary's tables (``summary``)."""
