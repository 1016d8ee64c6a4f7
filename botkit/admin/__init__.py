"""The operations page, ``/admin``: conversations, spend, what needs a person, the work
each process holds. Served by the bot's web server when ``BOTKIT_ADMIN_TOKEN`` is set
(``[web] admin_token_env`` names another variable); without it there is no ``/admin``.

Modules: ``auth`` (login, session cookie, CSRF), ``queries`` (what the pages read),
``chart`` (spend by day as inline SVG), ``templates`` (escaped HTML), ``pages`` (each
page's HTML), ``views`` (the handlers and the app).
"""

from botkit.admin.views import admin_app

__all__ = ["admin_app"]
