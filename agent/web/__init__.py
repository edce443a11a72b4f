"""The web console: the station's bay wall and the fleet's programme, compliance, partner and auditor views.

One aiohttp application per host (:mod:`agent.web.server`), server-rendered with Jinja2 (autoescaped,
strict undefined) and progressive enhancement: every page works without JavaScript; ``static/live.js``
adds live updates over server-sent events where a page asks for them. Nothing is fetched from the
internet at run time: styles, scripts and charts (server-side SVG, :mod:`agent.web.charts`) ship in
the package.

Layout::

    server.py     Console: routes with their roles (default deny), middlewares (errors, security
                  headers, sessions, CSRF, roles), sign-in/out, serve()
    accounts.py   local accounts (scrypt hashes) in a 0600 file; roles
    sessions.py   server-side sessions, CSRF tokens, the sign-in rate limiter
    render.py     the Jinja2 environment and ``render()``
    station.py    the station's bay wall (reads the daemon's Unix-socket API; the daemon keeps no network)
    fleet*.py     the fleet's dashboard, compliance, partner and auditor views (PostgreSQL)
"""
