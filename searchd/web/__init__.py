"""The web front end: the app factory (app.py), the pages and API blueprints over one view-data
layer (pages.py, api.py, views.py), and the hooks every request passes (security.py,
caching.py, errors.py)."""

from .app import create_app, web_dir
from .server import serving
from .views import PUBLIC_HEALTH

__all__ = ["PUBLIC_HEALTH", "create_app", "serving", "web_dir"]
