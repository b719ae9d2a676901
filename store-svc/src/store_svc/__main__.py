"""python -m store_svc"""

import sys

from retail_kit.server import run_service
from store_svc import app, settings

run_service(app.NAME, lambda: app.build_host(settings.load()))
if app.refused:
    sys.exit(2)
