"""python -m catalog_svc"""

from retail_kit.server import run_service

from catalog_svc import app, settings

run_service(app.NAME, lambda: app.build_host(settings.load()))
