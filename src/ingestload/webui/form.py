"""The swarm form's ingestload fields, checked before Locust starts anything.

Locust's ``/swarm`` handler copies every field of the form into ``environment.parsed_options``
(empty fields as ``''``) and starts the users; ingestload reads the options again at each test
start. :func:`check_swarm_form` runs first (a ``before_request`` hook of the web UI): it builds
the settings the test would run with — the current options with the form's ingestload fields
applied the way Locust will apply them — and returns the one-line error when they are not valid,
which the hook answers as Locust's UI expects (``{"success": false, "message": …}``: the form
shows it and nothing starts). An empty field means the option's default (its environment
variable, when set); see :meth:`~ingestload.settings.Settings.from_options`.

Example::

    error = check_swarm_form(environment.parsed_options, {"rate": "-5"})
    # "--rate: '-5' is not allowed; expected messages per second ≥ 0 (0 = unlimited)"
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from ingestload.errors import IngestloadError
from ingestload.settings import OPTIONS, Settings

#: The ingestload options a swarm form may carry (those shown under "Custom parameters").
FORM_OPTIONS = {opt.dest: opt for opt in OPTIONS if opt.web_ui and not opt.secret}


def form_options(options: Any, form: Mapping[str, str]) -> argparse.Namespace:
    """A copy of ``options`` with the form's ingestload fields applied as Locust's swarm handler
    applies them (text, ``''`` for an empty field); other fields are left to Locust."""
    values = dict(vars(options)) if options is not None else {}
    for key, value in form.items():
        if key in FORM_OPTIONS:
            values[key] = value
    return argparse.Namespace(**values)


def check_swarm_form(
    options: Any,
    form: Mapping[str, str],
    also: Callable[[Settings], None] | None = None,
) -> str | None:
    """The one-line error that refuses this form, or ``None`` when the test may start.

    ``also`` checks the settings further (the rate machinery: a profile that must load, a split
    naming a path without users); it raises :class:`~ingestload.errors.IngestloadError`.
    """
    try:
        settings = Settings.from_options(form_options(options, form))
        if also is not None:
            also(settings)
    except IngestloadError as e:
        return str(e)
    return None
