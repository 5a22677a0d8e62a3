"""The analyst's web app at ``/app``: server-rendered pages over the other domains' public functions.

Sign-in uses the accounts domain's throttled login (a session cookie holds the access and refresh
tokens); experiment pages read ``experiments.results``; analytics reads the aggregation rollups; exports
go through aggregation's export functions. Charts are SVG drawn here (``webapp.charts``). The domain
owns no table and exports nothing (docs/webapp.md).
"""
