import gc
import os

from django.core.wsgi import get_wsgi_application

from gateway.middleware import RelayEntry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

django_application = get_wsgi_application()
application = RelayEntry(django_application)  # chat completions skip Django's request cycle (see RelayEntry)

# Everything loaded so far (Django, the apps, the URL map) lives as long as the worker: keep it out of the garbage
# collector's full passes, which otherwise walk it again and again under load (2-3 % of a relayed request's CPU).
gc.freeze()
