"""``corp-astro bench ingest`` (see ``bench.ingest.command``)."""
