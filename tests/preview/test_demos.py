"""The demonstrations: read from examples/ at request time, whatever shape the index has, never outside it."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from cds_service.preview.demos import demo_settings, load_catalogue
from cds_service.settings import Settings


def write(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")


def examples(tmp_path: Path, index: Any) -> Path:
    root = tmp_path / "repo" / "examples"
    write(root / "patients" / "a.json", {"resourceType": "Bundle"})
    write(root / "patients" / "b.json", {"resourceType": "Bundle"})
    write(root / "requests" / "a-prefetch.json", {"hook": "patient-view"})
    write(root / "requests" / "a-no-prefetch.json", {"hook": "patient-view"})
    write(tmp_path / "repo" / "secret.json", {"resourceType": "Bundle"})
    if index is not None:
        write(root / "patients" / "index.json", index)
    return root


def test_the_index_patients_come_first_then_the_prefetch_requests(tmp_path: Path) -> None:
    index = {
        "patients": [
            {
                "file": "b.json",
                "title": "B",
                "description": "en",
                "description_zh": "中",
                "expectedTopics": ["x"],
            },
            {"file": "a.json", "title": "A"},
        ],
        "synthea": [{"file": "elsewhere.json", "title": "A", "expectedTopics": ["y"]}],
    }
    catalogue = load_catalogue(examples(tmp_path, index))
    # issue 17: patient a's request is the same patient as its bundle, listed once (as the bundle)
    assert [d.id for d in catalogue.demos] == ["patients/b", "patients/a"]
    b = catalogue.demos[0]
    assert (b.label, b.description_in("en"), b.description_in("zh-CN"), b.expected_topics) == (
        "B",
        "en",
        "中",
        ("x",),
    )
    # a request of a patient the index does not list is kept, labelled with the topics of the index entry
    # of the same name
    index["patients"] = index["patients"][:1]
    catalogue = load_catalogue(examples(tmp_path, index))
    assert [d.id for d in catalogue.demos] == ["patients/b", "requests/a-prefetch"]
    assert catalogue.find("requests/a-prefetch").expected_topics == ("y",)  # type: ignore[union-attr]


def test_each_hand_made_patient_is_listed_once() -> None:
    catalogue = load_catalogue()
    stems = [d.path.name.removesuffix(".json").removesuffix("-prefetch") for d in catalogue.demos]
    assert len(stems) == len(set(stems))
    assert "patients/wang-xiulan" in {d.id for d in catalogue.demos}
    assert "requests/wang-xiulan-prefetch" not in {d.id for d in catalogue.demos}
    assert "requests/chad-quigley-prefetch" in {d.id for d in catalogue.demos}  # Synthea: a request only


def test_without_an_index_only_the_requests_are_listed(tmp_path: Path) -> None:
    catalogue = load_catalogue(examples(tmp_path, None))
    assert [d.id for d in catalogue.demos] == ["requests/a-prefetch"]


def test_other_index_shapes_are_read(tmp_path: Path) -> None:
    as_list = load_catalogue(examples(tmp_path / "1", ["a.json", {"path": "b.json", "name": "Bee"}]))
    assert [(d.id, d.label) for d in as_list.demos if d.group == "patients"] == [
        ("patients/a", "a"),
        ("patients/b", "Bee"),
    ]
    as_map = load_catalogue(examples(tmp_path / "2", {"a.json": {"title": "Ay"}, "b.json": "Bee"}))
    assert [d.label for d in as_map.demos if d.group == "patients"] == ["Ay", "Bee"]


def test_the_index_cannot_point_outside_the_patients_folder(tmp_path: Path) -> None:
    index = {
        "patients": [
            {"file": "../../secret.json"},
            {"file": "/etc/passwd"},
            {"file": "index.json"},
            {"file": "gone.json"},
        ]
    }
    catalogue = load_catalogue(examples(tmp_path, index))
    assert [d.group for d in catalogue.demos] == ["requests"]


def test_a_broken_index_lists_no_patients(tmp_path: Path) -> None:
    root = examples(tmp_path, None)
    (root / "patients" / "index.json").write_text("{broken", encoding="utf-8")
    assert [d.group for d in load_catalogue(root).demos] == ["requests"]


def test_demonstrations_run_with_the_index_settings(tmp_path: Path) -> None:
    code_map = {"dxa-t-lumbar-spine": [{"system": "urn:local", "code": "T-L"}]}
    index = {
        "settings": {
            "OSTEO_CDS_TODAY": "2026-11-25",
            "OSTEO_CDS_CODE_MAP": "examples/code-map.json",
            "OSTEO_CDS_AUTH": "jwt",  # not a demonstration setting: ignored
        },
        "patients": [],
    }
    root = examples(tmp_path, index)
    write(root / "code-map.json", code_map)
    catalogue = load_catalogue(root)
    assert dict(catalogue.settings) == {
        "OSTEO_CDS_TODAY": "2026-11-25",
        "OSTEO_CDS_CODE_MAP": "examples/code-map.json",
    }
    settings = demo_settings(Settings(auth="none"), catalogue, root)
    assert settings.today == date(2026, 11, 25)
    assert settings.code_map.concept_of("urn:local", "T-L") == "dxa-t-lumbar-spine"
    assert settings.auth == "none"


def test_a_code_map_outside_the_repository_is_ignored(tmp_path: Path) -> None:
    index = {"settings": {"OSTEO_CDS_CODE_MAP": "../../outside.json"}, "patients": []}
    root = examples(tmp_path, index)
    write(tmp_path / "outside.json", {"dxa-t-lumbar-spine": [{"code": "X"}]})
    settings = demo_settings(Settings(auth="none"), load_catalogue(root), root)
    assert not settings.code_map
