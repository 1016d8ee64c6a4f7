"""The operations page, ``/admin``: conversations, spend, what needs a person, the work
each process holds. Served by the bot's web server when ``BOTKIT_ADMIN_TOKEN`` is set
(``[web] admin_token_env`` names another variable); without it there is no ``/admin``.

Modules: ``auth`` (login, session cookie, CSRF), ``queries`` and ``records`` (what the
pages read), ``spend`` (spend by day: the chart in inline SVG and its figures),
``templates`` (escaped HTML), ``pages`` (the other pages' HTML), ``views`` (the handlers
and the app).
"""

from botkit.admin.views import admin_app

__all__ = ["admin_app"]
