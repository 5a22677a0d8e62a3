"""Corp Astro core API and the kernel every domain uses (settings, database, auth, app factory)."""
