"""``corp-astro experiments ...``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.table import Table

    from experiments.schemas import ResultsOut

__all__ = ["register"]


def _fmt(x: float | None, spec: str = ".4f") -> str:
    return "—" if x is None else format(x, spec)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:+.2f}%"


def _ci(ci: tuple[float, float] | None, pct: bool) -> str:
    if ci is None:
        return "—"
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]" if pct else f"[{ci[0]:+.4f}, {ci[1]:+.4f}]"


async def _load(name: str, alpha: float, mde: float, power: float) -> ResultsOut:
    from experiments import service
    from kernel.db import Database, resolve_database_url
    from kernel.errors import DomainError
    from kernel.settings import get_settings

    db = Database(resolve_database_url(get_settings()), max_size=1)
    await db.open()
    try:
        async with db.transaction() as conn:
            return await service.results(conn, name, alpha=alpha, mde=mde, power=power)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        await db.close()


def _variants_table(res: ResultsOut) -> Table:
    from rich.table import Table

    variants = Table(title="Variants")
    for col in ("variant", "users", "conversions", "rate", "expected share"):
        variants.add_column(col, justify="left" if col == "variant" else "right")
    for v in res.variants:
        variants.add_row(
            v.name + (" (control)" if v.name == res.control else ""),
            f"{v.users:,}",
            f"{v.conversions:,}",
            _pct(v.conversion_rate).lstrip("+") if v.conversion_rate is not None else "—",
            f"{v.expected_share * 100:.2f}%",
        )
    return variants


def _comparisons_table(res: ResultsOut) -> Table:
    from rich.table import Table

    comparisons = Table(
        title=f"Against {res.control} (Welch t-test; Holm-adjusted across {len(res.comparisons)})"
    )
    for col in (
        "variant",
        "abs. lift",
        f"{1 - res.alpha:.0%} CI",
        "rel. lift",
        f"{1 - res.alpha:.0%} CI (rel.)",
        "p",
        "p (Holm)",
        "significant",
        "P(beat control)",
        "p (sequential)",
    ):
        comparisons.add_column(col, justify="left" if col == "variant" else "right")
    for c in res.comparisons:
        comparisons.add_row(
            c.variant,
            _fmt(c.absolute_lift, "+.4f"),
            _ci(c.absolute_ci, pct=False),
            _pct(c.relative_lift),
            _ci(c.relative_ci, pct=True),
            _fmt(c.p_value),
            _fmt(c.adjusted_p_value),
            "yes" if c.significant else "no",
            _fmt(c.chance_to_beat_control, ".3f"),
            _fmt(c.sequential_p_value),
        )
    return comparisons


async def _results(name: str, alpha: float, mde: float, power: float) -> None:
    from rich.console import Console

    res = await _load(name, alpha, mde, power)
    console = Console()
    console.print(
        f"[bold]{res.experiment}[/bold]  status={res.status}  control={res.control}  phase={res.phase}  alpha={res.alpha}"
    )
    console.print(_variants_table(res))
    console.print(_comparisons_table(res))
    for c in res.comparisons:
        if c.note:
            console.print(f"{c.variant}: {c.note}")
    srm = "MISMATCH (p < 0.001): check the assignment pipeline" if res.srm.detected else "ok"
    console.print(f"SRM: p = {res.srm.p_value:.4g}, {srm}")
    p = res.power
    console.print(
        f"Power {p.power:.0%}: detectable relative lift now {_pct(p.mde_at_current_n)}; "
        f"users needed for {p.target_mde:.1%}: {p.users_needed_for_mde if p.users_needed_for_mde is not None else '—'}"
        + (f" ({p.note})" if p.note else "")
    )


def register(main: click.Group) -> None:
    """Attach the experiments commands to the ``corp-astro`` CLI."""

    @main.group("experiments")
    def experiments() -> None:
        """A/B experiments."""

    @experiments.command("results")
    @click.argument("name")
    @click.option("--alpha", default=0.05, show_default=True, type=float)
    @click.option(
        "--mde", default=0.05, show_default=True, type=float, help="Target relative lift for sizing."
    )
    @click.option("--power", default=0.8, show_default=True, type=float)
    def results(name: str, alpha: float, mde: float, power: float) -> None:
        """Print the significance results of experiment NAME as tables."""
        asyncio.run(_results(name, alpha, mde, power))
