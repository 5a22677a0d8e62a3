"""The kernel every domain uses: settings, database, auth primitives, errors and their one HTTP mapping,
the app factory, the HTTP protocol layer, observability and the CLI root. It imports no domain."""
