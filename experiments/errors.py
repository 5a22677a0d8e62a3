"""Experiment domain errors, each a subclass of a kernel category (mapped to HTTP once, in the kernel)."""

from __future__ import annotations

from kernel.errors import ConflictError, NotFoundError, ValidationError

__all__ = [
    "DuplicateExperiment",
    "DuplicateMetric",
    "DuplicateVariant",
    "ExperimentNotFound",
    "ExperimentNotRunning",
    "InvalidExperiment",
    "InvalidMetric",
    "MetricNotFound",
    "NotAssigned",
    "UnitNotLinked",
    "UserNotFound",
]


class ExperimentNotFound(NotFoundError):
    """No experiment has this name."""

    code = "experiment_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"No experiment is named {name!r}.")


class UserNotFound(NotFoundError):
    """The user does not exist (or the caller may not act for it: never reveal which)."""

    code = "user_not_found"

    def __init__(self, user_id: object) -> None:
        super().__init__(f"No user {user_id} was found.")


class DuplicateExperiment(ConflictError):
    """An experiment with this name exists already."""

    code = "duplicate_experiment"

    def __init__(self, name: str) -> None:
        super().__init__(f"An experiment named {name!r} exists already.")


class DuplicateVariant(ConflictError):
    """Two variants of one experiment share a name."""

    code = "duplicate_variant"

    def __init__(self, name: str) -> None:
        super().__init__(f"The variant name {name!r} is used more than once.")


class ExperimentNotRunning(ConflictError):
    """The experiment exists but does not assign now (paused, completed, before or after its dates)."""

    code = "experiment_not_running"


class NotAssigned(ConflictError):
    """A conversion for a user who was never assigned to the experiment."""

    code = "not_assigned"

    def __init__(self, name: str, user_id: object) -> None:
        super().__init__(f"User {user_id} was never assigned to experiment {name!r}.")


class UnitNotLinked(ConflictError):
    """An anonymous experiment asked by a user or Segment userId that no identify/alias linked to any of
    its anonymous assignments (docs/experiment-units.md)."""

    code = "unit_not_linked"

    def __init__(self, name: str, field: str) -> None:
        super().__init__(
            f"Experiment {name!r} assigns anonymous ids, and no anonymous assignment in it is linked to this "
            f"{field} (by an identify or alias call); send the visitor's anonymous_id."
        )


class InvalidExperiment(ValidationError):
    """A definition or update whose values are not acceptable (percentages, dates, names)."""


class MetricNotFound(NotFoundError):
    """No metric has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"No metric is named {name!r}.")


class DuplicateMetric(ConflictError):
    """A metric with this name exists already."""

    code = "duplicate_metric"

    def __init__(self, name: str) -> None:
        super().__init__(f"A metric named {name!r} exists already.")


class InvalidMetric(ValidationError):
    """A metric definition, or an experiment's metrics, that do not fit together (``details`` says where)."""
