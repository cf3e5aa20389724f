"""Reports from run records: HTML pages, Markdown and LaTeX tables, the model-card section, plots.

Pure functions from RunRecord(s) to text; matplotlib and Jinja2 (extra "report") load only when an
HTML page or a chart is made. See :mod:`wattprint.report.values` for the metric conventions
(accuracy, model, params, flops/macs).

    from wattprint.report import run_html, comparison_html, markdown_table, latex_table, model_card
"""

from __future__ import annotations

from wattprint.report.html import comparison_html, run_html
from wattprint.report.model_card import merge_model_card, model_card, model_card_section
from wattprint.report.pareto import pareto_front
from wattprint.report.tables import latex_table, markdown_table
from wattprint.report.writer import safe_filename, write_report

__all__ = [
    "comparison_html",
    "latex_table",
    "markdown_table",
    "merge_model_card",
    "model_card",
    "model_card_section",
    "pareto_front",
    "run_html",
    "safe_filename",
    "write_report",
]
