"""Signals of the apolloconf Django app."""

from django.dispatch import Signal

#: Sent on the client's listener thread after the mapped settings of one Apollo change
#: event were applied: ``sender`` is the :class:`apolloconf.Client`, ``event`` the
#: :class:`apolloconf.ChangeEvent`, ``settings`` the names of the Django settings that
#: changed (possibly empty).
config_changed = Signal()
