"""Typed run settings: each field knows its default, help, check and
whether it changes a run's result.

A run's config is a frozen dataclass of `setting(...)` fields (see
`kerasbert.training.configs`). This module holds the machinery they share:
validation on construction (one-line `ValueError`s naming the field), the
flat dict recorded in `metrics.json`, the result-changing part that
`run.json` fingerprints, and rebuilding a config from a record.
"""

import dataclasses
import types
import typing

from kerasbert.utils import arguments


def setting(default, help, *, changes_result=True, check=None, choices=None, parse=None,
            default_factory=None):
    """A config field with its help, check and result role.

    Args:
        default: the default value (immutable: a tuple, not a list).
        help: str. One line, shown by the recipes' `--help`.
        changes_result: bool. Whether another value gives another result
            (the field then enters `run.json`'s fingerprint); `False` for
            settings a rerun may change freely (output handling, speed
            knobs that give bit-identical results, data reading that the
            data identity already covers).
        check: callable or None. `check(name, value)` raises a one-line
            `ValueError` for a value out of range.
        choices: sequence or None. The allowed values.
        parse: callable or None. Turns a flag's string into the value, for
            fields that are not a plain int, float, str, bool or list.
    """
    metadata = {"help": help, "changes_result": changes_result, "check": check,
                "choices": tuple(choices) if choices is not None else None, "parse": parse}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def redefault(section, name, default, *, changes_result=None):
    """The field `name` of `section` with another default (and, where the
    run kind's data identity does not cover it, another result role): a run
    kind whose paper setting differs (pre-training's learning rate) keeps
    one help."""
    field = section.__dataclass_fields__[name]
    metadata = dict(field.metadata)
    if changes_result is not None:
        metadata["changes_result"] = changes_result
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Base of every config section: checks each field on construction."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):
                # Lists from flags or JSON: stored as tuples (hashable, frozen).
                object.__setattr__(self, field.name, value := tuple(value))
            choices = field.metadata.get("choices")
            if choices is not None and value not in choices:
                raise ValueError(
                    f"`{field.name}` must be one of {choices}. Received: {value!r}")
            check = field.metadata.get("check")
            if check is not None:
                check(field.name, value)
            else:
                check_type(field.name, value, field.type)
        self.validate()

    def validate(self):
        """Checks across fields; a section overrides it."""

    def replace(self, **changes):
        """A copy with `changes` (checked again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """The settings as a flat JSON-ready dict (tuples as lists)."""
        return {field.name: _jsonable(getattr(self, field.name))
                for field in dataclasses.fields(self)}

    def result_dict(self):
        """The settings that change the result: what `run.json` fingerprints."""
        return {field.name: _jsonable(getattr(self, field.name))
                for field in dataclasses.fields(self) if field.metadata.get("changes_result")}

    @classmethod
    def field_names(cls):
        return [field.name for field in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values, *, source="the record"):
        """A config from `to_dict()` output; unknown names are refused."""
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ValueError(
                f"{source} holds settings {unknown} that {cls.__name__} does not know; it "
                "was written by another version or another kind of run.")
        return cls(**values)

    @classmethod
    def resolve(cls, config, settings, *, caller):
        """An entry point's config: `config` (or the defaults) with the
        keyword `settings` applied over it, checked."""
        base = config.to_dict() if config is not None else {}
        if config is not None and not settings:
            return config
        return cls.from_arguments({**base, **settings}, caller=caller)

    @classmethod
    def from_arguments(cls, arguments_, *, caller):
        """A config from keyword arguments; one line naming an unknown one."""
        unknown = sorted(set(arguments_) - set(cls.field_names()))
        if unknown:
            raise TypeError(
                f"`{caller}` got unexpected keyword arguments {unknown}; its settings are "
                f"the fields of {cls.__name__}.")
        return cls(**arguments_)


def check_type(name, value, annotation):
    """Raise a one-line `ValueError` unless `value` fits a simple annotation
    (int, float, str, bool, their Optional forms and tuples of str)."""
    hint = _resolve(annotation)
    allowed, optional = hint
    if value is None and optional:
        return
    if allowed is bool:
        if not isinstance(value, bool):
            raise ValueError(f"`{name}` must be True or False. Received: {value!r}")
    elif allowed is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"`{name}` must be an integer. Received: {value!r}")
    elif allowed is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"`{name}` must be a number. Received: {value!r}")
    elif allowed is str:
        if not isinstance(value, str):
            raise ValueError(f"`{name}` must be a string. Received: {value!r}")
    elif allowed is tuple:
        if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"`{name}` must be a list of strings. Received: {value!r}")


def _resolve(annotation):
    # (the one plain type allowed, whether None is allowed); `object` for
    # forms the field's own `check` covers.
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        annotation = members[0] if len(members) == 1 else object
    if typing.get_origin(annotation) is tuple:
        annotation = tuple
    return (annotation if annotation in (int, float, str, bool, tuple) else object), optional


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


# Checks for `setting(check=...)`, each one line naming the field.
def positive_int(name, value):
    arguments.positive_int(name, value)


def optional_positive_int(name, value):
    arguments.positive_int(name, value, allow_none=True)


def non_negative_int(name, value):
    arguments.non_negative_int(name, value)


def positive_number(name, value):
    arguments.positive_number(name, value)


def optional_positive_number(name, value):
    if value is not None:
        arguments.positive_number(name, value)


def unit_interval(low_open=False, high_open=False):
    """A check that a number lies in [0, 1] (ends open as asked)."""
    def check(name, value):
        arguments.in_range(name, value, 0, 1, low_open=low_open, high_open=high_open)
    return check


def seed_value(name, value):
    """A seed numpy and TensorFlow both take: an int in [0, 2**32)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise ValueError(f"`{name}` must be an integer in [0, 2**32). Received: {value!r}")

