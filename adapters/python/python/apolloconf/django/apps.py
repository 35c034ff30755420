"""The Django app config of ``apolloconf.django``."""

from django.apps import AppConfig


class ApolloConfConfig(AppConfig):
    name = "apolloconf.django"
    label = "apolloconf"
    verbose_name = "Apollo configuration (apolloconf)"

    def ready(self) -> None:
        from . import conf

        conf.validate()
        if not conf.options().get("lazy", False):
            conf.get_client()
