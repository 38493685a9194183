import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

application = get_wsgi_application()

# Everything loaded so far (Django, the apps, the URL map) lives as long as the worker: keep it out of the garbage
# collector's full passes, which otherwise walk it again and again under load (2-3 % of a relayed request's CPU).
gc.freeze()
