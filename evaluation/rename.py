"""Other plausible names for FinanceBench's filings, so the named-file search is measured on names it was not
designed on. FinanceBench names files `BESTBUY_2023_10K`, `AMCOR_2023Q2_10Q`, `PEPSICO_2023_8K_dated-2023-05-05`;
people name them `Best Buy Co - Annual Report FY2023.pdf`, `2023 Best Buy Form 10-K.pdf`, `best-buy-10k-2023.pdf`
or `FY23 Best Buy 10-K.pdf`: company names spelled out, years in other places and spellings, the form named
in words or by number. Each filing gets one of these conventions, picked by a hash of its name: the same
names on every run and every machine."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from rag.errors import ConfigError

# Part of the renamed library's cache key: bump when the conventions change.
RENAME_VERSION = 1


@dataclass(frozen=True)
class Filing:
    """What a FinanceBench file name says: the company, the kind of filing, its year, quarter and date."""

    company: str  # spelled out, e.g. "Best Buy", "Johnson & Johnson"
    kind: str  # "10k", "10q", "8k" or "earnings"
    year: int
    quarter: int | None = None
    date: str | None = None  # an 8-K's date, YYYY-MM-DD


_PERIOD = re.compile(r"_(\d{4})(?:Q([1-4]))?_")
_DATED = re.compile(r"dated[-_](\d{4}-\d{2}-\d{2})")
_KINDS = {"10K": "10k", "10Q": "10q", "8K": "8k", "EARNINGS": "earnings"}


def parse_name(doc_name: str, company: str | None = None) -> Filing:
    """The filing a FinanceBench name describes; `company` (documents.jsonl's spelling) replaces the one the
    name gives (`BESTBUY`) when known."""
    period = _PERIOD.search(doc_name)
    kind = next((_KINDS[token.upper()] for token in re.split(r"[_-]", doc_name) if token.upper() in _KINDS), None)
    if period is None or kind is None:
        raise ConfigError(f"Not a FinanceBench file name (company_YEAR[Qn]_KIND): {doc_name}")
    if company is None:
        company = " ".join(word.capitalize() for word in doc_name[: period.start()].split("_"))
    dated = _DATED.search(doc_name)
    return Filing(company, kind, int(period.group(1)), int(period.group(2)) if period.group(2) else None,
                  dated.group(1) if dated else None)


_WORDS = {"10k": "Annual Report", "10q": "Quarterly Report", "8k": "Current Report", "earnings": "Earnings Release"}
_FORMS = {"10k": "Form 10-K", "10q": "Form 10-Q", "8k": "Form 8-K", "earnings": "Earnings Release"}


def _when(filing: Filing, fiscal: str = "FY") -> str:
    """The period as a person writes it: "FY2023", "Q2 FY2023", or an 8-K's date."""
    if filing.date:
        return filing.date
    year = f"{fiscal}{filing.year}"
    return f"Q{filing.quarter} {year}" if filing.quarter else year


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _company_report(f: Filing) -> str:  # Best Buy Co - Annual Report FY2023
    return f"{f.company} Co - {_WORDS[f.kind]} {_when(f)}"


def _year_first(f: Filing) -> str:  # 2023 Best Buy Form 10-K; 2023-05-05 PepsiCo Form 8-K
    when = f.date or (f"{f.year} Q{f.quarter}" if f.quarter else str(f.year))
    return f"{when} {f.company} {_FORMS[f.kind]}"


def _slugged(f: Filing) -> str:  # best-buy-10k-2023; best-buy-10q-q2-2023
    kind = f.kind if f.kind != "earnings" else "earnings-release"
    when = f.date or (f"q{f.quarter}-{f.year}" if f.quarter else str(f.year))
    return f"{_slug(f.company)}-{kind}-{when}"


def _parenthesised(f: Filing) -> str:  # Best Buy annual report (2023)
    return f"{f.company} {_WORDS[f.kind].lower()} ({_when(f, fiscal='')})"


def _short_year(f: Filing) -> str:  # FY23 Best Buy 10-K; Q2 FY23 Best Buy 10-Q
    form = _FORMS[f.kind].removeprefix("Form ")
    when = f.date or (f"Q{f.quarter} FY{f.year % 100:02d}" if f.quarter else f"FY{f.year % 100:02d}")
    return f"{when} {f.company} {form}"


CONVENTIONS: tuple[Callable[[Filing], str], ...] = (
    _company_report, _year_first, _slugged, _parenthesised, _short_year,
)


def renamed(doc_name: str, company: str | None = None) -> str:
    """The new file name (without ".pdf") for one filing: one convention, picked by a hash of its name."""
    choice = int.from_bytes(hashlib.blake2b(doc_name.encode(), digest_size=4).digest(), "little")
    filing = parse_name(doc_name, company)
    return CONVENTIONS[choice % len(CONVENTIONS)](filing).replace("/", "-")


def rename_library(doc_names: Iterable[str], companies: Mapping[str, str]) -> dict[str, str]:
    """Original name -> new name for every filing; a ConfigError if two filings would share a name."""
    names: dict[str, str] = {}
    taken: dict[str, str] = {}
    for doc_name in sorted(doc_names):
        new = renamed(doc_name, companies.get(doc_name))
        other = taken.setdefault(new.casefold(), doc_name)
        if other != doc_name:
            raise ConfigError(f"Renaming would give {other} and {doc_name} one name: {new}")
        names[doc_name] = new
    return names
