"""The word a concept stands for: label phrases and the normalised key that makes synonyms one.

"Trouser", "trousers" and "a photo of a trouser" are one concept; "T-shirt/top" is said as
"t-shirt/top" in prompts. Used by the vocabulary, the thresholds and the concept counts.
"""

from __future__ import annotations

import re


def _known_phrases() -> dict[str, str]:
    from ..sources.datasets import FASHION_MNIST_CLASSES, FASHION_MNIST_PHRASES

    return dict(zip(FASHION_MNIST_CLASSES, FASHION_MNIST_PHRASES))


#: Plain-language phrase for dataset labels whose names are not good prompts ("T-shirt/top").
LABEL_PHRASES = _known_phrases()


def phrase(concept: str, phrases: dict[str, str] | None = None) -> str:
    """What to put in the prompt for ``concept``: a given phrase, a known label phrase, or itself."""
    return (phrases or {}).get(concept) or LABEL_PHRASES.get(concept) or concept


def concept_key(concept: str, phrases: dict[str, str] | None = None) -> str:
    """The normalised word a concept stands for ("Trouser", "trousers" and "trouser" share one).

    Examples
    --------
    >>> concept_key("Trouser"), concept_key("trousers"), concept_key("T-shirt/top")
    ('trouser', 'trouser', 't-shirt')
    """
    return _key(phrase(str(concept), phrases))


_PROMPT_PREFIX = re.compile(r"^(?:(?:a|an|the)\s+)?(?:(?:low resolution|grayscale|small|product|close-up)\s+)?"
                            r"(?:photo|picture|image|drawing|photograph)\s+of\s+(?:(?:a|an|the)\s+)?")


def _key(text: str) -> str:
    text = _PROMPT_PREFIX.sub("", text.strip().lower()).rstrip(" .")
    words = re.sub(r"[^a-z0-9 -]+", "", text.lower().split("/")[0]).split()
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)
