"""``cloud-training evaluate`` on a real converted model (random weights) and a real manifest with images on disk.

With random weights the mAP is near 0; these tests check the plumbing (counts, JSON, table, PDF pages, errors). The
number itself is checked by ``test_voc_metric.py``, and here by a detector that returns the ground truth, run through
the same loop the command uses: it must score exactly 1.0.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from cloud_training.cli import main
from cloud_training.evaluation.loop import evaluate
from cloud_training.manifest import io
from cloud_training.manifest.records import Record
from edge_runtime.detectors.base import Detection
from edge_runtime.detectors.fake import FakeDetector
from edge_runtime.model import read_model_info
from tests.support.groundtruth import gt_line, write_manifest
from tests.support.models import training_artifact_files, write_folder

NAMES = ("blue box", "yellow box")
SIZE = (96, 64)
# (image name, class id, boxes as left, top, width, height)
IMAGES = [
    ("a.jpg", 0, [(10, 8, 30, 20)]),
    ("b.jpg", 1, [(40, 20, 40, 30), (5, 5, 20, 20)]),
    ("c.jpg", 0, [(50, 30, 30, 25)]),
]


@pytest.fixture(scope="module")
def deploy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model")
    artifact = write_folder(root / "artifact", training_artifact_files("tiny-cnn", num_classes=2, data_shape=128))
    out = root / "deploy"
    assert main(["convert", str(artifact), "--out", str(out), "--class-names", ",".join(NAMES)]) == 0
    return out


def write_data(folder: Path, class_names: tuple[str, ...] = NAMES) -> Path:
    rng = np.random.default_rng(0)
    lines = []
    for name, class_id, boxes in IMAGES:
        image = rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
        for left, top, width, height in boxes:
            cv2.rectangle(image, (left, top), (left + width, top + height), (255, 0, 0), -1)
        (folder / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / "images" / name), image)
        lines.append(
            gt_line(f"images/{name}", boxes, size=SIZE, class_id=class_id, class_name=class_names[class_id])
        )
    return write_manifest(folder / "validation.manifest", lines)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


CHART_PAGES = 3  # two classes: one page of precision-recall curves, one of score histograms, the confusion matrix


def pdf_pages(path: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", path.read_bytes()))


def test_json_counts_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str], deploy: Path) -> None:
    manifest = write_data(tmp_path)
    report = tmp_path / "out" / "report.pdf"
    code, out, err = run_cli(capsys, "evaluate", str(deploy), str(manifest), "--json", "--report", str(report))
    assert code == 0, err
    assert "evaluating: 3/3 img (100%)" in err  # stderr is no terminal here: a progress line, not a bar
    for step in ("drawing report pages", "compressing report images"):  # a line per page: never silent for long
        assert [f"{step}: {n}/3 page" in err for n in (1, 2, 3)] == [True, True, True], err
    summary = json.loads(out)
    assert summary["images"] == 3 and summary["manifest"] == str(manifest)
    assert summary["model"]["name"] == "deploy" and summary["model"]["version"] == "1.0.0"
    assert [(c["class_id"], c["name"], c["ground_truth"]) for c in summary["classes"]] == [
        (0, "blue box", 2),
        (1, "yellow box", 2),
    ]
    for item in summary["classes"]:
        assert item["true_positives"] + item["false_positives"] <= item["detections"]
        assert item["ap"] is not None and 0.0 <= item["ap"] <= 1.0
    assert 0.0 <= summary["mAP"] <= 1.0
    assert summary["mAP"] == pytest.approx(np.mean([c["ap"] for c in summary["classes"]]))
    assert pdf_pages(report) == 1 + CHART_PAGES + 3  # summary, charts, then every image (3 < --pages 20)
    assert [p.name for p in report.parent.iterdir()] == ["report.pdf"]  # no temp file left beside it


def test_table_names_each_class_and_the_map(tmp_path: Path, capsys: pytest.CaptureFixture[str], deploy: Path) -> None:
    code, out, _ = run_cli(capsys, "evaluate", str(deploy), str(write_data(tmp_path)))
    assert code == 0
    lines = out.splitlines()
    assert "3 images" in lines[0] and "VOC07 11-point" in lines[0]
    assert lines[1].split() == ["class", "true", "boxes", "detections", "TP", "FP", "AP"]
    assert lines[3].startswith("blue box") and lines[4].startswith("yellow box")
    assert re.match(r"mAP\s+\d\.\d{4}$", lines[5])


def ground_truth_detector(records: list[Record], names: tuple[str, ...]) -> FakeDetector:
    """Answers each image (in manifest order) with its own true boxes, score 0.9."""

    def script(call: int) -> list[Detection]:
        record = records[call]
        result = []
        for box in record.boxes:
            corners = (box.left, box.top, box.left + box.width, box.top + box.height)
            normalised = (corners[0] / record.width, corners[1] / record.height,
                          corners[2] / record.width, corners[3] / record.height)
            result.append(Detection(names[box.class_id], box.class_id, 0.9, corners, normalised))
        return result

    return FakeDetector(script=script)


def test_a_detector_returning_the_ground_truth_scores_one(tmp_path: Path, deploy: Path) -> None:
    records, _, _ = io.read_records([str(write_data(tmp_path))], None, skip_invalid=False)
    detector = ground_truth_detector(records, NAMES)
    detector.info = read_model_info(deploy)
    result = evaluate(records, detector)
    assert result.mean_ap == pytest.approx(1.0)
    assert [(c.ground_truth, c.true_positives, c.false_positives) for c in result.classes.values()] == [
        (2, 2, 0),
        (2, 2, 0),
    ]


def assert_one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cloud-training: error: "), err
    return lines[0]


def test_class_names_that_disagree_with_the_model_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], deploy: Path
) -> None:
    manifest = write_data(tmp_path, class_names=("yellow box", "blue box"))
    message = assert_one_line_error(capsys, "evaluate", str(deploy), str(manifest))
    assert "class-map says class 0 is 'yellow box' but model deploy calls it 'blue box'" in message


def test_a_missing_model_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    message = assert_one_line_error(capsys, "evaluate", str(tmp_path / "nope"), str(write_data(tmp_path)))
    assert "model folder not found" in message


def test_an_existing_report_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str], deploy: Path) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"old")
    manifest = str(write_data(tmp_path))
    assert "already exists" in assert_one_line_error(capsys, "evaluate", str(deploy), manifest, "--report", str(report))
    assert report.read_bytes() == b"old"
    code, _, _ = run_cli(capsys, "evaluate", str(deploy), manifest, "--report", str(report), "--force")
    assert code == 0 and pdf_pages(report) == 1 + CHART_PAGES + 3


# -- the report: its text, its order and its colours, read back from the PDF ------------------------------------------


def page_texts(path: Path) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(str(path)).pages]


def strokes(path: Path, page_index: int) -> list[tuple[tuple[float, ...], tuple[float, float, float, float]]]:
    """Every stroked path on a page: its stroke colour (RGB 0..1) and bounding box in PDF points (y upwards)."""
    from pypdf import PdfReader
    from pypdf.generic import ContentStream

    reader = PdfReader(str(path))
    page = reader.pages[page_index]
    found = []
    color: tuple[float, ...] = (0.0, 0.0, 0.0)
    stack: list[tuple[float, ...]] = []
    points: list[tuple[float, float]] = []
    for operands, operator in ContentStream(page.get_contents(), reader).operations:
        if operator == b"q":
            stack.append(color)
        elif operator == b"Q":
            color = stack.pop()
        elif operator == b"RG":
            color = tuple(float(value) for value in operands)
        elif operator in (b"m", b"l"):
            points.append((float(operands[0]), float(operands[1])))
        elif operator == b"S" and points:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            found.append((color, (min(xs), min(ys), max(xs), max(ys))))
            points = []
        elif operator in (b"f", b"n", b"B"):
            points = []
    return found


def rgb(hex_color: str) -> tuple[float, float, float]:
    return tuple(int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def count_color(found: list, hex_color: str) -> int:
    target = rgb(hex_color)
    return sum(1 for color, _ in found if all(abs(a - b) < 2e-3 for a, b in zip(color, target)))


def test_the_first_page_says_what_evaluate_json_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], deploy: Path
) -> None:
    manifest = write_data(tmp_path)
    report = tmp_path / "report.pdf"
    code, out, err = run_cli(capsys, "evaluate", str(deploy), str(manifest), "--json", "--report", str(report))
    assert code == 0, err
    summary = json.loads(out)
    first = page_texts(report)[0]
    assert f"mAP {summary['mAP']:.4f}" in first
    assert summary["dataset"]["sha256"][:16] in first and f"{summary['images']} images" in first
    for item in summary["classes"]:
        line = next(text for text in first.splitlines()  # the table's row, not the AP bars' label
                    if text.startswith(item["name"]) and len(text[len(item["name"]):].split()) >= 9)
        fields = line[len(item["name"]):].split()
        assert fields[:5] == [f"{item['ap']:.4f}", str(item["ground_truth"]), str(item["detections"]),
                              str(item["true_positives"]), str(item["false_positives"])]
        choice = item["recommended_threshold"]
        assert fields[5] == ("-" if choice is None else f"{choice['score']:.2f}")
        assert fields[-1] == str(item["false_positives_at_shown"])  # the FP a device at that threshold would show
    outcome = summary["outcomes_at_shown_thresholds"]
    assert sum(item["false_positives_at_shown"] for item in summary["classes"]) == outcome["false_positives"]
    assert f"{outcome['false_positives']} false positives, {outcome['missed']} missed" in " ".join(first.split())


def scripted(records: list[Record], names: tuple[str, ...], plan: dict[str, str]) -> FakeDetector:
    """Per image (by file name): "truth" answers its true boxes, "truth+spurious" adds a box where nothing is,
    "nothing" answers no box."""

    def script(call: int) -> list[Detection]:
        record = records[call]
        kind = plan[Path(record.source_ref).name]
        result = []
        if kind.startswith("truth"):
            for box in record.boxes:
                corners = (box.left, box.top, box.left + box.width, box.top + box.height)
                normalised = (corners[0] / record.width, corners[1] / record.height,
                              corners[2] / record.width, corners[3] / record.height)
                result.append(Detection(names[box.class_id], box.class_id, 0.9, corners, normalised))
        if kind.endswith("spurious"):  # bottom-right corner, away from every true box of a.jpg
            corners = (70.0, 40.0, 94.0, 62.0)
            result.append(Detection(names[0], 0, 0.8, corners, (70 / 96, 40 / 64, 94 / 96, 62 / 64)))
        return result

    return FakeDetector(script=script)


def test_image_pages_come_worst_first_each_outcome_in_its_colour(tmp_path: Path, deploy: Path) -> None:
    from cloud_training.evaluation.figures import FP_COLOR, MISSED_COLOR, TP_COLOR
    from cloud_training.evaluation.loop import evaluate_images
    from cloud_training.evaluation.report import Report
    from cloud_training.evaluation.summary import analyse, summarise

    manifest = write_data(tmp_path)
    records, _, _ = io.read_records([str(manifest)], None, skip_invalid=False)
    detector = scripted(records, NAMES, {"a.jpg": "truth+spurious", "b.jpg": "nothing", "c.jpg": "truth"})
    detector.info = read_model_info(deploy)
    evaluation = evaluate_images(records, detector)
    analysis = analyse(evaluation, 2, fixed_threshold=0.5)
    identity = {"manifest": str(manifest), "sha256": "0" * 64, "lines": 3}
    model = {"name": "m", "version": "1", "folder": str(deploy), "backend": "fake", "precision": "fp32"}
    summary = summarise(evaluation, analysis, dict(enumerate(NAMES)), model, identity, 0.5)
    report = tmp_path / "report.pdf"
    Report(summary, analysis, evaluation, dict(enumerate(NAMES)), pages=3).write_pdf(str(report))

    texts = page_texts(report)
    images = texts[1 + CHART_PAGES:]
    order = [re.search(r"image \d of 3(?: \(no error\))?: (\w\.jpg)", text).group(1) for text in images]  # type: ignore[union-attr]
    assert order == ["b.jpg", "a.jpg", "c.jpg"]  # 2 missed, then 1 false positive, then none
    assert "worst image 1 of 3" in images[0] and "image 3 of 3 (no error)" in images[2]
    expected = {"b.jpg": (0, 0, 2), "a.jpg": (1, 1, 0), "c.jpg": (1, 0, 0)}  # TP, FP, missed
    for offset, name in enumerate(order):
        found = strokes(report, 1 + CHART_PAGES + offset)
        tp, fp, missed = expected[name]
        # one stroke per box in its outcome's colour, plus the legend's one of each
        assert (count_color(found, TP_COLOR), count_color(found, FP_COLOR), count_color(found, MISSED_COLOR)) == (
            tp + 1, fp + 1, missed + 1), name
    assert "false positive: 1" in images[1] and "missed (true box not found): 2" in images[0]
    # the false positive is drawn where it is: right of and below every other box of a.jpg (PDF y grows upwards)
    page_a = strokes(report, 1 + CHART_PAGES + 1)
    red = [box for color, box in page_a if all(abs(x - y) < 2e-3 for x, y in zip(color, rgb(FP_COLOR)))]
    green = [box for color, box in page_a if all(abs(x - y) < 2e-3 for x, y in zip(color, rgb(TP_COLOR)))]
    spurious = max(red, key=lambda box: box[2] - box[0])  # the legend's patch is smaller than the box
    true_box = max(green, key=lambda box: box[2] - box[0])
    assert spurious[0] > true_box[2] and spurious[3] < true_box[3]


def test_pages_caps_the_image_pages_and_html_holds_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], deploy: Path
) -> None:
    manifest = write_data(tmp_path)
    report, site = tmp_path / "report.pdf", tmp_path / "site"
    code, out, err = run_cli(capsys, "evaluate", str(deploy), str(manifest), "--json", "--report", str(report),
                             "--html", str(site), "--pages", "2")
    assert code == 0, err
    summary = json.loads(out)
    assert pdf_pages(report) == 1 + CHART_PAGES + 2
    index = (site / "index.html").read_text()
    assert f"mAP       {summary['mAP']:.4f}" in index
    assert len(list((site / "images").glob("*.jpg"))) == 2
    # photographs are JPEG in the PDF, charts keep their lossless images (JPEG once broke the confusion matrix)
    from pypdf import PdfReader
    from pypdf.generic import ContentStream

    reader = PdfReader(str(report))

    def drawn_formats(index: int) -> set[str]:
        page = reader.pages[index]
        drawn = {str(ops[0]).lstrip("/") for ops, op in ContentStream(page.get_contents(), reader).operations
                 if op == b"Do"}
        return {image.name.rsplit(".", 1)[1] for image in page.images if image.name.rsplit(".", 1)[0] in drawn}

    assert drawn_formats(CHART_PAGES) == {"png"}  # the confusion matrix
    assert drawn_formats(CHART_PAGES + 1) == {"jpg"}  # the first image page
    for chart in ("curves-1.png", "scores-1.png", "confusion.png"):
        assert (site / chart).stat().st_size > 1000 and chart in index
    code, _, err = run_cli(capsys, "evaluate", str(deploy), str(manifest), "--html", str(site))
    assert code == 2 and "already exists" in err



def test_a_report_name_that_is_not_pdf_is_refused_before_any_work(tmp_path, capsys) -> None:
    from cloud_training.cli import main

    code = main(["evaluate", "models/demo", str(tmp_path / "none.manifest"), "--report", str(tmp_path / "r.txt")])
    assert code == 2 and not (tmp_path / "r.txt").exists()
    assert "the report is a PDF, give a .pdf name" in capsys.readouterr().err


def test_a_threshold_on_thin_evidence_is_flagged_and_not_recorded() -> None:
    """Page 1 cautions under the table, and model.json's entry leaves the class out (evaluate --record)."""
    from cloud_training.evaluation.report import _caution
    from cloud_training.evaluation.summary import recommended_thresholds, thin_evidence

    summary = {"classes": [
        {"name": "blue box", "ground_truth": 2, "recommended_threshold": {"score": 0.0267}},
        {"name": "yellow box", "ground_truth": 25, "recommended_threshold": {"score": 0.61}},
        {"name": "red box", "ground_truth": 1, "recommended_threshold": None},
    ]}
    assert thin_evidence(summary, 20) == {"blue box": 2}
    assert recommended_thresholds(summary, 20) == {"yellow box": 0.61}
    assert recommended_thresholds(summary) == {"blue box": 0.0267, "yellow box": 0.61}  # the report still shows it
    assert " ".join(_caution(summary)) == ("CAUTION: measured on fewer than 20 true boxes: blue box (2); such a"
                                           " threshold is noise, and evaluate --record records none for it.")
    assert _caution({"classes": summary["classes"][1:]}) == []
