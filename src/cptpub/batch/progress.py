"""Telling the user how a batch goes: a live progress bar on a terminal, one plain line per event otherwise
(logs, CI), and the same summary at the end."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from cptpub.batch.runner import BatchResult
from cptpub.batch.tasks import EditionOutcome
from cptpub.errors import cell_label


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def rate_and_eta(done: int, total: int, elapsed: float) -> str:
    """``2.50 editions/s, ETA 1h06m``: the average rate so far and the time the rest take at that rate."""
    if done <= 0 or elapsed <= 0:
        return "– editions/s, ETA –"
    rate = done / elapsed
    return f"{rate:.2f} editions/s, ETA {_duration(max(0, total - done) / rate)}"


def describe_failure(outcome: EditionOutcome) -> str:
    f = outcome.failure
    if f is None:
        return ""
    if f.notebook and f.executed_path:
        return f"{f.notebook} {cell_label(f.cell)}: {f.message} (executed notebook: {f.executed_path})"
    if f.notebook:
        return f"{f.notebook} {cell_label(f.cell)}: {f.message}"
    return f.message


class _BaseReporter:
    def __init__(self, console: Console, clock: Callable[[], float] = time.perf_counter) -> None:
        self.console = console
        self.clock = clock
        self.total = 0
        self.done = 0
        self.built = 0
        self.failed = 0
        self.skipped = 0
        self.started = clock()

    def engine(self, label: str, chosen_by_auto: bool) -> None:
        how = " (chosen by --engine auto)" if chosen_by_auto else ""
        self.console.print(f"engine: {escape(label)}{how}", highlight=False, soft_wrap=True)

    def _plan_line(self, total: int, to_build: int, skipped: int, executor: str, kernels: str) -> str:
        if not to_build:
            return f"{total} code{'s' if total != 1 else ''}: all up to date, nothing to build"
        return (
            f"{total} code{'s' if total != 1 else ''}: {to_build} to build, {skipped} up to date (skipped); "
            f"{executor}, {kernels}"
        )

    def _count(self, outcome: EditionOutcome) -> None:
        self.done += 1
        if outcome.ok:
            self.built += 1
        else:
            self.failed += 1


class PlainReporter(_BaseReporter):
    """One line per event, for logs and pipes."""

    def plan(self, total: int, to_build: int, skipped: int, executor: str, kernels: str) -> None:
        self.total, self.skipped = to_build, skipped
        self.started = self.clock()
        self.console.print(
            self._plan_line(total, to_build, skipped, executor, kernels), highlight=False, soft_wrap=True
        )

    def outcome(self, outcome: EditionOutcome) -> None:
        self._count(outcome)
        elapsed = self.clock() - self.started
        width = len(str(self.total))
        where = f"[{self.done:>{width}}/{self.total}]"
        if outcome.ok:
            line = f"{where} built {outcome.code} in {outcome.seconds:.1f}s"
        else:
            line = f"{where} FAILED {outcome.code}: {describe_failure(outcome)}"
        self.console.print(
            f"{escape(line)}  ({rate_and_eta(self.done, self.total, elapsed)})", highlight=False, soft_wrap=True
        )

    def interrupting(self) -> None:
        self.console.print("interrupt: stopping; finished editions are kept", highlight=False, soft_wrap=True)

    def close(self) -> None:
        pass


class RateEtaColumn(ProgressColumn):
    """Editions per second so far and the time the rest will take, as the plain reporter's lines say them."""

    def render(self, task) -> Text:
        elapsed = task.elapsed or 0.0
        return Text(rate_and_eta(int(task.completed), int(task.total or 0), elapsed), style="progress.data.speed")


class RichReporter(_BaseReporter):
    """A live bar: built / failed / skipped counts, rate and ETA; failures are printed above it as they happen."""

    def __init__(self, console: Console, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(console, clock)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "[green]{task.fields[built]} built[/] [red]{task.fields[failed]} failed[/] "
                "[dim]{task.fields[skipped]} skipped[/]"
            ),
            TimeElapsedColumn(),
            RateEtaColumn(),
            console=console,
            transient=False,
            get_time=clock,
        )
        self.task_id: TaskID | None = None

    def plan(self, total: int, to_build: int, skipped: int, executor: str, kernels: str) -> None:
        self.total, self.skipped = to_build, skipped
        self.console.print(
            self._plan_line(total, to_build, skipped, executor, kernels), highlight=False, soft_wrap=True
        )
        if to_build:
            self.task_id = self.progress.add_task("building", total=to_build, built=0, failed=0, skipped=skipped)
            self.progress.start()

    def outcome(self, outcome: EditionOutcome) -> None:
        self._count(outcome)
        if not outcome.ok:
            self.progress.console.print(
                f"[red]FAILED[/] {outcome.code}: {escape(describe_failure(outcome))}", highlight=False
            )
        if self.task_id is not None:
            self.progress.update(self.task_id, advance=1, built=self.built, failed=self.failed)

    def interrupting(self) -> None:
        if self.task_id is not None:
            self.progress.update(self.task_id, description="stopping")
        self.progress.console.print("[yellow]interrupt:[/] stopping; finished editions are kept", soft_wrap=True)

    def close(self) -> None:
        self.progress.stop()


def reporter_for(console: Console) -> PlainReporter | RichReporter:
    return RichReporter(console) if console.is_terminal else PlainReporter(console)


def print_summary(console: Console, result: BatchResult) -> None:
    """Counts, then one row per failed code: notebook, cell, executed notebook, error."""
    summary = Table(title="Build summary", show_header=False, title_justify="left")
    summary.add_column("what")
    summary.add_column("count", justify="right")
    summary.add_row("requested", str(len(result.requested)))
    summary.add_row("built", f"[green]{len(result.built)}[/]")
    summary.add_row("skipped (up to date)", str(len(result.skipped)))
    summary.add_row("failed", f"[red]{len(result.failed)}[/]" if result.failed else "0")
    if result.interrupted:
        summary.add_row("not built (interrupted)", f"[yellow]{len(result.not_built)}[/]")
    summary.add_row("time", _duration(result.seconds))
    if result.built:
        rate = len(result.built) / result.seconds if result.seconds else 0.0
        summary.add_row("rate", f"{rate:.2f} editions/s")
    console.print(summary)
    if result.failed:
        failures = Table(title="Failed editions", title_justify="left", expand=False)
        for column in ("code", "notebook", "cell", "executed notebook", "error"):
            failures.add_column(column, overflow="fold")
        for outcome in sorted(result.failed, key=lambda o: o.code):
            f = outcome.failure
            if f is None:
                continue
            failures.add_row(
                outcome.code,
                escape(f.notebook or "—"),
                str(f.cell) if f.cell is not None else "—",
                escape(f.executed_path or "—"),
                escape(f.message),
            )
        console.print(failures)
