"""absl flags generated from a run config's fields, so that every recipe
offers every shared setting with one name, default and help."""

import dataclasses
import json
import os
import textwrap

from absl import flags

FLAGS = flags.FLAGS
LONG_TEXT_STRATEGIES = (
    "head", "tail", "head_tail", "segments_mean", "segments_max", "segments_attention"
)


# The settings groups a recipe's --help shows, in this order: what a user
# sets first (data, model, the paper's knobs), then how the run is run.
HELP_ORDER = ("DataSettings", "ReadingSettings", "SubsetSettings", "MultiTaskSettings",
              "ClassifierSettings", "TextSettings", "OptimizerSettings", "MaskedLMSettings",
              "RunSettings", "CheckpointSettings", "ServingSettings", "RuntimeSettings")
# {settings class: [flag names]} of the config flags defined so far.
FLAG_GROUPS = {}


def define_config_flags(config_class, flag_values=FLAGS):
    """Define one flag per field of `config_class`: its name, default, help
    and choices. A field with a `parse` function becomes a string flag."""
    where = {"flag_values": flag_values}
    for field in dataclasses.fields(config_class):
        FLAG_GROUPS.setdefault(_declaring_class(config_class, field.name), []).append(field.name)
        name, meta = field.name, field.metadata
        default = field.default if field.default is not dataclasses.MISSING else (
            field.default_factory())
        help_text = meta["help"]
        choices = meta.get("choices")
        if meta.get("parse") is not None:
            flags.DEFINE_string(name, _flag_text(default), help_text, **where)
        elif isinstance(default, bool):
            flags.DEFINE_bool(name, default, help_text, **where)
        elif choices is not None and all(isinstance(c, str) or c is None for c in choices):
            flags.DEFINE_enum(name, default, [c for c in choices if c is not None], help_text,
                              **where)
        elif isinstance(default, tuple):
            flags.DEFINE_list(name, list(default), help_text, **where)
        elif _annotation_is(field, float):
            flags.DEFINE_float(name, default, help_text, **where)
        elif _annotation_is(field, int):
            flags.DEFINE_integer(name, default, help_text, **where)
        else:
            flags.DEFINE_string(name, default, help_text, **where)


def _declaring_class(config_class, name):
    # The settings class whose own fields hold `name` (the first in the MRO).
    for cls in config_class.__mro__:
        if name in vars(cls).get("__annotations__", {}):
            return cls
    return config_class


def grouped_help(doc, own_flags, flag_values=FLAGS):
    """A recipe's --help: its docstring, its own flags, then the config's
    flags by settings group (each group titled by its docstring's first
    line), and a pointer to --helpfull."""
    def described(name):
        flag = flag_values[name]
        default = "" if flag.default in (None, "", []) else f" (default: {flag.value!r})"
        return textwrap.fill(f"--{name}{default}: {flag.help}", width=96,
                             initial_indent="  ", subsequent_indent="      ")

    grouped = {name for names in FLAG_GROUPS.values() for name in names}
    own_flags = [name for name in dict.fromkeys(own_flags) if name not in grouped]
    sections = [(doc or "").strip(), ""]
    if own_flags:
        sections += ["This recipe:"] + [described(name) for name in own_flags] + [""]
    order = {name: index for index, name in enumerate(HELP_ORDER)}
    for cls in sorted(FLAG_GROUPS, key=lambda c: order.get(c.__name__, len(order))):
        # The docstring's first sentence, without its parenthesis.
        title = " ".join((cls.__doc__ or cls.__name__).split()).split(". ")[0]
        title = title.split(" (")[0].rstrip(".")
        sections += [f"{title}:"] + [described(name) for name in FLAG_GROUPS[cls]] + [""]
    sections.append("Every flag, absl's and TensorFlow's included: --helpfull.")
    return "\n".join(sections)


def config_from_flags(config_class, base=None):
    """A `config_class` from the flags: with `base` (a recorded config as a
    dict), the flags given on the command line replace its values."""
    # How to treat this output directory is this command's, never the record's.
    values = {k: v for k, v in (base or {}).items() if k not in ("overwrite", "verbose")}
    for field in dataclasses.fields(config_class):
        flag = FLAGS[field.name]
        if base is not None and not flag.present:
            continue
        value = flag.value
        parse = field.metadata.get("parse")
        if parse is not None and isinstance(value, str):
            value = parse(value)
        values[field.name] = value
    return config_class.from_dict(values, source="--from_run's record")


def recorded_settings(run_directory):
    """The settings a finished run recorded in its `metrics.json`."""
    path = os.path.join(run_directory, "metrics.json")
    if not os.path.isfile(path):
        raise ValueError(
            f"--from_run={run_directory} holds no finished run ({path} is missing).")
    with open(path, encoding="utf-8") as file:
        settings = json.load(file).get("settings")
    if not isinstance(settings, dict):
        raise ValueError(f"{path} records no settings.")
    return settings


def define_long_text_flag():
    flags.DEFINE_enum(
        "long_text", None, list(LONG_TEXT_STRATEGIES),
        "Shorthand for the paper's Table 2 rows: sets --truncation (and --segment_pooling); "
        "refused together with a --truncation or --segment_pooling that says otherwise.")


def long_text_settings():
    """The `truncation` (and `segment_pooling`) `--long_text` sets, as a
    dict; a contradicting explicit `--truncation` or `--segment_pooling` is
    refused."""
    values = {}
    if FLAGS.long_text is None:
        return values
    long_text = FLAGS.long_text
    truncation, pooling = (("segments", long_text[len("segments_"):])
                           if long_text.startswith("segments_") else (long_text, None))
    for name, implied in (("truncation", truncation), ("segment_pooling", pooling)):
        if implied is None:
            continue
        if FLAGS[name].present and FLAGS[name].value != implied:
            raise ValueError(
                f"--long_text={long_text} sets --{name}={implied}, but --{name}="
                f"{FLAGS[name].value} was also given; drop one of them.")
        values[name] = implied
    if pooling is None and FLAGS["segment_pooling"].present:
        raise ValueError(f"--segment_pooling applies to segments; --long_text={long_text} "
                         "reads one sequence per text.")
    return values


# Flags that act only under another setting: (flag, setting, values under
# which it acts, what the flag needs).
CONDITIONAL_FLAGS = (
    ("head_length", "truncation", ("head_tail",), "--truncation=head_tail"),
    ("segment_pooling", "truncation", ("segments",), "--truncation=segments"),
    ("max_segments", "truncation", ("segments",), "--truncation=segments"),
    ("segment_stride", "truncation", ("segments",), "--truncation=segments"),
    ("layer_decay", "freeze_backbone", (False,), "a trained encoder (drop --freeze_backbone)"),
)


def check_flags_take_effect(config):
    """Refuse, in one line, a flag given on the command line that the
    config's other settings make a no-op (e.g. --head_length under
    --truncation=head)."""
    for name, setting, acting, needs in CONDITIONAL_FLAGS:
        flag = FLAGS[name] if name in FLAGS else None
        if (flag is not None and flag.present and flag.value != flag.default
                and getattr(config, setting) not in acting):
            raise ValueError(
                f"--{name}={FLAGS[name].value} has no effect with --{setting}="
                f"{str(getattr(config, setting)).lower()}; it needs {needs}. Drop it.")


def _flag_text(default):
    if isinstance(default, tuple):
        return ",".join(str(v) for v in default)
    return None if default is None else str(default)


def _annotation_is(field, kind):
    text = field.type if isinstance(field.type, str) else repr(field.type)
    return field.type is kind or text.startswith((kind.__name__, f"<class '{kind.__name__}'"))
