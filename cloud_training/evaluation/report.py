"""The evaluation report an ML engineer acts on: a PDF (``--report``) and a browsable HTML folder (``--html``).

Page 1 is the summary (mAP, per-class AP and counts, the model's and data's identity, the thresholds used and the
recommended ones); then precision-recall curves, score histograms of true and false positives, the confusion
matrix with background; then the worst images first (most missed plus false positives), capped at ``--pages``, each
box coloured by outcome. The figures come from :mod:`.figures` and every number from the summary dict that
``evaluate --json`` prints, so the two cannot disagree.

Images are decoded again only for the pages drawn (the evaluation kept rows, not pixels), downscaled, and in the PDF
re-encoded as JPEG when pypdf is installed, so a report of many images stays a few MB. Files are written into a
temporary folder and moved into place (or uploaded) only once complete, so a failed run leaves no partial report.
"""

from __future__ import annotations

import html
import io as bytes_io
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from cloud_training import storage
from cloud_training.evaluation import figures
from cloud_training.evaluation.analysis import ImageReview, worst_first
from cloud_training.evaluation.loop import Evaluation
from cloud_training.evaluation.summary import Analysis
from cloud_training.lineage import describe_score
from cloud_training.manifest import io
from cloud_training.progress import progress

log = logging.getLogger(__name__)
DEFAULT_PAGES = 20
JPEG_QUALITY = 70


def _number(value: Optional[float], digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_lines(summary: Mapping[str, Any], pages: int, worst_shown: int) -> list[str]:
    """The first page's text: identity, metric, per-class table, outcomes, and what the following pages hold."""
    model, dataset = summary["model"], summary["dataset"]
    lines = [
        f"model     {model['name']} {model['version']}   ({model['folder']}; {model['backend']}, {model['precision']})",
    ]
    lineage = model.get("lineage") or {}
    if lineage:
        lines.append(f"          trained with {lineage.get('backend')}, {describe_score(lineage)}")
        for key in ("train_manifests", "validation_manifests"):
            for item in lineage.get(key) or []:
                lines.append(f"          {key.split('_')[0]:<10} {storage.basename(item['uri'])}  "
                             f"sha256 {item['sha256'][:12]}  {item['lines']} lines")
    else:
        lines.append("          (no lineage in model.json: convert a run that wrote lineage.json)")
    lines += [
        f"dataset   {dataset['manifest']}",
        f"          sha256 {dataset['sha256'][:16]}  {dataset['lines']} lines, {summary['images']} images",
        f"metric    {summary['metric']}, IoU > {summary['iou_threshold']:g}, scores >= {summary['score_threshold']:g}",
        f"mAP       {_number(summary['mAP'])}",
        "",
        f"{'class':<16} {'AP':>7} {'true':>6} {'dets':>6} {'TP':>5} {'FP':>6}   {'recommended':>11} {'prec':>6}"
        f" {'recall':>6}   {'shown':>6} {'recall':>6} {'FP':>5}",
    ]
    for item in summary["classes"]:
        choice = item["recommended_threshold"] or {}
        lines.append(
            f"{item['name'][:16]:<16} {_number(item['ap']):>7} {item['ground_truth']:>6} {item['detections']:>6}"
            f" {item['true_positives']:>5} {item['false_positives']:>6}   {_number(choice.get('score'), 2):>11}"
            f" {_number(choice.get('precision'), 2):>6} {_number(choice.get('recall'), 2):>6}"
            f"   {_number(item['shown_threshold'], 2):>6} {_number(item['recall_at_shown'], 2):>6}"
            f" {item.get('false_positives_at_shown', '-'):>5}"
        )
    outcome = summary["outcomes_at_shown_thresholds"]
    lines += [
        "",
        "true/dets/TP/FP: over every detection scoring >= the score threshold (what the metric sees, so FP",
        "runs high: most are low-scoring boxes a device never reports); shown/recall/FP: at the shown threshold.",
        "recommended: the score threshold maximising F1 on these images, with its precision and recall.",
        *_caution(summary),
        "shown: the threshold of the image pages and the confusion matrix (the recommended one unless",
        "--report-threshold fixes one), and the recall it gives.",
        "",
        f"at the shown thresholds: {outcome['true_positives']} true positives, {outcome['false_positives']} false "
        f"positives, {outcome['missed']} missed; {outcome['images_with_errors']} of {summary['images']} images "
        "have an error",
        "pages that follow: precision-recall curves, score histograms, confusion matrix,",
        f"then {worst_shown} image page(s), worst first (most missed + false positives; --pages {pages})",
    ]
    return lines


def _caution(summary: Mapping[str, Any]) -> list[str]:
    """A warning under the table when a recommendation rests on too few true boxes to be trusted."""
    from cloud_training.evaluation.summary import MIN_BOXES_FOR_THRESHOLD, thin_evidence

    thin = thin_evidence(summary, MIN_BOXES_FOR_THRESHOLD)
    if not thin:
        return []
    counts = ", ".join(f"{name} ({count})" for name, count in thin.items())
    return [f"CAUTION: measured on fewer than {MIN_BOXES_FOR_THRESHOLD} true boxes: {counts}; such a threshold is",
            "noise, and evaluate --record records none for it."]


class Report:
    """Draws the report's pages once and writes them as a PDF, an HTML folder, or both."""

    def __init__(self, summary: Mapping[str, Any], analysis: Analysis, evaluation: Evaluation,
                 names: Mapping[int, str], pages: int = DEFAULT_PAGES) -> None:
        self.summary = summary
        self.analysis = analysis
        self.evaluation = evaluation
        self.names = dict(names)
        self.pages = pages
        self.worst: list[ImageReview] = [r for r in worst_first(analysis.reviews) if r.errors][:pages]
        if len(self.worst) < pages:  # then error-free images with the most boxes found: what the model gets right
            right = sorted((r for r in analysis.reviews if not r.errors), key=lambda r: (-r.count("tp"), r.index))
            self.worst += right[: pages - len(self.worst)]

    def chart_figures(self) -> list[tuple[str, Any]]:
        analysis = self.analysis
        charts = [(f"curves-{i + 1}", f) for i, f in enumerate(
            figures.curves_pages(analysis.curves, analysis.recommended, self.names))]
        charts += [(f"scores-{i + 1}", f) for i, f in enumerate(
            figures.histogram_pages(analysis.curves, analysis.recommended, self.names))]
        charts.append(("confusion", figures.confusion_page(analysis.confusion, self.names, analysis.shown)))
        return charts

    def image_figures(self) -> Any:
        """(file stem, title, figure) of each worst image, decoding each image only now."""
        error_free = sum(1 for r in self.analysis.reviews if not r.errors)
        pages = progress(self.worst, "drawing report pages", unit="page", interval=0.0)  # a line per page
        for rank, review in enumerate(pages, start=1):
            record = self.evaluation.images[review.index].record
            image = io.load_image(record)
            where = storage.basename(record.resolved_ref)
            title = figures.image_title(rank, len(self.analysis.reviews), where, review, record.width,
                                        record.height, error_free if rank == 1 else None)
            yield f"{rank:03d}-{Path(where).stem}", title, figures.image_page(image, review, title, self.names)

    def write_pdf(self, target: str) -> None:
        from matplotlib.backends.backend_pdf import PdfPages

        folder = tempfile.mkdtemp(prefix="cloud-training-report-")
        try:
            path = os.path.join(folder, "report.pdf")
            with PdfPages(path, metadata={"Title": f"Evaluation of {self.summary['model']['name']}"}) as pdf:
                pdf.savefig(figures.summary_page(self.summary, summary_lines(self.summary, self.pages,
                                                                             len(self.worst))))
                charts = self.chart_figures()
                for _, figure in charts:
                    pdf.savefig(figure)
                for _, _, figure in self.image_figures():
                    pdf.savefig(figure)
            recompress_images(path, first_page=1 + len(charts))
            storage.put_file(path, target)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def write_html(self, target: Path, force: bool = False) -> None:
        """``target/index.html`` with the summary table, the charts as PNG and the worst images as JPEG."""
        from cloud_training.errors import OutputError

        if target.exists() and not force:
            raise OutputError(f"{target} already exists (use --force to replace it)")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        try:
            charts = []
            for stem, figure in self.chart_figures():
                figure.savefig(staging / f"{stem}.png", dpi=90)
                charts.append(f"{stem}.png")
            (staging / "images").mkdir()
            pictures = []
            for stem, title, figure in self.image_figures():
                figure.savefig(staging / "images" / f"{stem}.jpg", dpi=100, pil_kwargs={"quality": JPEG_QUALITY})
                pictures.append((f"images/{stem}.jpg", title))
            page = html_page(self.summary, summary_lines(self.summary, self.pages, len(self.worst)), charts, pictures)
            (staging / "index.html").write_text(page, encoding="utf-8")
            os.chmod(staging, 0o755)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def html_page(summary: Mapping[str, Any], lines: Sequence[str], charts: Sequence[str],
              pictures: Sequence[tuple[str, str]]) -> str:
    model = summary["model"]
    legend = " ".join(
        f'<span style="border:2px {"dashed" if key == "missed" else "solid"} {figures.OUTCOME_COLORS[key]};'
        f'padding:0 4px">{figures.OUTCOME_LABELS[key]}</span>' for key in ("tp", "fp", "missed")
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Evaluation of {html.escape(model['name'])} {html.escape(str(model['version']))}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px} pre{font-size:12px;background:#f6f6f6;"
        "padding:1em;overflow-x:auto} img{max-width:100%;border:1px solid #ddd;margin:6px 0}</style></head><body>",
        f"<h1>Evaluation of {html.escape(model['name'])} {html.escape(str(model['version']))}</h1>",
        f"<pre>{html.escape(chr(10).join(lines))}</pre>",
        "<h2>Curves, scores and confusions</h2>",
        *[f'<img src="{name}" alt="{name}">' for name in charts],
        f"<h2>Worst images first</h2><p>{legend}</p>",
        *[f'<h3>{html.escape(title.splitlines()[0])}</h3><img src="{src}" alt="{html.escape(title)}" loading="lazy">'
          for src, title in pictures],
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _drawn(page: Any, content_stream: Any) -> set[str]:
    """The names of the images a page's content draws (its ``Do`` operators)."""
    contents = page.get_contents()
    if contents is None:
        return set()
    operations = content_stream(contents, page.pdf).operations
    return {str(operands[0]).lstrip("/") for operands, operator in operations if operator == b"Do"}


def recompress_images(path: str, first_page: int = 0) -> bool:
    """Re-encode the photographs of pages ``first_page`` on as JPEG (matplotlib embeds them losslessly); False
    without pypdf. Chart pages are left alone: their images are small and have transparency JPEG cannot hold."""
    try:
        from pypdf import PdfReader, PdfWriter
    except ImportError:
        log.debug("pypdf is not installed: the report's images stay losslessly compressed")
        return False
    from PIL import Image
    from pypdf.generic import ContentStream

    writer = PdfWriter(clone_from=PdfReader(path))
    # matplotlib's pages share one XObject dictionary: every page lists every image, so go by what each page draws
    charts = {name for page in writer.pages[:first_page] for name in _drawn(page, ContentStream)}
    done: set[str] = set()
    photo_pages = writer.pages[first_page:]
    for page in progress(photo_pages, "compressing report images", total=len(photo_pages), unit="page",
                         interval=0.0):
        # only the images this page draws: iterating page.images would decode all of them on every page, since
        # they share one dictionary (that made the report's time grow with the square of --pages)
        drawn = sorted(_drawn(page, ContentStream) - charts - done)
        ids = set(page.images.keys()) if drawn else set()
        for name in drawn:
            if f"/{name}" not in ids:
                continue  # a form or another non-image XObject
            picture = page.images[f"/{name}"]
            image = picture.image
            if image is None or min(image.size) < 32:
                continue  # colour bars and masks: tiny, and JPEG would blur them
            buffer = bytes_io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
            picture.replace(Image.open(buffer), quality=JPEG_QUALITY)
            done.add(name)
    with open(path, "wb") as stream:
        writer.write(stream)
    return True
