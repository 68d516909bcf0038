"""BMD values read from report text (DXA-1…DXA-4, QCT-1…QCT-5, POP-3, DX-4), by rule: sentence → values.

Each expected item is "modality measure region value [L1] [left|right]"; "not-measured region [side] [dxa2]"
for a site the text says was not measured; "unreadable" for a value present but unreadable.
"""

from __future__ import annotations

import pytest

from cds_service.facts.bmd_text import BmdTextReading, read_bmd_text


def summary(reading: BmdTextReading) -> list[str]:
    items = []
    for v in reading.values:
        parts = [v.modality.value, v.measure.value, v.region.value, f"{v.number:g}"]
        parts += [p for p in (v.vertebra, v.laterality) if p]
        items.append(" ".join(parts))
    for s in reading.unmeasured:
        parts = ["not-measured", s.region.value] + [p for p in (s.laterality,) if p]
        items.append(" ".join(parts + (["dxa2"] if s.dxa2_reason else [])))
    items += ["unreadable"] * len(reading.unreadable)
    return items


def case(rule: str, name: str, text: str, *expected: str, qct: bool = False) -> object:
    return pytest.param(text, list(expected), qct, id=f"{rule} {name}")


LS, FN, TH, FA = "lumbar-spine", "femoral-neck", "total-hip", "forearm"

# DXA-1: the three diagnostic regions, as Chinese and English reports write them (sites × wordings).
_SITES = [
    ("腰椎L1-L4", LS, None),
    ("腰椎（L1-L4）", LS, None),
    ("腰椎L1~L4", LS, None),
    ("L1-L4", LS, None),
    ("L1–L4", LS, None),
    ("腰椎", LS, None),
    ("Lumbar spine L1-L4", LS, None),
    ("AP Spine L1-L4", LS, None),
    ("股骨颈", FN, None),
    ("左股骨颈", FN, "left"),
    ("右侧股骨颈", FN, "right"),
    ("Left femoral neck", FN, "left"),
    ("Femoral Neck (Right)", FN, "right"),
    ("全髋", TH, None),
    ("左侧全髋", TH, "left"),
    ("右全髋部", TH, "right"),
    ("Total hip", TH, None),
    ("Left Total Hip", TH, "left"),
]
_T_WORDINGS = ["{site} T值 {v}", "{site}：T值={v}", "{site} T-score: {v}", "{site}，T值为{v}"]
_GENERATED = [
    pytest.param(
        wording.format(site=site, v="-2.7"),
        [" ".join(["dxa", "t-score", region, "-2.7"] + ([side] if side else []))],
        False,
        id=f"DXA-1 {site} / {wording.split('{v}')[0].replace('{site}', '')}",
    )
    for site, region, side in _SITES
    for wording in _T_WORDINGS
]

CASES = [
    # --- DXA-1: the sentences, several values and regions in one sentence ------------------
    case(
        "DXA-1",
        "issue sentence zh",
        "腰椎L1-L4 BMD 0.812 g/cm²，T值 -2.8；左股骨颈 T值 -2.1，Z值 -0.9",
        f"dxa abmd {LS} 0.812",
        f"dxa t-score {LS} -2.8",
        f"dxa t-score {FN} -2.1 left",
        f"dxa z-score {FN} -0.9 left",
    ),
    case("DXA-1", "issue sentence en", "Femoral neck T-score -2.6", f"dxa t-score {FN} -2.6"),
    case(
        "DXA-1",
        "three regions en",
        "L1-L4: BMD 0.921 g/cm2, T-score -1.9. Femoral neck: BMD 0.702 g/cm2, T-score -2.4. "
        "Total hip: BMD 0.801 g/cm2, T-score -1.7.",
        f"dxa abmd {LS} 0.921",
        f"dxa t-score {LS} -1.9",
        f"dxa abmd {FN} 0.702",
        f"dxa t-score {FN} -2.4",
        f"dxa abmd {TH} 0.801",
        f"dxa t-score {TH} -1.7",
    ),
    case(
        "DXA-1",
        "three regions zh one line",
        "腰椎T值-1.5，股骨颈T值-2.5，全髋T值-2.0。",
        f"dxa t-score {LS} -1.5",
        f"dxa t-score {FN} -2.5",
        f"dxa t-score {TH} -2",
    ),
    case(
        "DXA-1",
        "lines of a report",
        "检查结果：\n腰椎L1-L4 T值 -3.1\n左股骨颈 T值 -2.2\n左全髋 T值 -1.8\n",
        f"dxa t-score {LS} -3.1",
        f"dxa t-score {FN} -2.2 left",
        f"dxa t-score {TH} -1.8 left",
    ),
    case(
        "DXA-1",
        "both hips",
        "左股骨颈 T值 -2.1，右股骨颈 T值 -2.6",
        f"dxa t-score {FN} -2.1 left",
        f"dxa t-score {FN} -2.6 right",
    ),
    case("DXA-1", "vertebra T is context", "L1 T值 -2.9", "dxa t-score vertebra -2.9 L1"),
    case(
        "DXA-1",
        "per vertebra and total",
        "L1 T值 -2.9；L2 T值 -2.5；L1-L4 T值 -2.3",
        "dxa t-score vertebra -2.9 L1",
        "dxa t-score vertebra -2.5 L2",
        f"dxa t-score {LS} -2.3",
    ),
    case("DXA-1", "hip word", "髋部 T值 -1.2", f"dxa t-score {TH} -1.2"),
    case("DXA-1", "neck alone (Hologic row)", "Neck T-score -2.2", f"dxa t-score {FN} -2.2"),
    case("DXA-1", "spine en", "Spine T-score -3.0", f"dxa t-score {LS} -3"),
    case("DXA-1", "lumbar en", "Lumbar T-score = -2.0", f"dxa t-score {LS} -2"),
    case("DXA-1", "no space zh", "股骨颈T值-2.6", f"dxa t-score {FN} -2.6"),
    case("DXA-1", "colon zh full width", "股骨颈：T值：-2.6", f"dxa t-score {FN} -2.6"),
    case(
        "DXA-1",
        "thoracic spine is not the lumbar spine",
        "Thoracic spine T-score -2.0",
        "dxa t-score unspecified -2",
    ),
    # --- DXA-3: the value as written --------------------------------------------------------------
    case("DXA-3", "full-width digits and minus", "腰椎Ｌ１－Ｌ４　Ｔ值　－２．８", f"dxa t-score {LS} -2.8"),
    case("DXA-3", "unicode minus", "股骨颈 T值 −2.5", f"dxa t-score {FN} -2.5"),
    case("DXA-3", "en dash as minus", "股骨颈 T值 –2.5", f"dxa t-score {FN} -2.5"),
    case("DXA-3", "boundary -2.5", "Femoral neck T-score -2.5", f"dxa t-score {FN} -2.5"),
    case("DXA-3", "boundary -1.0", "Total hip T-score -1.0", f"dxa t-score {TH} -1"),
    case("DXA-3", "positive value", "腰椎 T值 0.5", f"dxa t-score {LS} 0.5"),
    case("DXA-3", "plus sign", "腰椎 T值 +1.2", f"dxa t-score {LS} 1.2"),
    case("DXA-3", "zero", "腰椎 T值 0", f"dxa t-score {LS} 0"),
    case("DXA-3", "SD suffix", "Total hip T-score -1.7 SD", f"dxa t-score {TH} -1.7"),
    case("DXA-3", "T= no label", "Femoral neck T=-2.9", f"dxa t-score {FN} -2.9"),
    case("DXA-3", "T score without hyphen", "Femoral neck T score -2.9", f"dxa t-score {FN} -2.9"),
    case("DXA-3", "T评分", "股骨颈 T评分 -2.9", f"dxa t-score {FN} -2.9"),
    case("DXA-3", "two decimals", "股骨颈 T值 -2.45", f"dxa t-score {FN} -2.45"),
    case("DXA-3", "space after minus", "股骨颈 T值 - 2.7", f"dxa t-score {FN} -2.7"),
    case("DXA-3", "followed by diagnosis", "腰椎T值-2.8，诊断为骨质疏松", f"dxa t-score {LS} -2.8"),
    case("DXA-3", "value in parentheses", "股骨颈（T值 -2.6）", f"dxa t-score {FN} -2.6"),
    case("DXA-3", "implausible number kept for the caller", "股骨颈 T值 -25", f"dxa t-score {FN} -25"),
    # --- POP-3: Z-scores ----------------------------------------------------------------------------
    case("POP-3", "Z值", "腰椎 Z值 -2.1", f"dxa z-score {LS} -2.1"),
    case("POP-3", "Z-score en", "Lumbar spine Z-score -2.0", f"dxa z-score {LS} -2"),
    case("POP-3", "T and Z", "股骨颈 T值 -2.6 Z值 -1.1", f"dxa t-score {FN} -2.6", f"dxa z-score {FN} -1.1"),
    case("POP-3", "Z boundary", "全髋 Z值 -2.0", f"dxa z-score {TH} -2"),
    case("POP-3", "Z full width", "全髋　Ｚ值　－１．５", f"dxa z-score {TH} -1.5"),
    case("POP-3", "Z = ", "Total hip Z = -0.4", f"dxa z-score {TH} -0.4"),
    case("POP-3", "Z-scores plural", "Femoral neck Z-scores: -1.8", f"dxa z-score {FN} -1.8"),
    # --- DXA-2: the forearm (1/3 radius) and sites not measured ---------------------------------
    case("DXA-2", "前臂1/3", "前臂1/3 T值 -3.0", f"dxa t-score {FA} -3"),
    case("DXA-2", "非优势侧前臂", "非优势侧前臂远端1/3 T值 -2.7", f"dxa t-score {FA} -2.7"),
    case("DXA-2", "桡骨远端1/3", "左桡骨远端1/3 T值 -2.9", f"dxa t-score {FA} -2.9 left"),
    case("DXA-2", "33% radius", "Left radius 33% T-score -2.4", f"dxa t-score {FA} -2.4 left"),
    case("DXA-2", "1/3 radius", "1/3 radius T-score -2.8", f"dxa t-score {FA} -2.8"),
    case(
        "DXA-2",
        "forearm",
        "Forearm: BMD 0.601 g/cm2, T-score -2.6",
        f"dxa abmd {FA} 0.601",
        f"dxa t-score {FA} -2.6",
    ),
    case(
        "DXA-2",
        "spine fixation not measured",
        "腰椎因内固定未测，股骨颈 T值 -2.1",
        f"dxa t-score {FN} -2.1",
        f"not-measured {LS} dxa2",
    ),
    case(
        "DXA-2",
        "hip prosthesis not measured",
        "右髋关节置换术后未测，左股骨颈 T值 -2.2",
        f"dxa t-score {FN} -2.2 left",
        f"not-measured {TH} right dxa2",
    ),
    case(
        "DXA-2",
        "hardware en",
        "Lumbar spine not measured due to hardware. Left femoral neck T-score -1.9.",
        f"dxa t-score {FN} -1.9 left",
        f"not-measured {LS} dxa2",
    ),
    case(
        "DXA-2",
        "deformity zh",
        "腰椎严重变形，无法测量；全髋 T值 -1.6",
        f"dxa t-score {TH} -1.6",
        f"not-measured {LS} dxa2",
    ),
    case(
        "DXA-2",
        "implant en",
        "Right hip: not evaluated (implant).",
        f"not-measured {TH} right dxa2",
    ),
    case("DXA-2", "prosthesis en", "Left hip excluded, prosthesis.", f"not-measured {TH} left dxa2"),
    case(
        "DXA-2",
        "spine fusion",
        "L1-L4 excluded (fusion), total hip T-score -2.0",
        f"not-measured {LS} dxa2",
        f"dxa t-score {TH} -2",
    ),
    # --- not measured without a DXA-2 reason (the category comes from the sites measured) ---------
    case(
        "DXA-1",
        "right hip fracture not measured",
        "右髋骨折未测，左股骨颈 T值 -2.1",
        f"dxa t-score {FN} -2.1 left",
        f"not-measured {TH} right",
    ),
    case("DXA-1", "not measured en", "Femoral neck not measured.", f"not-measured {FN}"),
    case("DXA-1", "未检测", "全髋未检测", f"not-measured {TH}"),
    case("DXA-1", "未做", "腰椎未做", f"not-measured {LS}"),
    case("DXA-1", "T值未测", "股骨颈 T值未测", f"not-measured {FN}"),
    case(
        "DXA-1",
        "value after a not measured site",
        "腰椎未测, 全髋 T值 -1.1",
        f"dxa t-score {TH} -1.1",
        f"not-measured {LS}",
    ),
    case(
        "DXA-1",
        "not assessed en",
        "Spine: not assessed; Total hip T-score -2.3",
        f"not-measured {LS}",
        f"dxa t-score {TH} -2.3",
    ),
    case("DXA-1", "unable to measure", "Unable to measure the left hip.", f"not-measured {TH} left"),
    case("DXA-1", "could not be measured", "The lumbar spine could not be measured", f"not-measured {LS}"),
    case(
        "DXA-1",
        "invalid region",
        "L1-L4 invalid; femoral neck T-score -1.4",
        f"not-measured {LS}",
        f"dxa t-score {FN} -1.4",
    ),
    case(
        "DXA-1",
        "unreliable spine",
        "腰椎结果不可靠，股骨颈 T值 -2.4",
        f"not-measured {LS}",
        f"dxa t-score {FN} -2.4",
    ),
    case(
        "DXA-1", "vertebra excluded is not a site", "L3 excluded, L1-L4 T-score -2.0", f"dxa t-score {LS} -2"
    ),
    case(
        "DXA-1",
        "cue in a later clause names nothing",
        "腰椎T值-2.8，请结合临床排除继发性骨质疏松",
        f"dxa t-score {LS} -2.8",
    ),
    # --- DXA-4: a T-score with no region ---------------------------------------------------------------
    case("DXA-4", "T值 alone", "T值 -2.6", "dxa t-score unspecified -2.6"),
    case("DXA-4", "T-score alone", "T-score: -3.1", "dxa t-score unspecified -3.1"),
    case("DXA-4", "Z alone", "Z值 -0.8", "dxa z-score unspecified -0.8"),
    case("DXA-4", "BMD alone", "BMD 0.751 g/cm²", "dxa abmd unspecified 0.751"),
    # --- DXA units: areal BMD -------------------------------------------------------------------
    case("DXA-1", "g/cm² superscript", "股骨颈 BMD 0.612 g/cm²", f"dxa abmd {FN} 0.612"),
    case("DXA-1", "g/cm2", "股骨颈 BMD 0.612 g/cm2", f"dxa abmd {FN} 0.612"),
    case("DXA-1", "g/cm^2", "Femoral neck BMD 0.612 g/cm^2", f"dxa abmd {FN} 0.612"),
    case("DXA-1", "no space before unit", "股骨颈骨密度0.612g/cm²", f"dxa abmd {FN} 0.612"),
    case("DXA-1", "full-width unit", "股骨颈骨密度０．６１２ｇ／ｃｍ２", f"dxa abmd {FN} 0.612"),
    case("DXA-1", "mg/cm2", "Femoral neck BMD 612 mg/cm2", f"dxa abmd {FN} 612"),
    case("DXA-1", "骨密度为", "腰椎骨密度为0.845 g/cm²", f"dxa abmd {LS} 0.845"),
    case("DXA-1", "骨矿密度", "全髋骨矿密度 0.733 g/cm²", f"dxa abmd {TH} 0.733"),
    case(
        "DXA-1",
        "bone mineral density en",
        "Total hip bone mineral density 0.733 g/cm2",
        f"dxa abmd {TH} 0.733",
    ),
    case(
        "DXA-1", "areal BMD without a unit is not read", "腰椎 BMD 0.812，T值 -2.8", f"dxa t-score {LS} -2.8"
    ),
    # --- QCT-1: mean of two vertebrae, per-vertebra values -------------------------------------
    case("QCT-1", "issue sentence", "L1、L2椎体松质骨骨密度平均值 72.5 mg/cm³", "qct vbmd lumbar-spine 72.5"),
    case("QCT-1", "mean en", "Mean vBMD of L1 and L2: 95.3 mg/cm3", "qct vbmd lumbar-spine 95.3"),
    case("QCT-1", "average en", "L1-L2 average BMD 101 mg/cm3", "qct vbmd lumbar-spine 101"),
    case("QCT-1", "平均骨密度", "腰椎平均骨密度 88.6 mg/cm³", "qct vbmd lumbar-spine 88.6"),
    case("QCT-1", "mean without site", "松质骨骨密度平均值为 66.1 mg/cm³", "qct vbmd lumbar-spine 66.1"),
    case(
        "QCT-1",
        "per vertebra with units",
        "L1 78.2 mg/cm3, L2 66.8 mg/cm3",
        "qct vbmd vertebra 78.2 L1",
        "qct vbmd vertebra 66.8 L2",
    ),
    case(
        "QCT-1",
        "per vertebra shared unit",
        "L1 75.2, L2 70.1 mg/cm3",
        "qct vbmd vertebra 75.2 L1",
        "qct vbmd vertebra 70.1 L2",
    ),
    case(
        "QCT-1",
        "respectively zh",
        "L1、L2分别为78.2、66.8 mg/cm³",
        "qct vbmd vertebra 78.2 L1",
        "qct vbmd vertebra 66.8 L2",
    ),
    case(
        "QCT-1",
        "respectively zh bone density",
        "L1、L2椎体骨密度分别为 78.2、66.8 mg/cm³",
        "qct vbmd vertebra 78.2 L1",
        "qct vbmd vertebra 66.8 L2",
    ),
    case(
        "QCT-1",
        "respectively en",
        "L1 and L2 vBMD were 81.0 and 77.4 mg/cm3 respectively",
        "qct vbmd vertebra 81 L1",
        "qct vbmd vertebra 77.4 L2",
    ),
    case(
        "QCT-1",
        "chinese levels",
        "腰1椎体骨密度 85.0 mg/cm³，腰2椎体骨密度 79.0 mg/cm³",
        "qct vbmd vertebra 85 L1",
        "qct vbmd vertebra 79 L2",
    ),
    case(
        "QCT-1",
        "第1腰椎",
        "第1腰椎 92.1 mg/cm³；第2腰椎 88.3 mg/cm³",
        "qct vbmd vertebra 92.1 L1",
        "qct vbmd vertebra 88.3 L2",
    ),
    case("QCT-1", "single vertebra", "L2 骨密度 64.0 mg/cm³", "qct vbmd vertebra 64 L2"),
    case(
        "QCT-1",
        "three vertebrae and a mean",
        "L1 80.1 mg/cm3; L2 75.5 mg/cm3; L3 70.2 mg/cm3; 平均 77.8 mg/cm3",
        "qct vbmd vertebra 80.1 L1",
        "qct vbmd vertebra 75.5 L2",
        "qct vbmd vertebra 70.2 L3",
        "qct vbmd lumbar-spine 77.8",
    ),
    case(
        "QCT-1",
        "full width",
        "Ｌ１、Ｌ２椎体平均骨密度　７２．５　ｍｇ／ｃｍ３",
        "qct vbmd lumbar-spine 72.5",
    ),
    case("QCT-1", "T12 and L1", "T12、L1 平均骨密度 99.0 mg/cm³", "qct vbmd lumbar-spine 99"),
    # --- QCT-2: values at the table-2 boundaries, and units (QCT-5) --------------------------
    case("QCT-2", "boundary 80", "L1、L2 平均 80.0 mg/cm³", "qct vbmd lumbar-spine 80"),
    case("QCT-2", "boundary 120", "L1、L2 平均 120 mg/cm³", "qct vbmd lumbar-spine 120"),
    case("QCT-2", "just below 80", "腰椎平均骨密度 79.9 mg/cm3", "qct vbmd lumbar-spine 79.9"),
    case("QCT-5", "mg/cc", "Mean BMD L1-L2 101.5 mg/cc", "qct vbmd lumbar-spine 101.5"),
    case("QCT-5", "mg/mL", "Mean BMD L1-L2 101.5 mg/mL", "qct vbmd lumbar-spine 101.5"),
    case("QCT-5", "g/cm3", "L1-L2 mean 0.0915 g/cm3", "qct vbmd lumbar-spine 0.0915"),
    case("QCT-5", "mg/cm^3", "L1-L2 mean 91.5 mg/cm^3", "qct vbmd lumbar-spine 91.5"),
    case("QCT-5", "Hounsfield units are not BMD", "L1 CT值 150 HU", qct=True),
    case("QCT-5", "CT值 alone", "腰椎CT值约180 HU"),
    case(
        "QCT-5", "bare number in a QCT report is unreadable", "L1、L2 平均骨密度 75.2", "unreadable", qct=True
    ),
    # --- QCT-3: hip QCT (CTXA) T-score -------------------------------------------------------
    case("QCT-3", "CTXA total hip", "QCT：全髋 T值 -2.0", "qct t-score hip -2"),
    case("QCT-3", "femoral neck QCT", "CTXA femoral neck T-score -2.7", "qct t-score hip -2.7"),
    case("QCT-3", "QCT spine T-score is not used", "QCT 腰椎 T值 -3.0"),
    case(
        "QCT-3",
        "QCT report mean and hip",
        "L1、L2平均 95 mg/cm³；全髋T值 -1.2",
        "qct vbmd lumbar-spine 95",
        "qct t-score hip -1.2",
    ),
    case("QCT-3", "QCT hip Z is not used", "QCT 全髋 Z值 -1.0"),
    # --- DX-4: peripheral and ultrasound ---------------------------------------------------------
    case("DX-4", "calcaneus", "跟骨 T值 -1.8", "peripheral t-score calcaneus -1.8"),
    case("DX-4", "heel en", "Heel T-score -2.2", "peripheral t-score calcaneus -2.2"),
    case("DX-4", "ultrasound", "超声骨密度 T值 -2.6", "qus t-score unspecified -2.6"),
    case("DX-4", "QUS en", "QUS of the calcaneus: T-score -2.9", "qus t-score calcaneus -2.9"),
    case("DX-4", "pDXA forearm", "pDXA 前臂 T值 -2.0", "peripheral t-score forearm -2"),
    case("DX-4", "peripheral vBMD is not lumbar QCT", "pQCT radius 210 mg/cm3"),
    case("DX-4", "ultrasound BMD unit ignored", "超声 跟骨 0.512 g/cm²"),
    # --- not a measurement: criteria, thresholds, ranges ------------------------------------
    case("DXA-3", "criteria sentence", "诊断标准：T值≤-2.5为骨质疏松"),
    case("DXA-3", "WHO criteria en", "WHO criteria: T-score -2.5 or below is osteoporosis"),
    case("DXA-3", "threshold ≤", "T值≤-2.5"),
    case("DXA-3", "threshold <", "T-score < -1.0"),
    case("DXA-3", "threshold words", "T值低于-2.5"),
    case("DXA-3", "threshold after", "T值-2.5及以下为骨质疏松"),
    case("DXA-3", "range", "T值 -1.0~-2.5 为低骨量"),
    case("DXA-3", "range 至", "T值-1.0至-2.5"),
    case("DXA-3", "reference range", "参考范围：T值 -1.0 以上"),
    case("DXA-3", "defined as", "Osteoporosis is defined as a T-score of -2.5"),
    case("DXA-3", "if sentence", "If the T-score is -2.5 a fracture risk assessment is advised"),
    case("QCT-2", "QCT criteria", "QCT诊断标准：骨密度<80 mg/cm³为骨质疏松"),
    case("QCT-2", "QCT range", "80~120 mg/cm³为低骨量"),
    case("QCT-2", "QCT threshold after", "骨密度 80 mg/cm³以下", qct=True),
    case("DXA-6", "reference database sentence", "T值采用中国人群参考数据库计算"),
    case("DXA-6", "label without value", "T-scores were computed against the Chinese reference"),
    case("DXA-1", "age and dates are not values", "患者68岁，2024-01-10行骨密度检查"),
    case("DXA-1", "percent is not a unit", "股骨颈骨密度较前下降 3.2%"),
    case("DXA-1", "CT value word ct is not T", "CT值 -2.5"),
    case("DXA-1", "left is not a T", "Left 2.5"),
    # --- unreadable: the value is there, its number is not ---------------------------------
    case("DXA-3", "x for a digit", "左股骨颈 T值 -2.x", "unreadable"),
    case("DXA-3", "stars", "股骨颈 T值 ***", "unreadable"),
    case("DXA-3", "question mark", "全髋 T-score ?", "unreadable"),
    case("DXA-3", "dashes", "腰椎 T值 --", "unreadable"),
    case("DXA-3", "see image zh", "股骨颈 T值 见附图", "unreadable"),
    case("DXA-3", "see image en", "Femoral neck T-score: see image", "unreadable"),
    case("DXA-3", "n/a", "Total hip T-score N/A", "unreadable"),
    case("DXA-3", "illegible", "Total hip T-score illegible", "unreadable"),
    case("DXA-3", "不详", "全髋 T值不详", "unreadable"),
    case("DXA-3", "模糊", "腰椎 T值 模糊", "unreadable"),
    case("DXA-3", "garbled digits", "股骨颈 T值 -2.?5", "unreadable"),
    case(
        "DXA-3",
        "unreadable beside readable",
        "腰椎 T值 -2.8，股骨颈 T值 ***",
        f"dxa t-score {LS} -2.8",
        "unreadable",
    ),
    case("POP-3", "Z unreadable", "腰椎 Z值 --", "unreadable"),
    case("QCT-1", "QCT value without unit", "L1 骨密度 75.2，L2 骨密度 70.0", "unreadable", qct=True),
    case("QCT-1", "QCT mean without unit", "松质骨骨密度平均值 72.5", "unreadable", qct=True),
]


@pytest.mark.parametrize(("text", "expected", "qct"), [*CASES, *_GENERATED])
def test_bmd_sentence(text: str, expected: list[str], qct: bool) -> None:
    reading = read_bmd_text(text, qct_report=qct)
    assert sorted(summary(reading)) == sorted(expected)
    for value in reading.values:
        assert value.quote and value.quote in text  # the evidence is the report's own sentence


def test_table_has_200_sentences() -> None:
    assert len(CASES) + len(_GENERATED) >= 200


@pytest.mark.parametrize(
    ("text", "quote"),
    [
        pytest.param(
            "检查所见：骨质疏松改变。腰椎L1-L4 T值 -2.8。",
            "腰椎L1-L4 T值 -2.8",
            id="DXA-1 quote is the sentence",
        ),
        pytest.param(
            "Findings. Femoral neck T-score -2.6. Done", "Femoral neck T-score -2.6", id="DXA-1 quote en"
        ),
        pytest.param(
            "腰椎Ｌ１－Ｌ４　Ｔ值　－２．８；其余正常",
            "腰椎Ｌ１－Ｌ４　Ｔ值　－２．８",
            id="DXA-1 quote keeps full width",
        ),
    ],
)
def test_the_quote_is_the_original_sentence(text: str, quote: str) -> None:
    assert [v.quote for v in read_bmd_text(text).values] == [quote]


def test_qct_words_make_a_qct_report() -> None:
    assert read_bmd_text("定量CT（QCT）骨密度测定").qct
    assert read_bmd_text("L1 75 mg/cm³").qct
    assert not read_bmd_text("双能X线骨密度 腰椎 T值 -2.0").qct


def test_long_text_is_bounded() -> None:
    text = "腰椎 T值 -2.8；" * 5000
    reading = read_bmd_text(text)
    assert reading.values and len(reading.values) < 5000


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("L1 " * 6000, id="DXA-1 adversarial many vertebrae"),
        pytest.param("L1 75.2, " * 2000 + "mg/cm3", id="QCT-1 adversarial long list"),
        pytest.param("腰椎未测，" * 3000, id="DXA-1 adversarial many cues"),
        pytest.param("腰椎T值-2.8，" * 2000, id="DXA-3 adversarial many values"),
    ],
)
def test_adversarial_text_is_bounded(text: str) -> None:
    reading = read_bmd_text(text)  # bounded input; linear reading (timed in bench/, not here)
    assert len(reading.values) <= len(text)
