"""Reading what a trained graph component saved in the model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage

T = TypeVar("T")


def read_persisted(
    model_storage: ModelStorage, resource: Resource, read: Callable[[Path], T]
) -> T | None:
    """What ``read`` returns for the resource's directory, or None if nothing was saved.

    Rasa raises ValueError when the resource has no directory: the component was not
    trained, as in a model trained without NLU data.
    """
    try:
        with model_storage.read_from(resource) as directory:
            return read(directory)
    except ValueError:
        return None
