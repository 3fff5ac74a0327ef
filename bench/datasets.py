"""Reading Rasa NLU data: the held-out split and the training data it is compared to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.results import DatasetInfo


@dataclass(frozen=True)
class NluExample:
    """One NLU example: its plain text (annotations stripped), intent and entity count."""

    text: str
    intent: str | None
    entities: int


def nlu_files(path: Path) -> list[Path]:
    """The NLU data files of a file or directory, as Rasa's importer picks them."""
    import rasa.shared.data

    return sorted(
        Path(name)
        for name in rasa.shared.data.get_data_files([str(path)], rasa.shared.data.is_nlu_file)
    )


def load_examples(path: Path) -> list[NluExample]:
    """The examples of every NLU file in ``path`` (a file or a directory)."""
    from rasa.shared.nlu.training_data.loading import load_data

    examples: list[NluExample] = []
    for file in nlu_files(path):
        for message in load_data(str(file)).training_examples:
            text = message.get("text")
            if text:
                examples.append(
                    NluExample(text, message.get("intent"), len(message.get("entities") or []))
                )
    return examples


def describe(holdout: Path, training: Path) -> DatasetInfo:
    """Counts the held-out split and checks it against the training data.

    Args:
        holdout: The held-out NLU file.
        training: The training data directory.

    Returns:
        Sizes, verbatim overlaps and intents the training data lacks.
    """
    held_out = load_examples(holdout)
    trained = load_examples(training)
    training_texts = {example.text.strip() for example in trained}
    training_intents = {example.intent for example in trained}
    holdout_intents = {example.intent for example in held_out if example.intent}
    return DatasetInfo(
        holdout_path=str(holdout),
        holdout_examples=len(held_out),
        holdout_intents=len(holdout_intents),
        holdout_entity_annotations=sum(example.entities for example in held_out),
        training_files=[str(file) for file in nlu_files(training)],
        training_examples=len(trained),
        leaked_texts=sum(example.text.strip() in training_texts for example in held_out),
        unseen_intents=sorted(str(intent) for intent in holdout_intents - training_intents),
    )


def texts(path: Path) -> list[str]:
    """The distinct plain texts of the NLU file(s) at ``path``, sorted."""
    return sorted({example.text for example in load_examples(path)})
