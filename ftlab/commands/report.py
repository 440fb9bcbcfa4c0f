"""`main.py report [RESULTS_DIR]`: every run record under a directory, as tables and plots (ftlab.analysis.report).

The terminal gets the compact table (group, method, runs, test accuracy with its 95% CI, Δ, p, verdict); report.md
(every column, the explanations, the plots) and report.csv (the full table) go to the output directory, the plots
beside them. The points of a search or a curve inside the directory are left out (and said so): `report` of that
command's own directory reads them.
"""
from __future__ import annotations

from pathlib import Path

from ftlab.commands.job import Job
from ftlab.config import OneLineParser
from ftlab.console import render_table, say, short_path
from ftlab.errors import UserError
from ftlab.runs.directory import INDEX_NAME, check_output_dir
from ftlab.runs.record import RESULT_NAME

NAME = "report"
SUMMARY = "Tables, paired tests and plots of the run records under a directory (default runs/)."
REPORT_NAME = "report.md"
TABLE_NAME = "report.csv"


def build_parser(prog: str = "main.py") -> OneLineParser:
    parser = OneLineParser(prog=f"{prog} {NAME}", description="Tabulate, compare and plot every run record under "
                           "a directory.")
    parser.add_argument("results_dir", nargs="?", default="runs",
                        help=f"directory searched for {INDEX_NAME} and {RESULT_NAME} files (default: runs)")
    parser.add_argument("--output_dir", help=f"where {REPORT_NAME}, {TABLE_NAME} and the plots go (default: the "
                        "results directory)")
    parser.add_argument("--img_dir", help="where the PNG plots go (default: the output directory)")
    parser.add_argument("--per_run", action="store_true", help="also list every run (every seed) in its own row")
    parser.add_argument("--compare_to", help="reference for the paired tests: a group's name or id, or a run's name "
                        "(its group) (default: per dataset, the group with the best mean validation accuracy)")
    return parser


def prepare(argv: list[str]) -> Job:
    from ftlab.analysis.records import group_records, leave_out_sweeps, load_records

    args = build_parser().parse_args(argv)
    results_dir = Path(args.results_dir)
    if not results_dir.is_dir():
        raise UserError(f"report: {results_dir} is not a directory")
    output_dir = Path(args.output_dir or results_dir)
    img_dir = Path(args.img_dir or output_dir)
    check_output_dir(output_dir)
    check_output_dir(img_dir, "--img_dir")
    found = load_records(results_dir)
    records, left_out = leave_out_sweeps(found, results_dir)
    if not records:
        raise UserError(f"report: no run records under {results_dir} (looked for {INDEX_NAME} and {RESULT_NAME})"
                        + (f"; left out {'; '.join(left_out)}" if left_out else ""))
    groups = group_records(records)

    def run(stop: object) -> int:
        from ftlab.analysis import report
        from ftlab.analysis.plots import plot_all  # matplotlib loads only now
        from ftlab.analysis.records import run_labels
        from ftlab.runs.directory import write_atomic

        analysed = report.analyse(records, groups, args.compare_to)
        labels = run_labels(records)
        # Named after the results directory so that the plots of several sweeps can share one directory.
        plots = plot_all(records, analysed.summaries, img_dir, prefix=results_dir.resolve().name,
                         label=lambda record: labels[record.output_dir])
        text = report.render(analysed, results_dir, output_dir, plots, args.per_run, left_out)
        written = [write_atomic(output_dir / REPORT_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8")),
                   report.write_csv(output_dir / TABLE_NAME, analysed), *plots]
        references = ", ".join(f"{s.group.name} ({s.dataset})" for s in analysed.references)
        count = len(analysed.summaries)
        say(f"report of {results_dir}: {len(records)} runs in {count} configuration group{'s' * (count != 1)}; "
            f"paired tests against {references}")
        for task, members in report.by_task(analysed.summaries):
            columns = report.compact_columns(task)
            print(render_table(columns, [report.compact_row(s, analysed.outcomes.get(s.group.id)) for s in members],
                               right=("runs", columns[3], columns[4], "p (Holm)"), wrap=("group", "method")))
        for summary in analysed.summaries:  # below the table: what would need a column of its own
            if report.group_notes(summary):
                say(f"{summary.group.name}: {report.group_notes(summary).replace('**', '')}", prefix="  note")
        for line in left_out:
            say(f"left out {line}")
        say(f"written: {', '.join(short_path(path) for path in written)}")
        return 0

    return Job(run=run, libraries=False)
