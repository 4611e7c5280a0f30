"""`colfill ui`: a web dashboard of backfill progress, coverage, and candles with indicators, live over Redis.

Roles: `server` (start-up, binding, the address), `app` (pages, static files, the charting bundle), `api`
(the JSON API), `queries` (read-only SQL for each store kind), `resample` (OHLC aggregation to the zoom
level), `live` (Redis pub/sub and status keys); pages and their JavaScript are package data in `static/`.
Needs the extra `ui` (Starlette, uvicorn, the JavaScript bundled in the lightweight-charts wheel); the
coverage heatmap's sessions come from `colfill.calendar`. Nothing here is imported by `import colfill`.
"""
