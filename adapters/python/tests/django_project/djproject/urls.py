from django.http import JsonResponse
from django.urls import path

from apolloconf.django import config


class StaleView:
    # Copied at import time: never sees a change (what the live accessor fixes).
    page_size = config.PAGE_SIZE


def feature(request):
    return JsonResponse({"feature_x": config.FEATURE_X, "page_size": config.PAGE_SIZE, "stale": StaleView.page_size})


urlpatterns = [path("feature", feature)]
