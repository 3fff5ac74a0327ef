"""Grouping messages that say nearly the same thing.

Messages are compared by their character 2- and 3-grams (TF-IDF, cosine similarity):
Japanese has no spaces to split words on, and character n-grams match 「録音されますか」
with 「録音してますか」. Each message joins the first group whose first message is close
enough, else starts a group; groups are ordered by size, then by their newest message.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

THRESHOLD = 0.45  # cosine similarity to a group's first message to join it


def group_indices(texts: Sequence[str], threshold: float = THRESHOLD) -> list[list[int]]:
    """Groups of the indices of ``texts``, each group in the order of ``texts``.

    Args:
        texts: the messages (masked), newest first.
        threshold: how similar a message must be to a group's first message.

    Returns:
        The groups, largest first (ties: the group with the newer first message first).
    """
    if not texts:
        return []
    folded = [text.strip().lower() or "-" for text in texts]
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), dtype=np.float32)
    try:
        matrix = vectorizer.fit_transform(folded)
    except ValueError:  # only one-character messages: nothing to compare
        return [[index] for index in range(len(texts))]
    # Rows are L2-normalized: the product is the cosine similarity of every pair.
    similarity = (matrix @ matrix.T).toarray()
    groups: list[list[int]] = []
    heads: list[int] = []
    for index in range(len(texts)):
        if heads:
            scores = similarity[index, heads]
            best = int(scores.argmax())
            if scores[best] >= threshold:
                groups[best].append(index)
                continue
        heads.append(index)
        groups.append([index])
    return sorted(groups, key=lambda group: (-len(group), group[0]))
