"""BMD values written in report text (DXA and QCT, Chinese and English) → the values, sites not measured,
and values present but unreadable.

Sentences are read one at a time: a value (T-score, Z-score, g/cm², mg/cm³) belongs to the nearest site
named before it in the same sentence ("腰椎L1-L4 BMD 0.812 g/cm²，T值 -2.8"). A value after a comparison
("T值≤-2.5"), in a range ("-1.0~-2.5") or in a sentence of criteria ("诊断标准", "WHO criteria") is not a
measurement. The caller (facts/extract.py) applies the plausibility ranges and units of discrete
Observations to what this module returns.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass, field

from cds_service.facts.cues import cue_table
from cds_service.facts.levels import vertebra_levels
from cds_service.facts.model import Measure, Modality, Region
from cds_service.facts.reading_cache import ReadOncePerText

MAX_BMD_TEXT_CHARS = 20_000  # a report longer than this is read up to here (its length is bounded anyway)


@dataclass(frozen=True)
class TextValue:
    """One number read from text, in the unit it was written in (the caller converts and checks it)."""

    modality: Modality
    measure: Measure
    region: Region
    number: float
    unit: str  # "" for scores; as written, normalised ("g/cm2", "mg/cm3", ...)
    quote: str
    vertebra: str | None = None
    laterality: str | None = None
    region_text: str | None = None


@dataclass(frozen=True)
class TextSite:
    """A site the text says was not measured (or excluded), and whether DXA-2's reasons are given."""

    region: Region
    quote: str
    laterality: str | None = None
    dxa2_reason: bool = False


@dataclass(frozen=True)
class BmdTextReading:
    values: tuple[TextValue, ...]
    unmeasured: tuple[TextSite, ...]
    unreadable: tuple[str, ...]  # quotes of values present but unreadable
    qct: bool  # the text is a QCT report


# --- words -------------------------------------------------------------------------------------
# Sites, longest first within a region. The vertebral range of DXA-1 (L1-L4) is the lumbar spine.
_SITE_PATTERNS: tuple[tuple[Region, str], ...] = (
    (
        Region.FEMORAL_NECK,
        r"股骨颈|femoral\s+neck|femur\s+neck|neck\s+of\s+(?:the\s+)?femur|(?<![a-z])neck(?![a-z])",
    ),
    (
        Region.TOTAL_HIP,
        r"全髋(?:关节|部)?|髋部?总(?:体|值)?|total\s+hip|hip\s+total|(?:total\s+)?femur\s+total|髋(?:关节|部)?|(?<![a-z])hips?(?![a-z])",
    ),
    (
        Region.FOREARM,
        r"(?:非优势侧)?前臂(?:远端)?(?:\s*(?:1/3|33\s*%))?|桡骨(?:远端|远侧)?(?:\s*(?:1/3|33\s*%))?"
        r"|(?:1/3|33\s*%)\s*(?:radius|桡骨)|(?:distal\s+)?forearm|(?:distal\s+)?radius(?:\s*(?:1/3|33\s*%))?",
    ),
    (
        Region.LUMBAR_SPINE,
        r"腰椎\s*\(?\s*l1\s*[-~至到]\s*l?4\s*\)?|腰椎(?:正位)?|(?<![a-z])l1\s*[-~至到]\s*l?4(?!\d)"
        r"|(?:ap\s+)?lumbar(?:\s+spine)?|(?<![a-z])(?<!thoracic )(?<!cervical )(?:ap\s+)?spine(?![a-z])",
    ),
    (Region.CALCANEUS, r"跟骨|calcane(?:us|al)|(?<![a-z])heel"),
)
_SITE_RE = re.compile("|".join(f"(?P<r{i}>{p})" for i, (_, p) in enumerate(_SITE_PATTERNS)))
# Vertebrae: "L1", "L1、L2", "L1-L2", "L1~2", "腰1", "第1腰椎" (one or a group of levels).
_LEVEL = (
    r"(?:(?<![a-z])[lt]\s?\d{1,2}(?!\d)"
    r"|第\s?(?:\d{1,2}|十[一二]?|[一二三四五六七八九])\s?[胸腰]椎|[胸腰]椎?\s?\d{1,2}(?!\d))"
)
_VERTEBRAE_RE = re.compile(
    rf"{_LEVEL}(?:\s*(?:[、,/和及与&+]|and|[-~至到])\s*(?:[lt]?\s?\d{{1,2}}(?!\d)|{_LEVEL}))*"
)
_RANGE_MARK = re.compile(r"\d\s*[-~至到]\s*[lt]?\d")

_NUMBER = r"[-+]?\s?\d{1,4}(?:\.\d+)?"
_SCORE_LABEL = r"(?:值|-?\s*scores?|评分|分值|分数)"
_T_RE = re.compile(rf"(?<![a-z])(?P<m>[tz])\s*(?:{_SCORE_LABEL}\s*(?:[:=]|为|是)?|[:=])\s*")
_BMD_UNIT = r"(?:g|mg)\s*/\s*(?:cm\s*\^?\s*[23]|cc|ml)"
_VALUE_WITH_UNIT_RE = re.compile(rf"(?P<n>{_NUMBER})\s*(?P<u>{_BMD_UNIT})(?![a-z0-9])")
_BMD_LABEL_RE = re.compile(r"bmd|骨密度|骨矿(?:物)?密度|骨矿含量|bone\s+(?:mineral\s+)?density")
_SCORE_VALUE_RE = re.compile(rf"(?P<n>{_NUMBER})(?P<bad>[.x*?#]+[\dx*?#]*)?")
_BARE_QCT_NUMBER_RE = re.compile(
    r"\s*(?:平均值?|均值|mean|average)?\s*(?:值|值为|为|是|[:=])?\s*(?P<n>\d{1,3}(?:\.\d+)?)(?![\d.\-/:年月日])"
)
_MORE_VALUES_RE = re.compile(r"[\s,、]*(?:[lt]?\s?\d|$)")
_LISTED_NUMBERS_RE = re.compile(
    rf"\s*[:=]?\s*(?:(?:椎体)?(?:松质骨)?(?:骨密度|v?bmd)\s*)?(?:分别为|分别是|分别|respectively|were|are)?\s*[:=]?\s*(?P<list>{_NUMBER}(?:\s*(?:[、/和及与]|and)\s*{_NUMBER})*)(?P<unit>\s*{_BMD_UNIT})?"
)
# A value that is there but cannot be read: "T值 -2.x", "T-score: ***", "Z值 --", "见附图".
_UNREADABLE_RE = re.compile(
    r"(?:[-+]?\s?\d*\.?[x*?#]+[x*?#\d.]*"
    r"|-{2,}|n/?a(?![a-z])|不详|无法(?:读取|识别|计算|显示)|模糊|缺失|unreadable|illegible|see\s+(?:image|attached)|见(?:附)?[图表])"
)
_RANGE_BEFORE = re.compile(r"\d\s*(?:~|至|到)\s*$")
_COMPARISON_BEFORE = re.compile(
    r"(?:[<>≤≥≦≧]|<=|>=|小于|大于|低于|高于|不足|不超过|不低于|超过|below|above|less\s+than|greater\s+than|under|over)\s*$"
)
_COMPARISON_AFTER = re.compile(
    r"^\s*(?:sd\s*)?(?:及?以下|及?以上|或以下|或以上|or\s+(?:below|lower|less|above|higher|more))"
)
_RANGE_AFTER = re.compile(rf"^\s*(?:sd\s*)?(?:~|至|到|-)\s*{_NUMBER}")
# The words (criteria, not measured, DXA-2 reasons, …) are data: cues/bmd-text.toml.
_CUES = {key: tuple(words) for key, words in cue_table("bmd-text").items()}
_CRITERIA_WORDS = _CUES["criteria"]
_NOT_MEASURED_WORDS = _CUES["not_measured"]
_DXA2_REASON_WORDS = _CUES["dxa2_reasons"]
_MEAN_WORDS = _CUES["mean"]
_QCT_WORDS = _CUES["qct"]
_QUS_WORDS = _CUES["ultrasound"]
_PERIPHERAL_WORDS = _CUES["peripheral"]
_LEFT_RE = re.compile(r"左|(?<![a-z])(?:left|lt)(?![a-z])")
_RIGHT_RE = re.compile(r"右|(?<![a-z])(?:right|rt)(?![a-z])")


@dataclass
class _Site:
    region: Region | None  # None: a vertebra group
    start: int
    end: int
    text: str
    levels: tuple[str, ...] = ()
    laterality: str | None = None
    mean: bool = False


def read_bmd_text(text: str, *, qct_report: bool = False) -> BmdTextReading:
    """Values, sites not measured and unreadable values in a report's text (each text read once per
    process: facts/reading_cache.py)."""
    return (_read_qct_report if qct_report else _read_report)(text)


def _read(text: str, *, qct_report: bool) -> BmdTextReading:
    original = text[:MAX_BMD_TEXT_CHARS]
    low, owners = _normalise(original)
    context = _Context(
        qct=qct_report or any(w in low for w in _QCT_WORDS) or bool(_VBMD_UNIT_RE.search(low)),
        qus=any(w in low for w in _QUS_WORDS),
        peripheral=any(w in low for w in _PERIPHERAL_WORDS),
    )
    reading = _Reading()
    for start, end in _sentences(low):
        sentence = low[start:end]
        quote = _quote(original, owners, start, end)
        if quote and not any(w in sentence for w in _CRITERIA_WORDS):
            _read_sentence(sentence, quote, context, reading)
    return BmdTextReading(
        tuple(reading.values),
        tuple(reading.unmeasured),
        tuple(dict.fromkeys(reading.unreadable)),
        context.qct,
    )


_VBMD_UNIT_RE = re.compile(r"mg\s*/\s*(?:cm\s*\^?\s*3|cc|ml)")
_read_report = ReadOncePerText(functools.partial(_read, qct_report=False))
_read_qct_report = ReadOncePerText(functools.partial(_read, qct_report=True))


@dataclass(frozen=True)
class _Context:
    qct: bool
    qus: bool
    peripheral: bool


@dataclass
class _Reading:
    values: list[TextValue] = field(default_factory=list)
    unmeasured: list[TextSite] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def _read_sentence(sentence: str, quote: str, context: _Context, reading: _Reading) -> None:
    sites = _sites(sentence)
    masked = _mask(sentence, sites)
    unmeasured = _unmeasured_sites(sentence, sites, quote, reading)
    used: set[int] = set()  # positions of numbers already read in this sentence
    _listed_vbmd(masked, sites, quote, context, reading, used)
    for m in _VALUE_WITH_UNIT_RE.finditer(masked):
        if _overlaps(used, m.start("n"), m.end("n")) or _not_a_measurement(masked, m.start("n"), m.end()):
            continue
        used.update(range(m.start("n"), m.end("n")))
        value = _number(m.group("n"))
        unit = re.sub(r"[\s^]", "", m.group("u"))
        site = _site_before(sites, m.start())
        if value is None:
            reading.unreadable.append(quote)
        elif site is None or id(site) not in unmeasured:
            built = (
                _vbmd(site, value, unit, quote, context)
                if unit.endswith(("3", "cc", "ml"))
                else _areal(site, value, unit, quote, context)
            )
            if built is not None:
                reading.values.append(built)
    for m in _T_RE.finditer(masked):
        rest = masked[m.end() :].lstrip(" :")
        offset = len(masked) - len(rest)
        number = _SCORE_VALUE_RE.match(rest)
        site = _site_before(sites, m.start())
        if site is not None and id(site) in unmeasured:
            continue
        if number is None or number.group("bad"):
            if number is not None or _UNREADABLE_RE.match(rest):
                reading.unreadable.append(quote)
            continue  # "T值采用中国人参考数据库": a label without a value is not a value
        if _overlaps(used, offset, offset + number.end("n")) or _not_a_measurement(
            masked, offset, offset + number.end("n")
        ):
            continue
        value = _number(number.group("n"))
        if value is None:
            reading.unreadable.append(quote)
            continue
        used.update(range(offset, offset + number.end("n")))
        measure = Measure.T_SCORE if m.group("m") == "t" else Measure.Z_SCORE
        built = _score(site, measure, value, quote, context)
        if built is not None:
            reading.values.append(built)
    if context.qct:
        _unitless_qct(masked, used, quote, reading)


def _unmeasured_sites(sentence: str, sites: list[_Site], quote: str, reading: _Reading) -> set[int]:
    """Sites the sentence says were not measured: the site named before the cue in its clause (or, for a
    clause that opens with the cue, the site just before it). Returns the ids of those sites."""
    found: set[int] = set()
    for clause_start, clause_end in _clauses(sentence):
        clause = sentence[clause_start:clause_end]
        for word in _NOT_MEASURED_WORDS:
            at = clause.find(word)
            if at < 0:
                continue
            cue = clause_start + at
            before_cue = _site_before(sites, cue)
            next_site = _site_from(sites, cue)
            site: _Site | None = None
            if before_cue is not None and before_cue.start >= clause_start:
                site = before_cue
            elif at <= 6 and before_cue is not None:
                site = before_cue  # "腰椎严重变形，无法测量"
            elif next_site is not None and next_site.start < clause_end:
                site = next_site  # "Unable to measure the left hip"
            if site is None or site.region is None or id(site) in found:
                continue  # a vertebra left out of a QCT mean is QCT-1's business, not a site
            found.add(id(site))
            following = _site_from(sites, site.start + 1)
            said = sentence[site.start : following.start if following else len(sentence)]
            reason = any(w in said or w in clause for w in _DXA2_REASON_WORDS)
            reading.unmeasured.append(TextSite(site.region, quote, site.laterality, reason))
    return found


def _listed_vbmd(
    masked: str,
    sites: list[_Site],
    quote: str,
    context: _Context,
    reading: _Reading,
    used: set[int],
) -> None:
    """QCT-1 per-vertebra values: "L1 78.2, L2 66.8 mg/cm³", "L1、L2分别为78.2、66.8 mg/cm³"."""
    if not _VBMD_UNIT_RE.search(masked) or context.peripheral:
        return
    last_unit = max((m.start() for m in _VALUE_WITH_UNIT_RE.finditer(masked)), default=-1)
    for site in sites:
        if site.region is not None or not site.levels or site.end > last_unit:
            continue  # a unit must follow somewhere in the sentence
        m = _LISTED_NUMBERS_RE.match(masked, site.end)
        if m is None:
            continue
        numbers = list(re.finditer(_NUMBER, m.group("list")))
        unit_follows = m.group("unit") is not None or bool(_MORE_VALUES_RE.match(masked, m.end()))
        if not unit_follows:
            continue
        if len(numbers) == len(site.levels) and len(numbers) > 1 and not site.mean:
            pairs = list(zip(site.levels, numbers, strict=True))  # "分别为": one value per vertebra
        elif len(numbers) == 1:
            pairs = [(site.levels[0] if len(site.levels) == 1 else "", numbers[0])]
        else:
            continue
        base = m.start("list")
        for level, number in pairs:
            start, end = base + number.start(), base + number.end()
            if _overlaps(used, start, end) or _not_a_measurement(masked, start, end):
                continue
            value = _number(number.group(0))
            if value is None:
                continue
            used.update(range(start, end))
            if level:
                reading.values.append(
                    TextValue(
                        Modality.QCT,
                        Measure.VBMD,
                        Region.VERTEBRA,
                        value,
                        "mg/cm3",
                        quote,
                        level,
                        None,
                        level,
                    )
                )
            else:
                reading.values.append(
                    TextValue(
                        Modality.QCT,
                        Measure.VBMD,
                        Region.LUMBAR_SPINE,
                        value,
                        "mg/cm3",
                        quote,
                        None,
                        None,
                        site.text,
                    )
                )


def _unitless_qct(masked: str, used: set[int], quote: str, reading: _Reading) -> None:
    """QCT: "骨密度 75.2" with no unit is a value that cannot be read (mg/cm³? HU?)."""
    for m in _BMD_LABEL_RE.finditer(masked):
        number = _BARE_QCT_NUMBER_RE.match(masked[m.end() :])
        if number is None:
            continue
        start = m.end() + number.start("n")
        if _overlaps(used, start, m.end() + number.end()):
            continue
        after = masked[m.end() + number.end() :]
        if re.match(rf"\s*(?:{_BMD_UNIT}|%|岁|年|sd|hu)", after) or _not_a_measurement(
            masked, start, start + 1
        ):
            continue
        reading.unreadable.append(quote)


def _overlaps(used: set[int], start: int, end: int) -> bool:
    return any(i in used for i in range(start, end))


def _not_a_measurement(text: str, start: int, end: int) -> bool:
    """A threshold ("≤ -2.5", "低于 80", "-2.5 以下") or a range ("-1.0~-2.5") is not a value."""
    before = text[max(0, start - 12) : start]
    after = text[end : end + 12]
    if _RANGE_BEFORE.search(before) or (
        re.search(r"\d\s*$", before) and text[start:end].lstrip().startswith("-")
    ):
        return True  # "80~120", "80-120": the second bound of a range
    return bool(
        _COMPARISON_BEFORE.search(before) or _COMPARISON_AFTER.match(after) or _RANGE_AFTER.match(after)
    )


def _score(
    site: _Site | None, measure: Measure, value: float, quote: str, context: _Context
) -> TextValue | None:
    region, vertebra, laterality, region_text = _where(site)
    if context.qus:
        modality = Modality.QUS
    elif region is Region.CALCANEUS or context.peripheral:
        modality = Modality.PERIPHERAL
    elif context.qct:
        # QCT-3: the hip T-score of QCT (CTXA) is judged; QCT spine T-scores are not used (QCT-1/2).
        if region not in (Region.TOTAL_HIP, Region.FEMORAL_NECK) or measure is not Measure.T_SCORE:
            return None
        return TextValue(Modality.QCT, measure, Region.HIP, value, "", quote, None, laterality, region_text)
    else:
        modality = Modality.DXA
    return TextValue(modality, measure, region, value, "", quote, vertebra, laterality, region_text)


def _areal(site: _Site | None, value: float, unit: str, quote: str, context: _Context) -> TextValue | None:
    if context.qus:
        return None  # DX-4: ultrasound gives no BMD
    region, vertebra, laterality, region_text = _where(site)
    modality = Modality.PERIPHERAL if region is Region.CALCANEUS or context.peripheral else Modality.DXA
    return TextValue(modality, Measure.ABMD, region, value, unit, quote, vertebra, laterality, region_text)


def _vbmd(site: _Site | None, value: float, unit: str, quote: str, context: _Context) -> TextValue | None:
    if context.peripheral:
        return None  # pQCT is peripheral (DX-4): its vBMD is not lumbar QCT
    if site is None or site.region is Region.LUMBAR_SPINE or (site.region is None and len(site.levels) > 1):
        # QCT-1: a reported mean ("L1、L2椎体松质骨骨密度平均值 72.5 mg/cm³")
        return TextValue(
            Modality.QCT,
            Measure.VBMD,
            Region.LUMBAR_SPINE,
            value,
            unit,
            quote,
            None,
            None,
            site.text if site else None,
        )
    if site.region is None:
        level = site.levels[0]
        return TextValue(Modality.QCT, Measure.VBMD, Region.VERTEBRA, value, unit, quote, level, None, level)
    return None  # a volumetric value at the hip or forearm is not a QCT-2 value


def _where(site: _Site | None) -> tuple[Region, str | None, str | None, str | None]:
    if site is None:
        return Region.UNSPECIFIED, None, None, None  # DXA-4
    if site.region is None:
        if len(site.levels) == 1:
            return Region.VERTEBRA, site.levels[0], None, site.text
        return Region.VERTEBRA, None, None, site.text  # several vertebrae, not L1-L4: context only
    return site.region, None, site.laterality, site.text


def _sites(sentence: str) -> list[_Site]:
    found: list[_Site] = []
    for m in _SITE_RE.finditer(sentence):
        index = next(i for i, group in enumerate(m.groups()) if group is not None)
        found.append(
            _Site(
                _SITE_PATTERNS[index][0],
                m.start(),
                m.end(),
                m.group(0),
                laterality=_side(sentence, m.start(), m.end()),
            )
        )
    named = {i for s in found for i in range(s.start, s.end)}
    for m in _VERTEBRAE_RE.finditer(sentence):
        if m.start() in named:
            continue  # "腰椎L1-L4" is the lumbar spine, read above
        text = m.group(0).rstrip()
        levels = tuple(_expand(text))
        if not levels:
            continue
        if set(levels) >= {"L1", "L2", "L3", "L4"} and _RANGE_MARK.search(text):
            found.append(_Site(Region.LUMBAR_SPINE, m.start(), m.start() + len(text), text))
            continue
        tail = sentence[m.end() : m.end() + 30]
        mean = any(w in tail for w in _MEAN_WORDS)
        found.append(_Site(None, m.start(), m.start() + len(text), text, levels=levels, mean=mean))
    found.sort(key=lambda s: s.start)
    return found


def _expand(text: str) -> list[str]:
    """The levels of a vertebra group; a range "L1-L3" is every level in it."""
    levels = vertebra_levels(text.upper())
    bare = re.findall(r"[、,/和及与&+~\-至到]\s*(\d{1,2})(?!\d)", text)
    if levels and bare:
        prefix = levels[0][0]
        for n in bare:
            level = f"{prefix}{int(n)}"
            if level not in levels and 1 <= int(n) <= (12 if prefix == "T" else 5):
                levels.append(level)
    if _RANGE_MARK.search(text) and len(levels) == 2 and levels[0][0] == levels[1][0]:
        a, b = int(levels[0][1:]), int(levels[1][1:])
        if a < b <= a + 5:
            levels = [f"{levels[0][0]}{n}" for n in range(a, b + 1)]
    return levels


def _site_before(sites: list[_Site], position: int) -> _Site | None:
    """The last site that starts before `position` (sites are in text order)."""
    i = bisect_left(sites, position, key=lambda s: s.start)
    return sites[i - 1] if i else None


def _site_from(sites: list[_Site], position: int) -> _Site | None:
    """The first site that starts at or after `position`."""
    i = bisect_left(sites, position, key=lambda s: s.start)
    return sites[i] if i < len(sites) else None


def _side(sentence: str, start: int, end: int) -> str | None:
    before = re.split(r"[,:]|\d", sentence[max(0, start - 8) : start])[-1]
    after = sentence[end : end + 10]
    window = before + (after.split(")")[0] if after.lstrip().startswith("(") else "")
    left = bool(_LEFT_RE.search(window))
    right = bool(_RIGHT_RE.search(window))
    if left == right:
        return None
    return "left" if left else "right"


def _mask(sentence: str, sites: list[_Site]) -> str:
    """The sentence with site names blanked, so that "1/3", "33%" and "L1-L4" are never read as values."""
    chars = list(sentence)
    for s in sites:
        for i in range(s.start, s.end):
            chars[i] = " "
    return "".join(chars)


def _number(raw: str) -> float | None:
    try:
        return float(raw.replace(" ", ""))
    except ValueError:
        return None


def _sentences(low: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = 0
    for m in re.finditer(r"[。;!\n]|\.(?=\s|$)", low):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(low)))
    return [(a, b) for a, b in spans if low[a:b].strip()]


def _clauses(sentence: str) -> list[tuple[int, int]]:
    """Clauses split at commas (not decimal commas): a "not measured" stays in its clause."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in re.finditer(r",(?!\d)", sentence):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(sentence)))
    return spans


_MINUS = {
    "\u2212": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2010": "-",
    "\u2011": "-",
    "\ufe63": "-",
    "\uff0d": "-",
}


def _normalise(text: str) -> tuple[str, list[int]]:
    """NFKC (full-width → half-width, ² → 2), minus signs → "-", lower case; each character's origin kept."""
    parts: list[str] = []
    owners: list[int] = []
    for i, ch in enumerate(text):
        mapped = _MINUS.get(ch) or unicodedata.normalize("NFKC", ch).lower()
        for c in mapped:
            parts.append(c)
            owners.append(i)
    return "".join(parts), owners


def _quote(original: str, owners: list[int], start: int, end: int) -> str:
    if start >= end:
        return ""
    return original[owners[start] : owners[end - 1] + 1].strip()
