"""The control center: the web face operators use, over the same ``Service`` as the REST API.

Server-rendered (Jinja2) pages with htmx vendored in ``static/`` (no CDN, no build step),
mounted by ``api.app.create_app`` at ``/ui``. See docs/control-center.md.
"""

from .app import control_center

__all__ = ["control_center"]
