"""Exam names ("MR腰椎平扫", "DR腰椎正侧位") → modality and region, by the cues in cues/exam-names.toml."""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cds_service.facts.cues import cues_dir
from cds_service.facts.model import ReportAdvice

# Modalities (cues/exam-names.toml [modalities]).
CT = "ct"
MR = "mr"
RADIOGRAPH = "radiograph"
NUCLEAR = "nuclear"
VFA = "vfa"
SCOUT = "scout"
BONE_DENSITY = "bone-density"
UNSPECIFIED = "unspecified"

# Spine parts (REC-SPINE-XR coverage): the regions a spine study is reduced to.
SPINE_PARTS = frozenset({"thoracic", "lumbar"})


@dataclass(frozen=True)
class ExamName:
    """What an exam's name says: its modalities and the body regions it shows."""

    modalities: frozenset[str]
    regions: frozenset[str]

    @property
    def imaging(self) -> bool:
        return bool(self.modalities)

    @property
    def bone_density(self) -> bool:
        return BONE_DENSITY in self.modalities

    @property
    def cross_sectional(self) -> bool:
        """A diagnostic CT or MRI (not a bone-density QCT, not the CT of a SPECT/CT)."""
        return bool({CT, MR} & self.modalities)

    @property
    def spine_parts(self) -> frozenset[str]:
        return self.regions & SPINE_PARTS


@dataclass(frozen=True)
class _Cues:
    modalities: tuple[tuple[str, re.Pattern[str]], ...]
    regions: tuple[tuple[str, re.Pattern[str] | None, re.Pattern[str] | None, frozenset[str]], ...]
    spine_word: re.Pattern[str]
    advice: re.Pattern[str]
    # REC-CT-MRI, [advice]: what the advice names, and advice that is none or only conditional
    contrast: re.Pattern[str]
    pet: re.Pattern[str]
    further: re.Pattern[str]
    negated: re.Pattern[str]
    conditional: re.Pattern[str]


def _cues_file() -> Path:
    return cues_dir() / "exam-names.toml"


def _pattern(words: list[str], capitals_only: frozenset[str]) -> re.Pattern[str] | None:
    """One regular expression for a list of cue words, matched as the TOML's header says."""
    if not words:
        return None
    parts = []
    for word in words:
        prefix = word.endswith("*")
        stem = word.rstrip("*")
        body = re.escape(stem)
        if stem in capitals_only:
            body = f"(?-i:{body})"
        if stem[:1].isascii() and stem[:1].isalnum():
            body = rf"(?<![A-Za-z0-9]){body}"
        if prefix:
            body = rf"{body}[A-Za-z]*"
        if stem[-1:].isascii() and stem[-1:].isalnum():
            body = rf"{body}(?![A-Za-z0-9])"
        parts.append(body)
    return re.compile("|".join(parts), re.IGNORECASE)


@functools.cache
def _cues() -> _Cues:
    with _cues_file().open("rb") as handle:
        data: dict[str, Any] = tomllib.load(handle)
    capitals = frozenset(data.get("capitals_only", ()))
    modalities = []
    for name, words in data["modalities"].items():
        pattern = _pattern(list(words), capitals)
        if pattern is not None:
            modalities.append((name, pattern))
    regions = []
    for name, region in data["regions"].items():
        regions.append(
            (
                name,
                _pattern(list(region.get("words", ())), capitals),
                _pattern(list(region.get("with_spine_word", ())), capitals),
                frozenset(region.get("covers", ())),
            )
        )
    spine_word = _pattern(list(data["spine_words"]), capitals)
    advice = _pattern(list(data["advice_words"]), capitals)
    assert spine_word is not None and advice is not None
    words = data["advice"]
    contrast, pet, further, negated, conditional = (
        _pattern(list(words[key]), capitals)
        for key in ("contrast", "pet", "further", "negated", "conditional")
    )
    assert contrast and pet and further and negated and conditional
    return _Cues(
        tuple(modalities), tuple(regions), spine_word, advice, contrast, pet, further, negated, conditional
    )


@functools.lru_cache(maxsize=4096)
def read_exam_name(text: str) -> ExamName:
    """The modalities and regions an exam name states (cues/exam-names.toml, with its precedence)."""
    cues = _cues()
    modalities = {name for name, pattern in cues.modalities if pattern.search(text)}
    # Precedence (cues/exam-names.toml): bone density; nuclear medicine over its localising CT; a named
    # modality over an unspecified one.
    if BONE_DENSITY in modalities:
        modalities &= {BONE_DENSITY, VFA}
    if NUCLEAR in modalities:
        modalities.discard(CT)
    if modalities - {UNSPECIFIED}:
        modalities.discard(UNSPECIFIED)
    regions: set[str] = set()
    spine = cues.spine_word.search(text) is not None
    for name, words, with_spine, covers in cues.regions:
        if (words is not None and words.search(text)) or (
            spine and with_spine is not None and with_spine.search(text)
        ):
            regions.add(name)
            regions |= covers
    if VFA in modalities:
        regions |= SPINE_PARTS  # a VFA images the thoracic and lumbar spine
    return ExamName(frozenset(modalities), frozenset(regions))


_SENTENCE_END = re.compile(r"[。；;！!\n]|\.(?:\s|$)")
_CLAUSE_END = re.compile(r"[，,：:、]")
MAX_ADVICE = 8  # advice sentences kept per report (report text is untrusted; the output stays bounded)
MAX_ADVICE_QUOTE_CHARS = 200


def names_pet(text: str) -> bool:
    """A PET-CT named in an exam name or order text (cues/exam-names.toml [advice] pet)."""
    return _cues().pet.search(text) is not None


def read_advice(conclusion: str) -> tuple[ReportAdvice, ...]:
    """The further exams a report's conclusion itself advises, each sentence read apart, clause by clause
    (cues/exam-names.toml [advice] says how): REC-CT-MRI proposes them."""
    found: list[ReportAdvice] = []
    for sentence in _SENTENCE_END.split(conclusion):
        found.extend(_sentence_advice(sentence))
        if len(found) >= MAX_ADVICE:
            break
    return tuple(found[:MAX_ADVICE])


def _sentence_advice(sentence: str) -> list[ReportAdvice]:
    cues = _cues()
    quote = " ".join(sentence.split())[:MAX_ADVICE_QUOTE_CHARS]
    advice: list[ReportAdvice] = []
    advising = conditional = named = further = False
    for clause in _CLAUSE_END.split(sentence):
        trigger = cues.advice.search(clause) or cues.conditional.search(clause)
        if trigger is None and not advising:
            continue
        if cues.negated.search(clause):
            # "无需进一步检查", "no further imaging is needed": no advice; "…，无需CT": not that exam
            advising = advising and trigger is None
            continue
        advising = True
        further = further or cues.further.search(clause) is not None
        exams = _advised_exams(clause)
        if cues.conditional.search(clause):
            if not exams:
                # a trailing condition ("Recommend MRI, if clinically indicated") governs what it follows
                advice = [replace(a, conditional=True) for a in advice]
            conditional = True
        if exams:
            named = True
            advice.append(ReportAdvice(exams, conditional, quote))
    if advising and further and not named:
        advice.append(ReportAdvice(frozenset(), conditional, quote))
    return advice


def _advised_exams(clause: str) -> frozenset[str]:
    cues = _cues()
    modalities = read_exam_name(clause).modalities
    exams = set(modalities & {CT, MR})
    if cues.pet.search(clause):
        exams.discard(CT)  # the CT of a PET-CT localises; it is no diagnostic CT
        exams.add("pet-ct")
    if cues.contrast.search(clause):
        if MR in exams:
            exams = (exams - {MR}) | {"contrast-mr"}
        elif not exams:
            exams.add("contrast")  # "建议增强扫描": contrast of the report's own modality
    return frozenset(exams)
