"""Reading imaging-report conclusion text (English and Chinese) into typed fracture mentions and findings."""

# The reader is pure and linear-time. Report text is untrusted, so:
#   * at most MAX_REPORT_CHARS characters are read (ReportReading.truncated says so);
#   * the text is NFKC-normalised character by character (full-width punctuation, digits and Latin
#     letters, Roman numerals Ⅱ -> "II") and ASCII-lower-cased, which keeps a map back to the input:
#     every `start`/`end` is an offset into the *original* input and `quote == text[start:end]`;
#   * it is cut into sentences (。 ; ! ? newline, and "." unless it is a decimal point or inside
#     "e.g.") and clauses (, : 伴 "with", and a space between two CJK characters; not the comma in
#     "L1, L2"), and every regex below runs inside one clause with bounded quantifiers only (no nested
#     unbounded repetition), so matching stays linear; the output is bounded too (MAX_FRACTURES,
#     MAX_FINDINGS, MAX_QUOTE_CHARS);
#   * negation and uncertainty are resolved per mention inside a clause: a cue governs a keyword
#     only within a short window and only when no other finding ("breaker", e.g. 骨髓水肿, 外伤史,
#     骨质破坏) stands between them without a conjunction (及/和/或/、/and/or/nor).
#
# Every word is data: cues/report-text.toml (keywords, cues, sites, level and height-loss cues), read
# once at import. PRECEDENCE, as its header states: the match that starts first wins; at one place the
# entry listed first, then the phrase listed first; a match consumes the words inside it, so a pseudo
# cue ("of indeterminate age") or an ignored keyword ("rather than pathologic") silences the cue or
# keyword it contains; negated wins over uncertain at one keyword.
#
# Choices the spec left open (see the module's tests for the corpus):
#   * "probable", "likely", "suggestive of", "倾向", "可能性大" are uncertain (FX-6); "考虑", "提示",
#     "符合", "可见", "consistent with", "compatible with" and plain statements are certain.
#   * "unlikely", "less likely", "可能性小/不大" negate.
#   * "No acute fracture" / "未见新鲜骨折" yields no mention; an old fracture stated elsewhere is its
#     own mention.
#   * A tumour/metastasis/infection word (or 骨质破坏 / bone destruction / lytic lesion) at the
#     fracture marks it pathological even when it is itself uncertain ("转移瘤不除外"), because FX-8
#     and REC-CT-MRI ask for the differential then; negated lesions ("未见骨质破坏") never do.
#     Pathology ruled out ("病理性骨折依据不足", "暂不考虑…", "rather than pathologic", "no underlying
#     lesion") is not pathology and denies no fracture. ICD-10 M80 titles ("骨质疏松伴病理性骨折",
#     "osteoporosis with pathological fracture") name one osteoporotic fracture (FX-1/FX-2).
#   * A deformity said to be physiological or developmental (生理性, Scheuermann, 许莫氏结节, 终板炎,
#     血管瘤, normal variant), with no fracture word stated for it, is no mention (FX-1 criterion 2);
#     a fracture stated beside such a shape still counts.
#   * A qualifier of the fracture's age or cause ("of indeterminate age", 新旧程度待定, "likely
#     osteoporotic", 陈旧性可能) is no doubt about the fracture (FX-6/FX-7); "possible old fracture"
#     and 陈旧性骨折可能 still doubt the fracture.
#   * After advice in a clause (建议…, recommend…, to assess…) a fracture word is uncertain and acuity
#     or oedema words are dropped: advice asks, it does not state (FX-6/FX-7).
#   * Marrow oedema decides acuity before the words 新鲜/陈旧/acute/chronic (FX-7). Fat-suppressed high
#     signal (STIR, 压脂) is oedema only when tied to a vertebra: in a clause of the fracture's sentence
#     or naming a level or 椎体, never in a clause naming a disc, soft tissue, ligament, cord, ….
#   * Trauma is read from the fracture's sentence, else from the whole report; the most energetic
#     mechanism wins (high-energy > minor > unspecified > none). A trauma of unstated energy
#     ("外伤后") is "unspecified": recorded, so FX-1a's assumption no longer applies. An old fracture
#     does not take a mechanism stated in another sentence (it predates it).
#   * 终板塌陷 / "endplate collapse" count as ECF present; 终板凹陷 / "endplate depression" do not
#     (Schmorl's nodes look the same).
#   * A deformity word alone (楔形变, 变扁, "compression deformity") is reported as a vertebra mention;
#     deformity_only is False only when a fracture word is stated, or a Genant grade ≥ 1 is stated
#     without ECF absent and without "no fracture" for that vertebra (FX-3/FX-4).
#   * A height loss stated as a number next to a height-loss word ("高度减低约30%", "压缩约1/3", "45%
#     height loss") is a grade by GENANT_HEIGHT_LOSS_BANDS (FX-3, boundaries a choice); a stated Genant
#     grade wins over it, and it wins over a severity word (轻度/mild).
#   * "T1"/"T2" beside signal words (短T1长T2信号, T1WI, "T1 hypointense") are sequences, not vertebrae.
#   * vertebrae are filled only for site "vertebra"; posterior elements (横突, spinous process, ...)
#     are site "other"; levels are sorted in spine order (C1..C7, T1..T12, L1..L5).
#   * Attributes are read from the fracture's own clauses, then from the other clauses of its
#     sentence, then from clauses elsewhere that name the same level ("MRI：L1椎体骨髓水肿"); marrow
#     oedema and lesions stated with no level or site apply report-wide.
#   * Vertebra mentions with the same levels are merged (findings and impression repeat each other),
#     so a count of mentions does not inflate FX-4's "multiple" fractures.

from __future__ import annotations

import functools
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from cds_service.facts.cues import alternation, cue_table
from cds_service.facts.levels import CN_NUMBERS
from cds_service.facts.reading_cache import read_once_per_text

MAX_REPORT_CHARS: Final = 8000
# NFKC can expand one character into up to 18; bound the normalised text as well.
MAX_NORMALISED_CHARS: Final = 16000
MAX_FRACTURES: Final = 64
MAX_FINDINGS: Final = 64
MAX_QUOTE_CHARS: Final = 200
# A negation/uncertainty cue reaches this many characters before / after a keyword.
PRE_CUE_WINDOW: Final = 48
POST_CUE_WINDOW: Final = 24
# How many free clauses per vertebral level are kept for cross-sentence attributes.
MAX_CLAUSES_PER_LEVEL: Final = 8
MAX_FREE_CLAUSES: Final = 64

SITE_VERTEBRA: Final = "vertebra"
SITE_HIP: Final = "hip"
SITE_DISTAL_RADIUS: Final = "distal-radius"
SITE_PROXIMAL_HUMERUS: Final = "proximal-humerus"
SITE_RIB: Final = "rib"
SITE_PELVIS: Final = "pelvis"
SITE_OTHER: Final = "other"

FINDING_BONE_LOSS: Final = "bone-loss"  # REC-BMD
FINDING_SCOLIOSIS: Final = "scoliosis"  # REC-QCT
FINDING_SPINE_DEGENERATION: Final = "spine-degeneration"  # REC-QCT
FINDING_AORTIC_CALCIFICATION: Final = "aortic-calcification"  # REC-QCT
FINDING_LINEAR_UPTAKE_BAND: Final = "linear-uptake-band"  # DX-8


@dataclass(frozen=True)
class FractureMention:
    site: str  # "vertebra" | "hip" | "distal-radius" | "proximal-humerus" | "rib" | "pelvis" | "other"
    vertebrae: tuple[str, ...]  # normalised levels in spine order, e.g. ("T12", "L1"); () if none
    certain: bool  # FX-6
    genant_grade: int | None  # FX-3 (0..3)
    ecf: str  # FX-4: "present" | "absent" | "not-stated"
    deformity_only: bool  # FX-4
    trauma: str  # FX-5: "high-energy" | "minor" | "unspecified" | "none" | "not-stated"
    pathological: bool  # FX-8
    acuity: str  # FX-7: "new" | "old" | "unknown"
    quote: str  # text[start:end] of the original input
    start: int
    end: int


@dataclass(frozen=True)
class TextFinding:
    # "bone-loss" | "scoliosis" | "spine-degeneration" | "aortic-calcification" | "linear-uptake-band"
    kind: str
    quote: str
    start: int
    end: int


@dataclass(frozen=True)
class ReportReading:
    fractures: tuple[FractureMention, ...]
    findings: tuple[TextFinding, ...]
    truncated: bool  # input longer than MAX_REPORT_CHARS, or more mentions than the output bounds


# --------------------------------------------------------------------------------------------------
# Cue tables: cues/report-text.toml (reviewed data, with its precedence rule in the header), compiled once
# at import. Inside one combined regex, alternatives listed first win at the same position.

_FRACTURE: Final = "fracture"
_ECF: Final = "ecf"
_DEFORMITY: Final = "deformity"
_LESION: Final = "lesion"
_OEDEMA: Final = "oedema"
_ACUITY: Final = "acuity"
_TRAUMA: Final = "trauma"
_FINDING: Final = "finding"
_BREAKER: Final = "breaker"
_IGNORED: Final = "ignored"
_SHAPE: Final = "shape"  # FX-1 criterion 2: a physiological or developmental shape, not a fracture
_HIT_KINDS: Final = frozenset(
    {_FRACTURE, _ECF, _DEFORMITY, _LESION, _OEDEMA, _ACUITY, _TRAUMA, _FINDING, _BREAKER, _IGNORED, _SHAPE}
)
# FX-7: fat-suppressed high signal, oedema only when tied to a vertebra.
_SIGNAL: Final = "signal"

# Kinds that are one "group" for negation scope: "no wedge deformity or fracture".
_FRACTURE_GROUP: Final = frozenset({_FRACTURE, _ECF, _DEFORMITY})
_ADVISED_KINDS: Final = _FRACTURE_GROUP | {_ACUITY, _OEDEMA}

# "unspecified": a trauma stated without its energy ("外伤后"): FX-1a (no trauma recorded) no longer holds.
_TRAUMA_RANK: Final = {"none": 1, "unspecified": 2, "minor": 3, "high-energy": 4}
_ECF_RANK: Final = {"not-stated": 0, "absent": 1, "present": 2}


@dataclass(frozen=True)
class _HitSpec:
    kind: str
    value: str = ""
    breaker: bool = False  # a separate finding that stops a negation cue reaching past it
    immune: bool = False  # the phrase carries its own polarity ("无明显诱因", "endplate intact")
    vertebral: bool = False  # implies a vertebra (compression fracture, wedge deformity)


# FX-3: a Genant grade at a vertebral level, with no fracture or deformity word in its clause.
_GRADED_VERTEBRA: Final = _HitSpec(_DEFORMITY, vertebral=True)

_CUES: Final = cue_table("report-text")


def _hit_spec(entry: dict[str, Any]) -> _HitSpec:
    if entry["kind"] not in _HIT_KINDS:
        raise ValueError(f"cues/report-text.toml: unknown kind {entry['kind']!r} in {entry.get('name')!r}")
    return _HitSpec(
        entry["kind"],
        entry.get("value", ""),
        breaker=entry.get("breaker", False),
        immune=entry.get("immune", False),
        vertebral=entry.get("vertebral", False),
    )


def _combined(entries: Sequence[tuple[str, Any]], prefix: str) -> tuple[re.Pattern[str], dict[str, Any]]:
    """One regex of named groups, one per table entry, in table order; and group name -> entry's meaning."""
    pattern = "|".join(f"(?P<{prefix}{i}>{p})" for i, (p, _) in enumerate(entries))
    return re.compile(pattern), {f"{prefix}{i}": meaning for i, (_, meaning) in enumerate(entries)}


def _words(section: str, name: str) -> re.Pattern[str]:
    return re.compile(alternation(_CUES[section][name]))


_HIT_RE, _HIT_SPECS = _combined([(alternation(e["phrases"]), _hit_spec(e)) for e in _CUES["hit"]], "h")

# FX-6 cues: kind (negation | hedge | pseudo) and which way they reach (forward, backward, both).
_NEG: Final = "negation"
_UNC: Final = "hedge"
_PSEUDO: Final = "pseudo"
_PRE: Final = "forward"
_POST: Final = "backward"
_BOTH: Final = "both"
for _entry in _CUES["cue"]:
    if _entry["kind"] not in (_NEG, _UNC, _PSEUDO) or _entry["reaches"] not in (_PRE, _POST, _BOTH):
        raise ValueError(f"cues/report-text.toml: bad cue {_entry.get('name')!r}")
_CUE_RE, _CUE_SPECS = _combined(
    [(alternation(e["phrases"]), (e["kind"], e["reaches"])) for e in _CUES["cue"]], "c"
)

_BAND_SHAPE_RE: Final = _words("words", "band_shape")  # DX-8
_CONJUNCTION_RE: Final = _words("words", "conjunction")
_LISTHESIS_RE: Final = _words("words", "listhesis")
# Lesions elsewhere ("肝转移", "乳腺癌病史") are not at the fracture (FX-8) unless the clause names a bone.
_ORGAN_RE: Final = _words("words", "organ")
_BONE_RE: Final = _words("words", "bone")
# "膝关节退行性变" is not spinal degeneration (REC-QCT).
_JOINT_RE: Final = _words("words", "joint")
_ABOUT_OTHERS_RE: Final = _words("words", "about_others")
# "腰椎MRI", "lumbar spine radiograph", "Hip X-ray": the study, not the place of a finding.
_MODALITY_AFTER_RE: Final = _words("words", "modality_after")
_NOT_VERTEBRAL_RE: Final = _words("words", "not_vertebral")  # FX-7
_ADVICE_RE: Final = _words("words", "advice")  # FX-6/FX-7
# "T1WI", "T2 FS", "T2高信号", "短T1长T2信号": MRI sequences, not the first thoracic vertebrae.
_SEQUENCE_AFTER_RE: Final = _words("levels", "sequence_after")
_SEQUENCE_BEFORE_RE: Final = _words("levels", "sequence_before")

# FX-3 Genant / compression grade.
_GRADE_NUMERAL: Final = {
    "0": 0,
    "零": 0,
    "1": 1,
    "i": 1,
    "一": 1,
    "2": 2,
    "ii": 2,
    "二": 2,
    "3": 3,
    "iii": 3,
    "三": 3,
}
_SEVERITY_GRADE: Final = {"轻度": 1, "中度": 2, "重度": 3, "mild": 1, "moderate": 2, "severe": 3}
_NUMERAL: Final = r"(?:[0-3]|iii|ii|i|[零一二三])"
_GRADE_RE: Final = re.compile(
    rf"genant[^,;。0-9]{{0,24}}?(?<![a-z])(?P<g1>{_NUMERAL})(?![0-9a-z])"
    rf"|(?<![0-9a-z.])(?P<g2>{_NUMERAL})\s?(?:度|级)\s?(?:楔形|压缩|变扁|骨折)"
    rf"|(?:压缩|楔形变?|变扁|骨折)[^,;。0-9]{{0,6}}?(?<![0-9a-z.])(?P<g3>{_NUMERAL})\s?(?:度|级)"
    r"|(?P<g4>轻度|中度|重度)[^,;。]{0,2}?(?:楔形|压缩|变扁)"
    r"|\b(?P<g5>mild|moderate|severe)(?:ly)?\s(?:[ctl]\d{1,2}\s)?(?:anterior\s|central\s)?"
    r"(?:wedge|wedging|compression|height\sloss|loss\sof\s(?:vertebral\s)?height|compressed|biconcav)"
    rf"|\bgrade\s?(?P<g6>[1-3]|iii|ii|i)(?![0-9a-z])"
)

# FX-3: a height loss stated as a number is graded by Genant 1993's bands (grade 1 ≈ 20-25 %, 2 ≈ 25-40 %,
# 3 > 40 %). The paper leaves the boundaries open: [20, 25) -> 1, [25, 40) -> 2, >= 40 -> 3 and under 20 ->
# 0 (no fracture) are a choice, CONSENSUS-RULES.md FX-3. A fraction (约1/3) is a percentage; of a range
# ("20-30%") the lower bound counts, the least the report states (a choice).
GENANT_HEIGHT_LOSS_BANDS: Final = ((40.0, 3), (25.0, 2), (20.0, 1))
_HEIGHT: Final = _CUES["height_loss"]
_FRACTION_WORDS: Final[dict[str, float]] = {k: float(v) for k, v in _HEIGHT["fraction_words"].items()}
_QUANTITY_RE: Final = re.compile(
    r"(?:(?P<lo>\d{1,3}(?:\.\d{1,2})?)\s?%?\s?(?:-|~|–|—|至|到)\s?)?(?P<pct>\d{1,3}(?:\.\d{1,2})?)\s?%"
    r"|(?<![0-9a-z/.])(?P<num>\d{1,2})\s?/\s?(?P<den>\d{1,2})(?![0-9/])"
    r"|(?P<cden>[二三四五六七八九十])分之(?P<cnum>[一二三四五六七八九])"
    + "".join(f"|(?<![a-z]){re.escape(w)}(?![a-z])" for w in sorted(_FRACTION_WORDS, key=len, reverse=True))
)
_HEIGHT_BEFORE_RE: Final = re.compile(alternation(_HEIGHT["before"]))
_HEIGHT_AFTER_RE: Final = re.compile(r"\s?(?:" + alternation(_HEIGHT["after"]) + ")")
_HEIGHT_REMAINING_RE: Final = re.compile(alternation(_HEIGHT["remaining"]))
_HEIGHT_PLACE_RE: Final = re.compile(alternation(_HEIGHT["place_before"]))
# How far the height-loss word may stand from its number ("高度减低约30%", "height loss of about 45%").
HEIGHT_CUE_GAP: Final = 16

# Sites (FX-1), from the cue file; posterior elements are site "other", never a vertebral body.
_POSTERIOR: Final = "posterior-element"
_SITE_RE, _SITE_NAMES = _combined([(alternation(e["phrases"]), e["site"]) for e in _CUES["site"]], "s")
_KNOWN_SITES: Final = frozenset(
    {
        SITE_VERTEBRA,
        SITE_HIP,
        SITE_DISTAL_RADIUS,
        SITE_PROXIMAL_HUMERUS,
        SITE_RIB,
        SITE_PELVIS,
        SITE_OTHER,
        _POSTERIOR,
    }
)
if not set(_SITE_NAMES.values()) <= _KNOWN_SITES:
    raise ValueError(
        f"cues/report-text.toml: unknown site in {sorted(set(_SITE_NAMES.values()) - _KNOWN_SITES)}"
    )

# Vertebral levels: T12, L1, 胸12, 腰1, 第1腰椎, lists and ranges (L1-3, T12-L2, 第1、2腰椎).
_LEVEL_PREFIX: Final = {"c": "C", "t": "T", "l": "L", "颈": "C", "胸": "T", "腰": "L"}
_SPINE_ORDER: Final = (
    tuple(f"C{i}" for i in range(1, 8))
    + tuple(f"T{i}" for i in range(1, 13))
    + tuple(f"L{i}" for i in range(1, 6))
)
_SPINE_INDEX: Final = {name: i for i, name in enumerate(_SPINE_ORDER)}
_NUM: Final = r"(?:\d{1,2}|[一二三四五六七八九十]{1,3})"
_LEVEL_START_RE: Final = re.compile(
    r"(?<![a-z0-9])(?P<lp>[ctl])\s?(?P<ln>\d{1,2})(?![0-9a-z])"
    rf"|(?P<cp>胸|腰|颈)\s?(?P<cn>{_NUM})(?![0-9])"
    rf"|第\s?(?P<dl>{_NUM}(?:\s?(?:-|~|–|—|至|到|、|,|及|和)\s?{_NUM}){{0,12}})\s?(?P<dp>胸|腰|颈)椎"
)
_LEVEL_CONT_RE: Final = re.compile(
    r"(?:\s?(?P<sep>-|~|–|—|至|到|、|,|及|和|与|&)\s?|\s(?P<wsep>to|and|through)\s)(?:第\s?)?"
    rf"(?:(?P<lp>[ctl])\s?(?P<ln>\d{{1,2}})|(?P<cp>胸|腰|颈)\s?(?P<cn>{_NUM})|(?P<bn>{_NUM}))"
    r"(?:\s?(?P<tp>胸|腰|颈)椎)?(?![0-9a-z])(?!\s?(?:度|级|%|mm|cm|°|岁|个|处|次|天|年|月|周))"
)
_RANGE_SEPARATORS: Final = frozenset({"-", "~", "–", "—", "至", "到", "to", "through"})
_DI_LIST_ITEM_RE: Final = re.compile(rf"(?P<n>{_NUM})|(?P<sep>-|~|–|—|至|到)")
# Sentence and clause delimiters (after NFKC: ，→, ；→; ：→: ！→! ？→?).
# "伴" / "with" also open a clause, so "L1椎体压缩骨折伴T12转移瘤" keeps the T12 lesion apart; not in an
# ICD-10 M80 title ("骨质疏松伴病理性骨折", "osteoporosis with pathological fracture"), one osteoporotic
# fracture (FX-1/FX-2).
_DELIMITER_RE: Final = re.compile(
    r"[。;!?\n\r.,:]|(?<=[\u2e80-\u9fff])[ \t\u3000]+(?=[\u2e80-\u9fff])"
    r"|(?<![不未])(?<!骨质疏松)(?<!骨质疏松症)伴有?|(?<!osteoporosis\s)\bwith\b"
)
_SENTENCE_ABBREVIATIONS: Final = frozenset({"e.g", "i.e", "vs", "approx", "cf", "fig"})
_LEVEL_BEFORE_COMMA_RE: Final = re.compile(r"(?<![a-z0-9])(?:[ctl]|胸|腰|颈)\s?\d{1,2}\s?$")
_LEVEL_AFTER_COMMA_RE: Final = re.compile(
    r"\s?(?:(?:[ctl]|胸|腰|颈)\s?\d|\d{1,2}(?![0-9])(?!\s?(?:度|级|%|mm|cm|°)))"
)

_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


# --------------------------------------------------------------------------------------------------
# Internal structures


@dataclass(eq=False)
class _Hit:
    spec: _HitSpec
    start: int
    end: int
    negated: bool = False
    uncertain: bool = False


@dataclass(eq=False)
class _Clause:
    sentence: int
    start: int
    end: int
    question: bool  # ended by (or began after) a question mark: FX-6 uncertain
    hits: list[_Hit] = field(default_factory=list)
    grades: list[int] = field(default_factory=list)  # Genant / numbered grades
    bare_grades: list[int] = field(default_factory=list)  # "grade 2" with no fracture word in the clause
    height_grades: list[int] = field(default_factory=list)  # FX-3 from a stated height loss (30%, 1/3)
    severity_grades: list[int] = field(default_factory=list)  # 轻度/mild, 中度/moderate, 重度/severe
    sites: list[str] = field(default_factory=list)  # in order of appearance, vertebra included for levels
    levels: tuple[str, ...] = ()
    about_others: bool = False

    @property
    def vertebral_context(self) -> bool:
        return SITE_VERTEBRA in self.sites

    @property
    def triggers(self) -> list[_Hit]:
        """Positive fracture statements: fracture words, ECF present, deformity at a vertebra."""
        found: list[_Hit] = []
        for h in self.hits:
            if h.negated:
                continue
            fracture_word = h.spec.kind == _FRACTURE or (h.spec.kind == _ECF and h.spec.value == "present")
            vertebral_deformity = h.spec.kind == _DEFORMITY and (h.spec.vertebral or self.vertebral_context)
            if fracture_word or vertebral_deformity:
                found.append(h)
        return found

    @property
    def denies_fracture(self) -> bool:
        # FX-8: "病理性骨折依据不足" denies the pathology, not the fracture.
        return any(
            h.spec.kind == _FRACTURE and h.negated and h.spec.value != "pathological" for h in self.hits
        )


@dataclass(eq=False)
class _Draft:
    site: str
    levels: list[str]
    sentence: int
    own: list[_Clause]
    attached: list[_Clause] = field(default_factory=list)
    quote_start: int = 0
    quote_end: int = 0
    last_trigger: _Clause | None = None

    def add_levels(self, levels: Iterable[str]) -> None:
        for level in levels:
            if level not in self.levels:
                self.levels.append(level)


# --------------------------------------------------------------------------------------------------
# Public entry point


@read_once_per_text  # the same text is read once per process (bounded LRU; see reading_cache.py)
def read_report(text: str) -> ReportReading:
    """Read one report conclusion; pure, linear in the (bounded) text length."""
    truncated = len(text) > MAX_REPORT_CHARS
    original = text[:MAX_REPORT_CHARS]
    normalised, owners = _normalise(original)
    if len(normalised) > MAX_NORMALISED_CHARS:
        normalised = normalised[:MAX_NORMALISED_CHARS]
        truncated = True
    low = normalised.translate(_ASCII_LOWER)

    clauses = _split_clauses(low)
    for clause in clauses:
        _read_clause(low, clause)

    drafts, free = _build_drafts(clauses)
    offsets = _OffsetMap(original, owners)
    report = _ReportContext(clauses, free)
    resolved = (_resolve(d, report, low, offsets) for d in drafts[:MAX_FRACTURES])
    fractures = _merge_repeats([m for m in resolved if m is not None])
    findings = _findings(clauses, low, offsets)
    if len(drafts) > MAX_FRACTURES or len(findings) > MAX_FINDINGS:
        truncated = True
    return ReportReading(
        fractures=tuple(fractures[:MAX_FRACTURES]),
        findings=tuple(findings[:MAX_FINDINGS]),
        truncated=truncated,
    )


@read_once_per_text  # a Condition's text is the same on every chart open (bounded LRU; reading_cache.py)
def stated_trauma(text: str) -> str:
    """FX-1 / FX-5: the mechanism a text states, read as in reports, whether or not it names a fracture
    (a Condition's text "右股骨颈骨折（家中平地跌倒）", or a note "家中平地跌倒"): "high-energy" | "minor" |
    "unspecified" | "none" | "not-stated"."""
    normalised, _ = _normalise(text[:MAX_REPORT_CHARS])
    low = normalised[:MAX_NORMALISED_CHARS].translate(_ASCII_LOWER)
    clauses = _split_clauses(low)
    for clause in clauses:
        _read_clause(low, clause)
    return _trauma(clauses)


# --------------------------------------------------------------------------------------------------
# Normalisation with a map back to the input


def _normalise(text: str) -> tuple[str, list[int] | None]:
    """NFKC character by character, so each output character knows the input character it came from."""
    if text.isascii() or unicodedata.is_normalized("NFKC", text):
        return text, None
    parts = [ch if ch.isascii() else _nfkc(ch) for ch in text]
    normalised = "".join(parts)
    if len(normalised) == len(text):
        return normalised, None  # every character became one character: offsets are unchanged
    owners: list[int] = []
    for i, piece in enumerate(parts):
        owners.extend([i] * len(piece))
    return normalised, owners


@functools.lru_cache(maxsize=4096)
def _nfkc(ch: str) -> str:
    return unicodedata.normalize("NFKC", ch)


class _OffsetMap:
    def __init__(self, original: str, owners: list[int] | None) -> None:
        self.original = original
        self.owners = owners

    def span(self, start: int, end: int) -> tuple[str, int, int]:
        if self.owners is None:
            return self.original[start:end], start, end
        if end <= start:
            at = self.owners[start] if start < len(self.owners) else len(self.original)
            return "", at, at
        s = self.owners[start]
        e = self.owners[end - 1] + 1
        return self.original[s:e], s, e


# --------------------------------------------------------------------------------------------------
# Sentences and clauses


def _split_clauses(low: str) -> list[_Clause]:
    clauses: list[_Clause] = []
    sentence = 0
    start = 0
    pending_question = False

    def close(end: int, question: bool) -> None:
        nonlocal pending_question
        if low[start:end].strip():
            clauses.append(_Clause(sentence, start, end, question or pending_question))
            pending_question = False

    for m in _DELIMITER_RE.finditer(low):
        i = m.start()
        ch = low[i]
        nxt = low[i + 1] if i + 1 < len(low) else ""
        if ch == "." and not _is_sentence_dot(low, i, nxt):
            continue
        if ch == "?" and nxt.isascii() and nxt.isalnum():
            continue  # "?fracture": an in-clause cue
        if (
            ch == ","
            and _LEVEL_BEFORE_COMMA_RE.search(low, max(0, i - 6), i)
            and _LEVEL_AFTER_COMMA_RE.match(low, i + 1, min(len(low), i + 8))
        ):
            continue  # "L1, L2 and L3"
        if ch == "?":
            if low[start:i].strip():
                close(i, True)
            else:
                pending_question = True
        else:
            close(i, False)
        start = m.end()
        if ch in "。;!?\n\r.":
            sentence += 1
    close(len(low), False)
    return clauses


def _is_sentence_dot(low: str, i: int, nxt: str) -> bool:
    prev = low[i - 1] if i > 0 else ""
    if prev.isdigit() and nxt.isdigit():
        return False  # decimal number
    if nxt and nxt.isascii() and not nxt.isspace():
        return False  # "e.g", "1.L1"
    token = low[max(0, i - 7) : i].split()
    return not (token and token[-1] in _SENTENCE_ABBREVIATIONS)


# --------------------------------------------------------------------------------------------------
# One clause: keywords, cues, grades, sites, levels


def _read_clause(low: str, clause: _Clause) -> None:
    s, e = clause.start, clause.end
    clause.hits = [
        _Hit(_HIT_SPECS[m.lastgroup or ""], m.start(), m.end())
        for m in _HIT_RE.finditer(low, s, e)
        if _HIT_SPECS[m.lastgroup or ""].kind != _IGNORED
    ]
    kinds = {h.spec.kind for h in clause.hits}
    if _OEDEMA in kinds and _NOT_VERTEBRAL_RE.search(low, s, e):
        # FX-7: high signal of a disc, soft tissue, ligament…: not marrow oedema.
        clause.hits = [h for h in clause.hits if h.spec.value != _SIGNAL]
    if kinds:
        _apply_cues(low, clause)
    if not kinds.isdisjoint(_ADVISED_KINDS):
        _apply_advice(low, clause)
    clause.levels = _read_levels(low, s, e)
    clause.sites = _read_sites(low, s, e, bool(clause.levels))
    fracture_group = not kinds.isdisjoint(_FRACTURE_GROUP)
    _read_grades(low, clause, fracture_group)
    clause.about_others = _ABOUT_OTHERS_RE.search(low, s, e) is not None
    if (
        clause.levels
        and not fracture_group
        and any(g >= 1 for g in clause.grades + clause.height_grades + clause.severity_grades)
    ):
        # FX-3: "L1椎体Genant 2度" states a graded vertebra even with no fracture word, and grade >= 1
        # is judged a fracture; it stands in as a vertebral deformity statement (FX-4 then decides).
        clause.hits.append(_Hit(_GRADED_VERTEBRA, s, e))


def _apply_cues(low: str, clause: _Clause) -> None:
    """FX-6: mark each keyword negated or uncertain from the cues around it in its clause."""
    pre: dict[str, list[tuple[int, int]]] = {_NEG: [], _UNC: []}
    post: dict[str, list[tuple[int, int]]] = {_NEG: [], _UNC: []}
    for m in _CUE_RE.finditer(low, clause.start, clause.end):
        kind, direction = _CUE_SPECS[m.lastgroup or ""]
        if kind == _PSEUDO:
            continue  # matched so that the hedge or negation inside it is not ("of indeterminate age")
        if direction in (_PRE, _BOTH):
            pre[kind].append((m.start(), m.end()))
        if direction in (_POST, _BOTH):
            post[kind].append((m.start(), m.end()))
    hits = clause.hits
    for index, hit in enumerate(hits):
        if hit.spec.immune:
            continue
        hit.negated = _cued(low, hits, index, pre[_NEG], post[_NEG])
        hit.uncertain = clause.question or _cued(low, hits, index, pre[_UNC], post[_UNC])


def _apply_advice(low: str, clause: _Clause) -> None:
    """FX-6/FX-7: after advice (建议…, recommend…) in its clause, a fracture is a question and its age unsaid.

    "建议CT除外骨折" doubts a fracture; "建议MRI检查以明确是否为新鲜骨折" does not make one new.
    """
    advice = _ADVICE_RE.search(low, clause.start, clause.end)
    if advice is None:
        return
    kept: list[_Hit] = []
    for h in clause.hits:
        if h.start >= advice.start():
            if h.spec.kind in (_ACUITY, _OEDEMA):
                continue
            if h.spec.kind in _FRACTURE_GROUP:
                h.uncertain = True
        kept.append(h)
    clause.hits = kept


def _cued(
    low: str,
    hits: Sequence[_Hit],
    index: int,
    pre: Sequence[tuple[int, int]],
    post: Sequence[tuple[int, int]],
) -> bool:
    hit = hits[index]
    # A cue inside the keyword: "高度未见减低".
    i = bisect_left(pre, (hit.start, -1))
    if i < len(pre) and pre[i][1] <= hit.end and pre[i][0] < hit.end:
        return True
    j = bisect_left(post, (hit.start, -1))
    if j < len(post) and post[j][1] <= hit.end and post[j][0] < hit.end:
        return True
    # Nearest cue before the keyword.
    k = bisect_right(pre, (hit.start, hit.start)) - 1
    while k >= 0 and pre[k][1] > hit.start:
        k -= 1
    if k >= 0:
        cue_start, cue_end = pre[k]
        if hit.start - cue_end <= PRE_CUE_WINDOW and not _blocked_before(low, hits, index, cue_end):
            return True
    # Nearest cue after the keyword.
    k = bisect_left(post, (hit.end, -1))
    if k < len(post):
        cue_start, _ = post[k]
        if cue_start - hit.end <= POST_CUE_WINDOW and not _blocked_after(low, hits, index, cue_start):
            return True
    return False


def _blocked_before(low: str, hits: Sequence[_Hit], index: int, cue_end: int) -> bool:
    target = hits[index]
    group = _group(target)
    # A breaker that ends between the cue and the keyword; it may start at the cue ("无外伤史").
    for k in range(index - 1, max(-1, index - 33), -1):
        h = hits[k]
        if h.end <= cue_end:
            break
        if h.spec.breaker and _group(h) != group and h.end <= target.start:
            return _CONJUNCTION_RE.search(low, h.end, target.start) is None
    return False


def _blocked_after(low: str, hits: Sequence[_Hit], index: int, cue_start: int) -> bool:
    target = hits[index]
    group = _group(target)
    for k in range(index + 1, min(len(hits), index + 33)):
        h = hits[k]
        if h.start >= cue_start:
            break
        if h.spec.breaker and _group(h) != group and h.start >= target.end:
            return _CONJUNCTION_RE.search(low, target.end, h.start) is None
    return False


def _group(hit: _Hit) -> str:
    return "fracture" if hit.spec.kind in _FRACTURE_GROUP else hit.spec.kind


def _read_grades(low: str, clause: _Clause, fracture_group: bool) -> None:
    """FX-3: Genant or compression grades stated in the clause; a bare "grade N" is kept apart."""
    grades: list[int] = []
    bare: list[int] = []
    listhesis: bool | None = None
    for m in _GRADE_RE.finditer(low, clause.start, clause.end):
        for name in ("g1", "g2", "g3"):
            value = m.group(name)
            if value is not None:
                grades.append(_GRADE_NUMERAL[value])
        for name in ("g4", "g5"):
            value = m.group(name)
            if value is not None:
                clause.severity_grades.append(_SEVERITY_GRADE[value])
        value = m.group("g6")
        if value is not None:
            if listhesis is None:
                listhesis = _LISTHESIS_RE.search(low, clause.start, clause.end) is not None
            if not listhesis:  # Meyerding grades of spondylolisthesis are not Genant grades
                bare.append(_GRADE_NUMERAL[value])
    if bare and fracture_group:
        grades, bare = grades + bare, []
    clause.grades, clause.bare_grades = grades, bare
    if fracture_group:  # a height loss is stated with a deformity word
        clause.height_grades = _height_loss_grades(low, clause.start, clause.end)


def _height_loss_grades(low: str, start: int, end: int) -> list[int]:
    """FX-3: grades of the height losses stated as numbers next to a height-loss word in the clause."""
    grades: list[int] = []
    for q in _QUANTITY_RE.finditer(low, start, end):
        percent = _percent(q)
        if percent is None or _HEIGHT_PLACE_RE.search(low, max(start, q.start() - 12), q.start()):
            continue
        ends = [m.end() for m in _HEIGHT_BEFORE_RE.finditer(low, max(start, q.start() - 40), q.start())]
        near_before = bool(ends) and q.start() - ends[-1] <= HEIGHT_CUE_GAP
        if not near_before and _HEIGHT_AFTER_RE.match(low, q.end(), end) is None:
            continue
        if _HEIGHT_REMAINING_RE.search(low, max(start, q.start() - 16), q.start()):
            percent = 100.0 - percent  # "减低至原来的2/3": what remains
        grades.append(_grade_of_height_loss(percent))
    return grades


def _percent(q: re.Match[str]) -> float | None:
    if q.group("pct") is not None:
        value = float(q.group("lo") or q.group("pct"))
    elif q.group("num") is not None:
        den = int(q.group("den"))
        value = 100.0 * int(q.group("num")) / den if den else 101.0
    elif q.group("cden") is not None:
        value = 100.0 * CN_NUMBERS[q.group("cnum")] / CN_NUMBERS[q.group("cden")]
    else:
        value = _FRACTION_WORDS[q.group(0)]
    return value if 0.0 < value <= 100.0 else None


def _grade_of_height_loss(percent: float) -> int:
    for lower, grade in GENANT_HEIGHT_LOSS_BANDS:
        if percent >= lower:
            return grade
    return 0


def _read_sites(low: str, start: int, end: int, has_levels: bool) -> list[str]:
    sites: list[str] = []
    posterior = False
    for m in _SITE_RE.finditer(low, start, end):
        site = _SITE_NAMES[m.lastgroup or ""]
        if site == _POSTERIOR:
            posterior = True
            site = SITE_OTHER
        elif _MODALITY_AFTER_RE.match(low, m.end(), end):
            continue  # the study's name, not the finding's place
        if site not in sites:
            sites.append(site)
    if has_levels and SITE_VERTEBRA not in sites:
        sites.insert(0, SITE_VERTEBRA)
    if posterior and SITE_VERTEBRA in sites:
        sites.remove(SITE_VERTEBRA)
    return sites


def _read_levels(low: str, start: int, end: int) -> tuple[str, ...]:
    found: set[str] = set()
    pos = start
    while pos < end:
        m = _LEVEL_START_RE.search(low, pos, end)
        if m is None:
            break
        pos = m.end()
        if m.group("dl") is not None:
            prefix = _LEVEL_PREFIX[m.group("dp")]
            previous = _read_di_list(m.group("dl"), prefix, found)
        else:
            raw_prefix = m.group("lp") or m.group("cp")
            prefix = _LEVEL_PREFIX[raw_prefix]
            number = _number(m.group("ln") or m.group("cn"))
            if raw_prefix == "t" and number in (1, 2) and _is_mri_sequence(low, m.start(), m.end(), end):
                continue
            previous = _level(prefix, number)
            if previous is not None:
                found.add(previous)
        # Lists and ranges after the first level: "L1-3", "T12-L2", "L1、2", "T12 to L2".
        for _ in range(24):
            c = _LEVEL_CONT_RE.match(low, pos, end)
            if c is None:
                break
            pos = c.end()
            separator = c.group("sep") or c.group("wsep")
            raw = c.group("lp") or c.group("cp") or c.group("tp")
            next_prefix = _LEVEL_PREFIX[raw] if raw else prefix
            number = _number(c.group("ln") or c.group("cn") or c.group("bn"))
            current = _level(next_prefix, number)
            if current is None:
                break
            if separator in _RANGE_SEPARATORS and previous is not None:
                if raw is None and _SPINE_INDEX[current] < _SPINE_INDEX[previous]:
                    break  # "T12-2": not a range we can read
                found.update(_expand(previous, current))
            else:
                found.add(current)
            prefix, previous = next_prefix, current
    return tuple(sorted(found, key=_SPINE_INDEX.__getitem__))


def _read_di_list(inner: str, prefix: str, found: set[str]) -> str | None:
    """第1、2腰椎 / 第11-12胸椎."""
    previous: str | None = None
    in_range = False
    for item in _DI_LIST_ITEM_RE.finditer(inner):
        if item.group("sep") is not None:
            in_range = True
            continue
        current = _level(prefix, _number(item.group("n")))
        if current is None:
            continue
        if in_range and previous is not None:
            found.update(_expand(previous, current))
        else:
            found.add(current)
        previous, in_range = current, False
    return previous


def _is_mri_sequence(low: str, start: int, end: int, clause_end: int) -> bool:
    if _SEQUENCE_BEFORE_RE.search(low, max(0, start - 8), start):
        return True
    return _SEQUENCE_AFTER_RE.match(low, end, clause_end) is not None


def _number(raw: str | None) -> int | None:
    if raw is None:
        return None
    if raw.isdigit():
        return int(raw)
    return CN_NUMBERS.get(raw)


def _level(prefix: str, number: int | None) -> str | None:
    if number is None:
        return None
    name = f"{prefix}{number}"
    return name if name in _SPINE_INDEX else None


def _expand(a: str, b: str) -> list[str]:
    i, j = sorted((_SPINE_INDEX[a], _SPINE_INDEX[b]))
    return list(_SPINE_ORDER[i : j + 1])


# --------------------------------------------------------------------------------------------------
# Mentions: one per fracture statement, merged with the clauses that continue it


def _build_drafts(clauses: Sequence[_Clause]) -> tuple[list[_Draft], list[_Clause]]:
    drafts: list[_Draft] = []
    free: list[_Clause] = []
    by_sentence: dict[int, list[_Clause]] = {}
    for clause in clauses:
        by_sentence.setdefault(clause.sentence, []).append(clause)

    for sentence, members in by_sentence.items():
        in_sentence: list[_Draft] = []
        last_by_site: dict[str, _Draft] = {}
        attributes: list[_Clause] = []
        context: _Clause | None = None
        for clause in members:
            if not clause.triggers:
                attributes.append(clause)
            elif len(drafts) <= MAX_FRACTURES:
                _place_trigger(clause, sentence, context, in_sentence, last_by_site, drafts)
            if clause.sites:
                context = clause
        starts = [d.quote_start for d in in_sentence]
        for clause in attributes:
            target = _attach_target(clause, in_sentence, starts)
            if target is None:
                free.append(clause)
            else:
                target.attached.append(clause)
                if clause.levels and not target.levels and target.site == SITE_VERTEBRA:
                    target.add_levels(clause.levels)
    return drafts, free


def _place_trigger(
    clause: _Clause,
    sentence: int,
    context: _Clause | None,
    in_sentence: list[_Draft],
    last_by_site: dict[str, _Draft],
    drafts: list[_Draft],
) -> None:
    sites = list(clause.sites)
    levels = clause.levels
    quote_start = clause.start
    if not sites:
        if in_sentence:
            _merge(in_sentence[-1], clause, same_sentence=True)
            return
        if context is not None:
            sites, levels = list(context.sites), context.levels
            quote_start = context.start  # "右股骨颈可见透亮线，考虑骨折"
        else:
            default = SITE_VERTEBRA if any(h.spec.vertebral for h in clause.triggers) else None
            if drafts and (default is None or drafts[-1].site == default):
                # "L1 compression fracture. Possibly a pathological fracture.": the same fracture.
                _merge(drafts[-1], clause, same_sentence=False)
                return
            sites = [default or SITE_OTHER]
    for site in sites:
        site_levels = levels if site == SITE_VERTEBRA else ()
        last = last_by_site.get(site)
        if last is not None and (not site_levels or not last.levels or set(site_levels) <= set(last.levels)):
            _merge(last, clause, same_sentence=True)
            last.add_levels(site_levels)
            continue
        draft = _Draft(
            site=site,
            levels=list(site_levels),
            sentence=sentence,
            own=[clause],
            quote_start=quote_start,
            quote_end=clause.end,
            last_trigger=clause,
        )
        in_sentence.append(draft)
        last_by_site[site] = draft
        drafts.append(draft)


def _merge(draft: _Draft, clause: _Clause, *, same_sentence: bool) -> None:
    draft.own.append(clause)
    if same_sentence:
        draft.quote_end = max(draft.quote_end, clause.end)
        draft.last_trigger = clause


def _attach_target(clause: _Clause, in_sentence: Sequence[_Draft], starts: Sequence[int]) -> _Draft | None:
    """The mention in the same sentence an attribute clause ("Genant 2度", "无骨髓水肿") speaks about."""
    # Drafts are in text order; look at a bounded number on each side.
    split = bisect_right(starts, clause.start)
    for d in reversed(in_sentence[max(0, split - 16) : split]):
        if _compatible(d, clause):
            return d
    for d in in_sentence[split : split + 16]:
        if _compatible(d, clause):
            return d
    return None


def _compatible(draft: _Draft, clause: _Clause) -> bool:
    if clause.sites and draft.site not in clause.sites:
        return False
    return not (clause.levels and draft.levels and not set(clause.levels) & set(draft.levels))


# --------------------------------------------------------------------------------------------------
# Resolving a mention's fields


class _ReportContext:
    """What a mention may borrow from the rest of the report, computed once (keeps resolving linear)."""

    def __init__(self, clauses: Sequence[_Clause], free: Sequence[_Clause]) -> None:
        self.by_level: dict[str, list[_Clause]] = {}
        self.unlevelled: list[_Clause] = []
        for clause in free:
            if not set(clause.sites) <= {SITE_VERTEBRA}:
                continue
            if clause.levels:
                for level in clause.levels:
                    bucket = self.by_level.setdefault(level, [])
                    if len(bucket) < MAX_CLAUSES_PER_LEVEL:
                        bucket.append(clause)
            elif len(self.unlevelled) < MAX_FREE_CLAUSES:
                self.unlevelled.append(clause)
        by_sentence: dict[int, list[_Clause]] = {}
        for clause in clauses:
            by_sentence.setdefault(clause.sentence, []).append(clause)
        self.sentence_trauma = {n: _trauma(members) for n, members in by_sentence.items()}
        self.report_trauma = _trauma(clauses)

    def at_levels(self, levels: Iterable[str]) -> list[_Clause]:
        found: list[_Clause] = []
        seen: set[int] = set()
        for level in levels:
            for clause in self.by_level.get(level, ()):
                if id(clause) not in seen:
                    seen.add(id(clause))
                    found.append(clause)
        return found


def _resolve(draft: _Draft, report: _ReportContext, low: str, offsets: _OffsetMap) -> FractureMention | None:
    vertebra = draft.site == SITE_VERTEBRA
    near = draft.own + draft.attached
    elsewhere = report.at_levels(draft.levels) if vertebra else []

    fracture_words = [h for c in draft.own for h in c.triggers if h.spec.kind in (_FRACTURE, _ECF)]
    if not fracture_words and (_shaped(near) or (vertebra and _shaped(elsewhere))):
        # FX-1 criterion 2 / FX-3: a deformity said to be physiological or developmental ("mild wedging,
        # likely physiologic", 许莫氏结节) is no imaging proof of a fracture: no mention at all.
        return None

    genant: int | None = None
    ecf = "not-stated"
    if vertebra:
        genant = _max_grade(near, with_bare=True)
        if genant is None:
            genant = _max_grade(elsewhere)
        ecf = _ecf(near)
        if ecf == "not-stated":
            ecf = _ecf(elsewhere)

    acuity = _acuity(near)
    if acuity == "unknown":
        acuity = _acuity(elsewhere)
    if acuity == "unknown" and vertebra:
        acuity = _acuity(report.unlevelled, signal_needs_vertebra=True)

    own_ids = {id(c) for c in draft.own}
    pathology = (
        _pathological(near, low, own_ids)
        or _pathological(elsewhere, low, own_ids)
        or _pathological(report.unlevelled, low, own_ids)
    )
    pathological = pathology is not None

    trauma = report.sentence_trauma.get(draft.sentence, "not-stated")
    if trauma == "not-stated" and acuity != "old":
        # A mechanism stated elsewhere in the report (the history line) is this fracture's, unless the
        # fracture is old: "车祸伤后：肋骨骨折。L1椎体陈旧性压缩骨折" — the old one predates the crash.
        trauma = report.report_trauma

    deformity_words = [h for c in draft.own for h in c.triggers if h.spec.kind == _DEFORMITY]
    stated = fracture_words or deformity_words
    certain = any(not h.uncertain for h in stated)

    deformity_only = False
    if vertebra and not fracture_words:
        denied = any(c.denies_fracture and not c.about_others for c in near)
        graded = genant is not None and genant >= 1
        # FX-4 as CONSENSUS-RULES.md reads it: ECF stated absent makes a deformity at grade 1 only;
        # grade 2-3 stays a fracture under FX-3 ("Genant 1度及以上均应判断为骨折").
        ecf_rules_out = ecf == "absent" and genant == 1
        deformity_only = not (graded and not ecf_rules_out and not denied)

    # FX-8: the quote keeps the words that make the fracture possibly pathological ("转移瘤不除外") when
    # they stand in a clause near the fracture, so that the card shows why it asks for CT/MRI.
    beside = pathology if pathology is not None and any(c is pathology for c in near) else None
    quote, start, end = _quote(draft, low, offsets, beside)
    return FractureMention(
        site=draft.site,
        vertebrae=tuple(sorted(draft.levels, key=_SPINE_INDEX.__getitem__)) if vertebra else (),
        certain=certain,
        genant_grade=genant,
        ecf=ecf,
        deformity_only=deformity_only,
        trauma=trauma,
        pathological=pathological,
        acuity=acuity,
        quote=quote,
        start=start,
        end=end,
    )


def _merge_repeats(mentions: Sequence[FractureMention]) -> list[FractureMention]:
    """Findings and impression usually state the same vertebral fracture twice: one mention per levels.

    Only vertebra mentions with the same (non-empty) levels are merged, so counts of vertebral
    fractures (FX-4 "multiple") are not inflated; the quote is the strongest statement.
    """
    merged: list[FractureMention] = []
    index: dict[tuple[str, ...], int] = {}
    for mention in mentions:
        key = mention.vertebrae
        if mention.site != SITE_VERTEBRA or not key or key not in index:
            if mention.site == SITE_VERTEBRA and key:
                index[key] = len(merged)
            merged.append(mention)
            continue
        first = merged[index[key]]

        def strength(m: FractureMention) -> tuple[bool, bool]:
            return (not m.deformity_only, m.certain)

        strongest = mention if strength(mention) > strength(first) else first
        grades = [g for g in (first.genant_grade, mention.genant_grade) if g is not None]
        acuities = {first.acuity, mention.acuity} - {"unknown"}
        merged[index[key]] = replace(
            strongest,
            certain=first.certain or mention.certain,
            genant_grade=max(grades) if grades else None,
            ecf=max(first.ecf, mention.ecf, key=_ECF_RANK.__getitem__),
            deformity_only=first.deformity_only and mention.deformity_only,
            trauma=max(first.trauma, mention.trauma, key=lambda t: _TRAUMA_RANK.get(t, 0)),
            pathological=first.pathological or mention.pathological,
            acuity=acuities.pop() if len(acuities) == 1 else "unknown",
        )
    return merged


def _max_grade(clauses: Sequence[_Clause], *, with_bare: bool = False) -> int | None:
    """FX-3: a stated grade wins over a stated height loss, which wins over a severity word (mild…)."""
    grades = [g for c in clauses for g in c.grades]
    if with_bare:
        grades += [g for c in clauses for g in c.bare_grades]
    if not grades:
        grades = [g for c in clauses for g in c.height_grades]
    if not grades:
        grades = [g for c in clauses for g in c.severity_grades]
    return max(grades) if grades else None


def _ecf(clauses: Iterable[_Clause]) -> str:
    """FX-4: present wins over absent; absent is a negated ECF or an intact endplate/cortex."""
    absent = False
    for c in clauses:
        for h in c.hits:
            if h.spec.kind != _ECF:
                continue
            if h.spec.value == "present" and not h.negated:
                return "present"
            absent = True
    return "absent" if absent else "not-stated"


def _shaped(clauses: Iterable[_Clause]) -> bool:
    return any(h.spec.kind == _SHAPE and not h.negated for c in clauses for h in c.hits)


def _acuity(clauses: Iterable[_Clause], *, signal_needs_vertebra: bool = False) -> str:
    """FX-7: marrow oedema first, then the words new/old.

    Fat-suppressed high signal stated away from any fracture (report-wide) counts only when its clause
    names a vertebra ("诸椎体压脂未见高信号"), not a bare "STIR高信号".
    """
    oedema_present = oedema_absent = new = old = False
    for c in clauses:
        for h in c.hits:
            if h.spec.kind == _OEDEMA:
                if signal_needs_vertebra and h.spec.value == _SIGNAL and not c.vertebral_context:
                    continue
                if h.negated:
                    oedema_absent = True
                else:
                    oedema_present = True
            elif h.spec.kind == _ACUITY:
                if h.spec.value == "new":
                    if h.negated:
                        old = True  # "not acute"
                    else:
                        new = True
                elif not h.negated:
                    old = True
    if oedema_present:
        return "new"
    if oedema_absent:
        return "old"
    if new != old:
        return "new" if new else "old"
    return "unknown"


def _pathological(clauses: Iterable[_Clause], low: str, own_ids: set[int]) -> _Clause | None:
    """FX-8: the clause naming a lesion at the fracture (not in another organ, not negated), if any."""
    for c in clauses:
        for h in c.hits:
            if h.spec.kind == _FRACTURE and h.spec.value == "pathological" and not h.negated:
                return c
        lesions = [h for h in c.hits if h.spec.kind == _LESION and not h.negated]
        if not lesions:
            continue
        if (
            id(c) not in own_ids
            and _ORGAN_RE.search(low, c.start, c.end)
            and not (c.levels or _BONE_RE.search(low, c.start, c.end))
        ):
            continue
        return c
    return None


def _trauma(clauses: Iterable[_Clause]) -> str:
    """FX-5: the most energetic mechanism stated; a denied trauma is "none"."""
    best = 0
    for c in clauses:
        for h in c.hits:
            if h.spec.kind != _TRAUMA:
                continue
            value = h.spec.value
            if h.spec.immune or h.negated:
                value = "none"
            elif value == "generic":
                value = "unspecified"
            best = max(best, _TRAUMA_RANK[value])
    for name, rank in _TRAUMA_RANK.items():
        if rank == best:
            return name
    return "not-stated"


# --------------------------------------------------------------------------------------------------
# Quotes and non-fracture findings


def _trimmed(low: str, start: int, end: int) -> tuple[int, int]:
    while start < end and low[start].isspace():
        start += 1
    while end > start and low[end - 1].isspace():
        end -= 1
    return start, end


def _bounded(low: str, start: int, end: int, focus: int) -> tuple[int, int]:
    start, end = _trimmed(low, start, end)
    if end - start <= MAX_QUOTE_CHARS:
        return start, end
    half = MAX_QUOTE_CHARS // 2
    s = max(start, focus - half)
    return _trimmed(low, s, min(end, s + MAX_QUOTE_CHARS))


def _quote(
    draft: _Draft, low: str, offsets: _OffsetMap, beside: _Clause | None = None
) -> tuple[str, int, int]:
    start, end = _trimmed(low, draft.quote_start, draft.quote_end)
    if beside is not None:
        wider = _trimmed(low, min(start, beside.start), max(end, beside.end))
        if wider[1] - wider[0] <= MAX_QUOTE_CHARS:
            start, end = wider
    if end - start > MAX_QUOTE_CHARS:
        clause = draft.last_trigger or draft.own[0]
        triggers = clause.triggers
        focus = triggers[0].start if triggers else clause.start
        start, end = _bounded(low, clause.start, clause.end, focus)
    return offsets.span(start, end)


def _findings(clauses: Sequence[_Clause], low: str, offsets: _OffsetMap) -> list[TextFinding]:
    findings: list[TextFinding] = []
    for clause in clauses:
        seen: set[str] = set()
        for h in clause.hits:
            kind = h.spec.value
            if h.spec.kind != _FINDING or h.negated or kind in seen:
                continue
            if kind == FINDING_LINEAR_UPTAKE_BAND and not _BAND_SHAPE_RE.search(
                low, clause.start, clause.end
            ):
                continue  # DX-8 needs a line or band, not any uptake
            if (
                kind == FINDING_SPINE_DEGENERATION
                and SITE_VERTEBRA not in clause.sites
                and (clause.sites or _JOINT_RE.search(low, clause.start, clause.end))
            ):
                continue  # "膝关节退行性变": not the spine
            seen.add(kind)
            start, end = _bounded(low, clause.start, clause.end, h.start)
            quote, s, e = offsets.span(start, end)
            findings.append(TextFinding(kind=kind, quote=quote, start=s, end=e))
            if len(findings) > MAX_FINDINGS:
                return findings
    return findings
