"""The HTML report: one self-contained page (charts as inline SVG, no script, nothing loaded from outside)."""

from __future__ import annotations

import html
import io
import warnings
from datetime import date
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from cds_service.screen.output import WORKLISTS, Summary

plt.rcParams["svg.fonttype"] = "none"  # text stays text: the browser's fonts render Chinese
plt.rcParams["svg.hashsalt"] = "osteo-cds"  # stable ids: the same input gives the same page
# Layout only (the SVG keeps text as text): a CJK font where installed (scripts/test-setup.sh installs one).
plt.rcParams["font.sans-serif"] = ["WenQuanYi Micro Hei", "Noto Sans CJK SC", "DejaVu Sans"]

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Osteoporosis screening report",
        "intro": "Same engine as the CDS Hooks service, run over a population. Today taken as {today}. "
        "The page holds patient ids and findings: personal health information, handle it as such.",
        "input": "Input",
        "files": "files",
        "lines": "lines read",
        "resources": "resources used, by type",
        "rejects": "rejected (see rejects.csv)",
        "no-rejects": "none",
        "patients": "patients screened",
        "with-findings": "patients with at least one finding",
        "errors": "patients the engine failed on (see rejects.csv)",
        "cards": "Findings per card",
        "topic": "card (topic code)",
        "count": "patients",
        "worklists": "Worklists",
        "shown": "{count} patients; the {shown} oldest are shown, all are in worklist.csv / worklist.parquet",
        "fracture-without-bmd": "Fragility fracture without BMD on record",
        "fracture-without-diagnosis": "Fragility fracture without an osteoporosis diagnosis on record",
        "spine-imaging": "Age ≥ 60 without thoracic + lumbar spine imaging",
        "bmd-without-diagnosis": "Osteoporosis-range BMD without an osteoporosis diagnosis on record",
        "qct-referral": "QCT referrals (DXA unreliable)",
        "columns": "patient id|age|sex|measure|value|site|date|rules",
        "breakdown": "Age and sex",
        "population": "Patients screened",
        "osteoporosis": "Osteoporosis findings",
        "age": "age",
        "female": "female",
        "male": "male",
        "unknown": "unknown",
        "t-scores": "Decisive T-scores (diagnosis cards)",
        "qct": "Decisive lumbar QCT vBMD, mg/cm³ (diagnosis cards)",
        "none": "no values",
        "note": "Cut-offs: T -2.5 and -1.0 (DXA-3); QCT 80 and 120 mg/cm³ (QCT-2).",
    },
    "zh-CN": {
        "title": "骨质疏松人群筛查报告",
        "intro": "与CDS Hooks服务相同的判读引擎，在人群数据上运行。以{today}为今日。"
        "本页含患者ID与判读结果，属个人健康信息，请按规定保管。",
        "input": "输入",
        "files": "文件数",
        "lines": "读取行数",
        "resources": "采用的资源（按类型）",
        "rejects": "拒收（见rejects.csv）",
        "no-rejects": "无",
        "patients": "筛查患者数",
        "with-findings": "至少一项结果的患者数",
        "errors": "引擎处理失败的患者数（见rejects.csv）",
        "cards": "各卡片结果数",
        "topic": "卡片（主题代码）",
        "count": "患者数",
        "worklists": "工作清单",
        "shown": "共{count}例；按年龄显示前{shown}例，完整清单见worklist.csv / worklist.parquet",
        "fracture-without-bmd": "脆性骨折但无骨密度检查记录",
        "fracture-without-diagnosis": "脆性骨折但无骨质疏松诊断记录",
        "spine-imaging": "年龄≥60岁且无胸腰椎影像",
        "bmd-without-diagnosis": "骨密度达骨质疏松范围但无诊断记录",
        "qct-referral": "建议QCT（DXA不可靠）",
        "columns": "患者ID|年龄|性别|指标|数值|部位|日期|共识条款",
        "breakdown": "年龄与性别",
        "population": "筛查患者",
        "osteoporosis": "骨质疏松结果",
        "age": "年龄",
        "female": "女",
        "male": "男",
        "unknown": "未知",
        "t-scores": "决定诊断的T值（诊断卡片）",
        "qct": "决定诊断的腰椎QCT骨密度，mg/cm³（诊断卡片）",
        "none": "无数据",
        "note": "界值：T值-2.5与-1.0（DXA-3）；QCT 80与120 mg/cm³（QCT-2）。",
    },
}
# Nothing may load from outside the page (a report is opened on machines without internet, and must not
# tell anyone it was opened): no scripts, no fetches, inline style and SVG only.
_CSP = (
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
)
_BANDS = ("<50", "50-59", "60-69", "70-79", "80+", "unknown")
_STYLE = (
    "body{font-family:system-ui,'Noto Sans CJK SC','WenQuanYi Micro Hei',sans-serif;"
    "margin:2em;max-width:72em}table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}"
    "figure{display:inline-block;margin:0 1em 1em 0}svg{max-width:100%;height:auto}"
)


def render_report(summary: Summary, language: str, today: date) -> str:
    t = TEXTS[language]
    e = html.escape
    parts = [
        f'<!DOCTYPE html><html lang="{language}"><head><meta charset="utf-8">',
        _CSP,
        f"<title>{e(t['title'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(t['title'])}</h1><p>{e(t['intro'].format(today=today.isoformat()))}</p>",
        f"<h2>{e(t['input'])}</h2><table>",
        _tr(t["files"], summary.files),
        _tr(t["lines"], summary.lines),
        _tr(t["resources"], ", ".join(f"{k} {v}" for k, v in summary.resources.items())),
        _tr(t["rejects"], ", ".join(f"{k} {v}" for k, v in summary.rejects.items()) or t["no-rejects"]),
        _tr(t["patients"], summary.patients),
        _tr(t["with-findings"], summary.patients_with_findings),
        _tr(t["errors"], summary.errors),
        "</table>",
        f"<h2>{e(t['cards'])}</h2><table id='cards'>",
        f"<tr><th>{e(t['topic'])}</th><th>{e(t['count'])}</th></tr>",
        *(_tr(topic, n) for topic, n in summary.topics.items()),
        "</table>",
        f"<h2>{e(t['worklists'])}</h2>",
    ]
    headers = "".join(f"<th>{e(c)}</th>" for c in t["columns"].split("|"))
    for name in WORKLISTS:
        count, rows = summary.worklists[name]
        parts.append(f"<h3 id='{name}'>{e(t[name])}</h3>")
        parts.append(f"<p>{e(t['shown'].format(count=count, shown=min(count, len(rows))))}</p>")
        if rows:
            body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
            parts.append(f"<table><tr>{headers}</tr>{body}</table>")
    parts += [
        f"<h2>{e(t['breakdown'])}</h2>",
        _figure(_bars(summary.population, t, t["population"])),
        _figure(_bars(summary.osteoporosis, t, t["osteoporosis"])),
        _figure(_histogram(summary.t_scores, (-2.5, -1.0), t, t["t-scores"])),
        _figure(_histogram(summary.qct, (80.0, 120.0), t, t["qct"])),
        f"<p>{e(t['note'])}</p></body></html>",
    ]
    return "\n".join(parts)


def _tr(label: str, value: Any) -> str:
    return f"<tr><td>{html.escape(str(label))}</td><td>{html.escape(str(value))}</td></tr>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        value = format(round(value, 2), "g")  # 71.30000000000001 → 71.3 (the files keep the full value)
    return "" if value is None else html.escape(str(value))


def _figure(svg: str) -> str:
    return f"<figure>{svg}</figure>"


def _bars(counts: list[tuple[str, str, int]], t: dict[str, str], title: str) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.4
    for offset, sex in ((-width / 2, "female"), (width / 2, "male")):
        values = [sum(n for s, b, n in counts if s == sex and b == band) for band in _BANDS]
        ax.bar([i + offset for i in range(len(_BANDS))], values, width, label=t[sex])
    ax.set_xticks(range(len(_BANDS)), [t["unknown"] if b == "unknown" else b for b in _BANDS])
    ax.set_xlabel(t["age"])
    ax.set_ylabel(t["count"])
    ax.set_title(title)
    ax.legend()
    return _svg(fig)


def _histogram(values: list[float], cutoffs: tuple[float, float], t: dict[str, str], title: str) -> str:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if values:
        ax.hist(values, bins=30, color="#4c72b0")
    else:
        ax.text(0.5, 0.5, t["none"], ha="center", va="center", transform=ax.transAxes)
    for cut in cutoffs:
        ax.axvline(cut, color="#c44e52", linestyle="--", linewidth=1)
    ax.set_ylabel(t["count"])
    ax.set_title(title)
    return _svg(fig)


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.tight_layout()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")  # no CJK font installed
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]
