"""Finding the sentence of a cited passage that best supports an answer sentence, with its offsets.

Each sentence of the passages is scored by a small logistic model over a few features (fitted on SciFact
train, see `_MODEL`); `score` is its probability-like output in (0, 1), comparable across passages and with
the support threshold (`settings.support.threshold`). With an embedder the features are:

- `cosine`: the embedding cosine of the claim and the sentence;
- `soft_coverage`: how much of the claim's words the sentence covers, each claim word weighted by its IDF
  among the passages' sentences and counted by its most similar word of the sentence (word vectors from the
  same embedder, so "elevated" partly covers "increased" and an exact match counts fully);
- `framing`: the sentence sets up a question rather than stating something ("it is unknown whether",
  "we investigated", "the aim of", a question mark). Such sentences share the claim's words while
  supporting nothing; the cue words are general English, though scientific abstracts use them most.

Without an embedder, `lexical_coverage` (the IDF-weighted share of the claim's word stems that the sentence
holds) replaces the first two. Lines that look like headings or titles are demoted (`heading_penalty`):
they name a topic and state nothing, yet resemble a claim about it. The threshold, the heading penalty and what
counts as a heading are the settings' `support` section (rag/settings.py, where their tuning is recorded); the
fitted weights below belong with the features they weigh, and `tune` refits them.
"""

from __future__ import annotations

import math
import re
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.answer.citations import strip_citations
from rag.answer.sentences import Sentence, split_sentences
from rag.index.embedder import Embedder
from rag.records import Vectors
from rag.settings import SupportSettings

# Logistic regression over the features, fitted on the sentences of SciFact train's evidence abstracts (a gold
# rationale sentence against the other sentences; titles left out, see heading_penalty): (bias, weights).
# Grouped 5-fold cross-validation on train chose the features (quote accuracy@1 of the (claim, evidence
# abstract) pairs, measured on a prototype of these features): cosine alone 0.55, + IDF lexical overlap 0.57,
# + framing 0.62; cosine + soft coverage 0.62, + framing 0.67 (kept). Sentence position (later sentences of an
# abstract hold the results; specific to abstracts), the title as context, neighbouring sentences as context,
# and cue words of conclusions added nothing once soft coverage and framing were in, so they are left out.
_MODEL: tuple[float, dict[str, float]] = (-5.3922, {"cosine": 2.7594, "soft_coverage": 5.3398, "framing": -2.141})
# Without an embedder (fitted the same way; its bias is then moved by -0.26 so that the support threshold, 0.32, is
# also its own best threshold on train, which was 0.38: it keeps 53% of supported pairs and passes 17% of the others).
_LEXICAL_MODEL: tuple[float, dict[str, float]] = (-2.2896, {"lexical_coverage": 5.5223, "framing": -2.0675})
# Embeddings kept per scorer (sentences, claims, words), least recently used dropped first: ~15 MB.
CACHE_SIZE = 10_000

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP_WORDS = frozenset(
    """a about after also an and are as at be been before being between both but by can could did do does each for
    from had has have how if in into is it its may might more most no not of on or other our over should so such
    than that the their them then there these they this those through to under up was we were what when where which
    while who will with would you your""".split()
)
_SUFFIXES = ("ational", "ations", "ation", "ingly", "ities", "ness", "ment", "ings", "ing", "edly", "ies", "ed",
             "es", "ly", "s")
_FRAMING = re.compile(
    r"\b(unknown|unclear|poorly understood"
    r"|not (yet )?(been )?(well |fully )?(known|understood|described|characteri[sz]ed|established|clear|elucidated)"
    r"|remains? (to be|unclear|unknown|controversial|elusive)|whether"
    r"|we (aimed|sought|investigated|examined|evaluated|assessed|studied|asked|tested|hypothesi[sz]ed|analy[sz]ed"
    r"|compared)"
    r"|to (determine|assess|investigate|examine|evaluate|test|explore|compare|identify)"
    r"|(aim|purpose|objective|goal)s? of)\b"
)
_PARAGRAPH = re.compile(r"[^\n]+(?:\n(?!\s*\n)[^\n]*)*")  # as rag.answer.sentences splits paragraphs
_LIST_MARKER = re.compile(r"^\s*([-*•·▪–]|\(?\d+[.)]|\(?[a-z][.)])\s")


@dataclass(frozen=True)
class SupportMatch:
    passage_index: int  # which of the given passages (0-based)
    text: str  # the supporting sentence, exactly passage[start:end]
    start: int  # character offsets within that passage's text
    end: int
    score: float  # higher is better; comparable with the support threshold


@dataclass(frozen=True)
class _Candidate:
    passage_index: int
    sentence: Sentence
    heading: bool


def words(text: str) -> list[str]:
    """Lower-cased words without stop words and single letters, in order."""
    found = (word.lower() for word in _WORD.findall(text))
    return [word for word in found if word not in _STOP_WORDS and (len(word) > 1 or word.isdigit())]


def stem(word: str) -> str:
    """A light suffix stripper, so "increased" and "increases" meet in the lexical overlap."""
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def is_framing(sentence: str) -> bool:
    """Whether a sentence poses a question or an aim rather than stating something."""
    return sentence.rstrip().endswith("?") or _FRAMING.search(sentence.lower()) is not None


def candidates(passages: Sequence[str], tuning: SupportSettings | None = None) -> list[_Candidate]:
    """Every sentence of every passage, in order, each marked when it looks like a heading."""
    max_words = (tuning or SupportSettings()).heading_max_words
    found = []
    for index, passage in enumerate(passages):
        sentences = split_sentences(passage)
        paragraphs = [(m.start(), m.end(), m.group().strip()) for m in _PARAGRAPH.finditer(passage)]
        paragraphs = [paragraph for paragraph in paragraphs if paragraph[2]]
        for sentence in sentences:
            found.append(_Candidate(index, sentence, _is_heading(sentence, paragraphs, sentences, max_words)))
    return found


def _is_heading(
    sentence: Sentence, paragraphs: list[tuple[int, int, str]], sentences: list[Sentence], max_words: int
) -> bool:
    """A one-line paragraph, followed by more text, that is either short (`max_words`) and unpunctuated (a
    section heading) or the passage's first paragraph above a body of several sentences (a title)."""
    position = next((i for i, p in enumerate(paragraphs) if p[0] <= sentence.start < p[1]), None)
    if position is None or position + 1 >= len(paragraphs):
        return False
    _, _, text = paragraphs[position]
    if text != sentence.text or "\n" in text or _LIST_MARKER.match(text):
        return False
    if not text.endswith((".", "!", "?", ":", ";")) and len(text.split()) <= max_words:
        return True
    next_start, next_end, _ = paragraphs[position + 1]
    body = sum(1 for s in sentences if next_start <= s.start < next_end)
    return position == 0 and body >= 2


def idf_weights(sentence_words: Sequence[set[str]]) -> dict[str, float]:
    """BM25's IDF of each word over the candidate sentences; words in none get `idf_weights(...)[""]`."""
    n = len(sentence_words)
    counts = Counter(word for found in sentence_words for word in found)
    weights = {word: math.log(1 + (n - df + 0.5) / (df + 0.5)) for word, df in counts.items()}
    weights[""] = math.log(1 + (n + 0.5) / 0.5)
    return weights


def lexical_coverage(claim_terms: set[str], sentence_terms: set[str], idf: dict[str, float]) -> float:
    """The IDF-weighted share of the claim's terms that the sentence holds."""
    # fsum: exact whatever the order, and sets iterate in an order that changes between runs
    total = math.fsum(idf.get(term, idf[""]) for term in claim_terms)
    shared = math.fsum(idf.get(term, idf[""]) for term in claim_terms & sentence_terms)
    return shared / total if total else 0.0


def soft_coverage(claim_words: Sequence[str], claim_vectors: Vectors, sentence_vectors: Vectors,
                  idf: dict[str, float]) -> float:
    """Like `lexical_coverage`, but each claim word counts by the cosine of its closest sentence word."""
    if not claim_words or len(sentence_vectors) == 0:
        return 0.0
    weights = np.asarray([idf.get(word, idf[""]) for word in claim_words], dtype=np.float64)
    closest = (claim_vectors @ sentence_vectors.T).max(axis=1).astype(np.float64)
    return float((weights * closest).sum() / weights.sum())


def _probability(
    model: tuple[float, dict[str, float]], features: dict[str, float], heading: bool,
    heading_penalty: float | None = None,
) -> float:
    """The model's output for one candidate; `heading_penalty` None: the settings' default."""
    bias, weights = model
    logit = bias + sum(weight * features[name] for name, weight in weights.items())
    if heading:
        logit -= SupportSettings().heading_penalty if heading_penalty is None else heading_penalty
    return 1.0 / (1.0 + math.exp(-logit))


class SupportScorer:
    """Ranks the sentences of cited passages by how well they support a claim. Keeps the embeddings of
    texts it has seen (sentences, words), so scoring many claims against the same passages embeds each once.
    `tuning` is the settings' `support` section (its defaults when None); callers compare scores with its
    `threshold`."""

    def __init__(self, embedder: Embedder | None, tuning: SupportSettings | None = None) -> None:
        self._embedder = embedder
        self.tuning = tuning or SupportSettings()
        self._cache: OrderedDict[tuple[bool, str], Vectors] = OrderedDict()

    @property
    def uses_embedder(self) -> bool:
        return self._embedder is not None

    def rank(self, claim: str, passages: Sequence[str], top: int = 3) -> list[SupportMatch]:
        """The `top` best supporting sentences across all `passages`, best first (earlier on a tie)."""
        claim = strip_citations(claim)
        found = candidates(passages, self.tuning)
        if top <= 0 or not found or not claim:
            return []
        rows = self.features(claim, found)
        model = _MODEL if self._embedder is not None else _LEXICAL_MODEL
        scored = [
            SupportMatch(c.passage_index, c.sentence.text, c.sentence.start, c.sentence.end,
                         _probability(model, row, c.heading, self.tuning.heading_penalty))
            for c, row in zip(found, rows, strict=True)
        ]
        scored.sort(key=lambda match: -match.score)  # stable: document order on a tie
        return scored[:top]

    def features(self, claim: str, found: Sequence[_Candidate]) -> list[dict[str, float]]:
        """Each candidate's features against `claim` (public for the evaluation that fits `_MODEL`)."""
        sentence_words = [words(c.sentence.text) for c in found]
        claim_words = list(dict.fromkeys(words(claim)))
        stems = [{stem(word) for word in found_words} for found_words in sentence_words]
        stem_idf = idf_weights(stems)
        claim_stems = {stem(word) for word in claim_words}
        rows = [
            {"lexical_coverage": lexical_coverage(claim_stems, sentence_stems, stem_idf),
             "framing": float(is_framing(c.sentence.text))}
            for c, sentence_stems in zip(found, stems, strict=True)
        ]
        if self._embedder is None:
            return rows
        idf = idf_weights([set(found_words) for found_words in sentence_words])
        vocabulary = list(dict.fromkeys([*claim_words, *(word for found in sentence_words for word in found)]))
        vectors = self._vectors(self._embedder, [claim, *(c.sentence.text for c in found)])
        claim_vector, sentence_vectors = vectors[0], vectors[1:]
        word_vector = dict(zip(vocabulary, self._vectors(self._embedder, vocabulary, short=True), strict=True))
        claim_word_vectors = np.asarray([word_vector[word] for word in claim_words], dtype=np.float32)
        for row, found_words, sentence_vector in zip(rows, sentence_words, sentence_vectors, strict=True):
            unique = list(dict.fromkeys(found_words))
            row["cosine"] = float(sentence_vector @ claim_vector)
            row["soft_coverage"] = soft_coverage(
                claim_words, claim_word_vectors,
                np.asarray([word_vector[word] for word in unique], dtype=np.float32), idf,
            )
        return rows

    def _vectors(self, embedder: Embedder, texts: Sequence[str], short: bool = False) -> Vectors:
        """Embeddings of `texts` (in order), embedding only those not already cached, in one call; `short`
        texts (words) go through `Embedder.embed_short`, which may batch them more freely."""
        keys = [(short, text) for text in texts]
        missing = list(dict.fromkeys(key for key in keys if key not in self._cache))
        if missing:
            missing_texts = [text for _, text in missing]
            embedded = embedder.embed_short(missing_texts) if short else embedder.embed(missing_texts)
            for key, vector in zip(missing, embedded, strict=True):
                self._cache[key] = vector
        if not keys:
            return np.zeros((0, embedder.dimension), dtype=np.float32)
        result = np.stack([self._cache[key] for key in keys])
        for key in keys:
            self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return result
