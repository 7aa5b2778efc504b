"""A library of many small, varied, made-up documents, each holding facts no other file holds.

For the load test and `bench/load.py`: a thousand files that are cheap to make (no shared data needed),
different enough that retrieval has real work to do, and each with a question whose answer is one sentence
of that file, so an answer's citation can be checked against the file it points at.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

_FIRST = ["Ada", "Bruno", "Chiara", "Dmitri", "Esther", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kalani",
          "Lotte", "Mateo", "Noor", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tamsin"]
_LAST = ["Okafor", "Lindqvist", "Moreau", "Tanaka", "Castillo", "Novak", "Haddad", "Fischer", "Oduya", "Petrov",
         "Silva", "Kowalski", "Brennan", "Achterberg", "Ivanova", "Nakamura", "Delacroix", "Mbeki", "Quispe"]
_PLACES = ["Tromsø", "Valparaíso", "Ljubljana", "Hobart", "Windhoek", "Ushuaia", "Reykjavík", "Tbilisi",
           "Arequipa", "Kraków", "Nagasaki", "Zanzibar", "Halifax", "Trieste", "Yerevan", "Cusco"]
_THINGS = ["pump", "telescope", "loom", "reactor", "glacier survey", "seed bank", "tide gauge", "orchard",
           "printing press", "weather station", "bridge", "vineyard", "observatory", "archive", "kiln", "mill"]
_MATERIALS = ["brine", "basalt", "copper", "linen", "peat", "cedar", "saffron", "graphite", "kelp", "amber"]
_TOPICS = [
    "Maintenance followed a strict calendar, with inspections every spring and a full overhaul each decade.",
    "The records were kept in ledgers, later copied by hand when the originals faded.",
    "Visitors were allowed on the first Sunday of each month, weather permitting.",
    "Funding came from a mix of municipal grants and private subscriptions.",
    "Several letters describe disputes over water rights with the neighbouring farms.",
    "A flood in the early years damaged the lower floor, which was rebuilt in stone.",
    "The staff trained apprentices, some of whom went on to run similar sites abroad.",
    "Measurements were compared every year with those of a sister site across the border.",
]


@dataclass(frozen=True)
class SyntheticDocument:
    """One made-up file: its name, its text, and a question whose answer is `fact`, a sentence of it."""

    name: str
    text: str
    fact: str
    question: str


def document(number: int, seed: int = 0) -> SyntheticDocument:
    """The `number`th document (the same for the same number and seed)."""
    rng = random.Random(seed * 1_000_003 + number)
    thing, place = rng.choice(_THINGS), rng.choice(_PLACES)
    person = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    code = f"{number:04d}"
    amount, material, year = rng.randint(12, 980), rng.choice(_MATERIALS), rng.randint(1850, 2020)
    fact = f"The {thing} of {place} number {code} handled {amount} tonnes of {material} in {year}."
    question = f"How many tonnes of {material} did the {thing} of {place} number {code} handle in {year}?"
    paragraphs = [
        f"History of the {thing} of {place} ({code})",
        f"The {thing} of {place} number {code} was founded by {person}. {rng.choice(_TOPICS)}",
        f"{fact} {rng.choice(_TOPICS)}",
        " ".join(rng.sample(_TOPICS, 3)),
    ]
    return SyntheticDocument(f"{thing.replace(' ', '-')}-{place}-{code}.txt", "\n\n".join(paragraphs) + "\n",
                             fact, question)


def write_library(folder: Path, count: int, start: int = 0, seed: int = 0) -> list[SyntheticDocument]:
    """Write documents `start` .. `start + count - 1` into `folder`; returns them."""
    folder.mkdir(parents=True, exist_ok=True)
    documents = [document(number, seed) for number in range(start, start + count)]
    for item in documents:
        (folder / item.name).write_text(item.text, encoding="utf-8")
    return documents
