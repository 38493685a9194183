from django.contrib import admin
from django.urls import path

from accounts import api as accounts_api
from gateway import proxy, spend_api
from models_registry import api as models_api

urlpatterns = [
    # OpenAI-compatible relay (with and without the /v1 prefix, as LiteLLM serves them)
    path("v1/chat/completions", proxy.chat_completions),
    path("chat/completions", proxy.chat_completions),
    path("v1/models", proxy.list_models),
    path("models", proxy.list_models),
    # health
    path("health/liveliness", proxy.health_liveliness),
    path("health/liveness", proxy.health_liveliness),
    path("health/readiness", proxy.health_readiness),
    # management API (LiteLLM's paths)
    path("key/generate", accounts_api.KeyGenerateApi.as_view()),
    path("key/info", accounts_api.KeyInfoApi.as_view()),
    path("key/update", accounts_api.KeyUpdateApi.as_view()),
    path("key/delete", accounts_api.KeyDeleteApi.as_view()),
    path("key/block", accounts_api.KeyBlockApi.as_view()),
    path("key/unblock", accounts_api.KeyUnblockApi.as_view()),
    path("key/regenerate", accounts_api.KeyRegenerateApi.as_view()),
    path("key/list", accounts_api.KeyListApi.as_view()),
    path("team/new", accounts_api.TeamNewApi.as_view()),
    path("team/info", accounts_api.TeamInfoApi.as_view()),
    path("team/update", accounts_api.TeamUpdateApi.as_view()),
    path("team/delete", accounts_api.TeamDeleteApi.as_view()),
    path("team/list", accounts_api.TeamListApi.as_view()),
    path("model/info", models_api.ModelInfoApi.as_view()),
    path("spend/logs", spend_api.SpendLogsApi.as_view()),
    path("v1/model/info", models_api.ModelInfoApi.as_view()),
    # operator console
    path("admin/", admin.site.urls),
]

handler400 = "gateway.proxy.bad_request"
handler404 = "gateway.proxy.not_found"
handler500 = "gateway.proxy.server_error"
