"""What a batch prints while it runs: editions per second and an ETA, on a terminal and in logs."""

from __future__ import annotations

import io
import re

from rich.console import Console
from rich.progress import Progress

from cptpub.batch.progress import PlainReporter, RateEtaColumn, RichReporter, rate_and_eta
from cptpub.batch.tasks import EditionOutcome, Failure


def test_rate_and_eta_text():
    assert rate_and_eta(250, 10_000, 100.0) == "2.50 editions/s, ETA 1h05m"  # 9,750 left at 2.5/s: 3,900 s
    assert rate_and_eta(3, 10, 6.0) == "0.50 editions/s, ETA 14s"
    assert rate_and_eta(10, 10, 20.0) == "0.50 editions/s, ETA 0s"
    assert rate_and_eta(0, 10, 5.0) == "– editions/s, ETA –", "no rate before the first edition"


def test_plain_lines_give_the_rate_and_eta():
    clock = iter([0.0, 0.0, 2.0, 5.0])  # created, plan, then one reading per edition
    out = io.StringIO()
    reporter = PlainReporter(Console(file=out, width=200), clock=lambda: next(clock))
    reporter.plan(total=12, to_build=10, skipped=2, executor="2 local worker processes", kernels="warm kernels")
    reporter.outcome(EditionOutcome(code="20702", key="k", seconds=1.96))
    reporter.outcome(EditionOutcome(code="20705", key="k", seconds=2.5, failure=Failure("no rates")))
    assert out.getvalue().splitlines() == [
        "12 codes: 10 to build, 2 up to date (skipped); 2 local worker processes, warm kernels",
        "[ 1/10] built 20702 in 2.0s  (0.50 editions/s, ETA 18s)",
        "[ 2/10] FAILED 20705: no rates  (0.40 editions/s, ETA 20s)",
    ]


def test_rich_bar_column_gives_the_rate_and_eta():
    clock = [0.0]
    bar = Progress(RateEtaColumn(), get_time=lambda: clock[0], console=Console(file=io.StringIO()))
    task = bar.add_task("building", total=10_000)
    assert RateEtaColumn().render(bar.tasks[0]).plain == "– editions/s, ETA –"
    clock[0] = 100.0
    bar.update(task, advance=250)
    assert RateEtaColumn().render(bar.tasks[0]).plain == "2.50 editions/s, ETA 1h05m"


def test_rich_reporter_shows_the_rate_and_eta_on_a_terminal():
    out = io.StringIO()
    reporter = RichReporter(Console(file=out, force_terminal=True, width=200))
    reporter.plan(total=3, to_build=3, skipped=0, executor="1 local worker process", kernels="warm kernels")
    reporter.outcome(EditionOutcome(code="20702", key="k", seconds=1.0))
    reporter.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert re.search(r"1/3 .*\d+\.\d\d editions/s, ETA \d+s", text), text
