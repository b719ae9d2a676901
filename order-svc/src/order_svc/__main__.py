"""python -m order_svc"""

from order_svc import app, settings
from retail_kit.server import run_service

run_service(app.NAME, lambda: app.build_host(settings.load()))
