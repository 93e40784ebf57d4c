"""Campaign history: what changed between checks, progress and ETA of a running campaign, waiting for a run."""
