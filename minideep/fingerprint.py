"""The settings a finished run was made with, and what changed since.

``--resume`` keeps the finished runs of a results.json and continues interrupted ones from
their checkpoints. That is right only while the settings are the same: a run of 3 epochs
resumed as a run of 4 would mix two experiments under one name. So every finished record
and every checkpoint folder carries the settings that define its run (the preset, the
preset's configuration, the data set's description, the variant's own configuration), and
a resume compares them with the present ones: :func:`changes` says what differs, one line
per setting (``"epochs 3 -> 4"``).

How a run is made (device, threads, progress bars, workers) is not part of it.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from .results import json_default

#: Stands for a setting that one side lacks, in :func:`changes`.
MISSING = "(not set)"


def run_settings(preset: str, config: Mapping[str, Any], dataset: Any, configuration: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that make a run what it is, as plain JSON values (``config``'s ``progress`` left out)."""
    settings = {"preset": preset, "config": {k: v for k, v in config.items() if k != "progress"},
                "dataset": dataset, "configuration": dict(configuration)}
    return json.loads(json.dumps(settings, default=json_default, allow_nan=True))


def fingerprint(settings: Mapping[str, Any]) -> str:
    """A short hash of ``settings`` (16 hex digits of SHA-256 of their canonical JSON)."""
    text = json.dumps(settings, sort_keys=True, default=json_default, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value
    return out


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs from ``old`` to ``new``, one ``"name old -> new"`` per setting.

    The preset's configuration is the bulk of the settings, so its keys are named bare
    (``epochs``, ``batch_size``); the others keep their group (``dataset.train``,
    ``configuration.lr``).
    """
    def flat(settings: Mapping[str, Any]) -> dict[str, Any]:
        named = {}
        for group, value in settings.items():
            _flatten(value, "" if group == "config" else group, named)
        return named

    before, after = flat(old), flat(new)
    found = []
    for name in dict.fromkeys([*before, *after]):
        a, b = before.get(name, MISSING), after.get(name, MISSING)
        if a != b:
            found.append(f"{name or '(settings)'} {json.dumps(a) if a is not MISSING else a} -> "
                         f"{json.dumps(b) if b is not MISSING else b}")
    return found
