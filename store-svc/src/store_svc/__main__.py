"""python -m store_svc"""

from retail_kit.server import run_service
from store_svc import app, settings

run_service(app.NAME, lambda: app.build_host(settings.load()))
