"""``kora rules list | confirm | retire``: a steward curates the validation pattern library.

The library (``kora.validation_rules`` in the plan's target, or ``KORA_VALIDATION_RULES_URL``)
holds the rules that caught real errors, keyed by semantic profile (``type/storage kind``),
with how often each fired and how often a steward confirmed it. Confirmed rules apply inline
to every later migration with a column of the same profile; retired ones (built-ins included)
no longer apply there. Register with ``main.add_command(rules)`` in ``kora_assets/cli.py``.
"""
from __future__ import annotations

import json
import sys

import click

EXIT_USAGE = 2


def _fail(msg: str) -> None:
    click.echo(f"kora: {msg}", err=True)
    sys.exit(EXIT_USAGE)


def _library(plan_path: str | None, url: str | None):
    from checks.semantic.library import RuleLibrary, library_url
    from kora_assets.errors import explain

    try:
        if url:
            return RuleLibrary(url)
        if not plan_path:
            import os

            env = os.environ.get("KORA_VALIDATION_RULES_URL")
            if not env:
                _fail("name a plan (its target holds the library), or --url, or set KORA_VALIDATION_RULES_URL")
            return RuleLibrary(env)
        from kora_assets.plan.loader import load_plan

        return RuleLibrary(library_url(load_plan(plan_path)))
    except SystemExit:
        raise
    except Exception as exc:
        _fail(explain(exc))


def _where(f):
    f = click.option("--url", default=None, help="Library database URL (default: the plan's target, or "
                                                  "KORA_VALIDATION_RULES_URL).")(f)
    return click.argument("plan_path", metavar="[PLAN]", required=False)(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def rules() -> None:
    """The validation pattern library: list, confirm or retire learned semantic rules.

    \b
      kora rules list plan.yaml                 # every rule, with fired and confirmed counts
      kora rules list plan.yaml --status candidate
      kora rules confirm plan.yaml 12           # apply rule 12 to later migrations of its profile
      kora rules retire plan.yaml 3 --note "too strict for our data"   # built-ins too
    """


@rules.command("list")
@_where
@click.option("--status", type=click.Choice(["candidate", "confirmed", "retired"]), default=None)
@click.option("--profile", default=None, help="Only one semantic profile, e.g. birth_date/date.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_rules(plan_path, url, status, profile, as_json):
    """List the rules with how often they fired and were confirmed."""
    lib = _library(plan_path, url)
    try:
        found = lib.list(status=status, profile=profile)
    except Exception as exc:
        from kora_assets.errors import explain

        _fail(explain(exc))
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in found], indent=2, default=str, ensure_ascii=False))
        return
    if not found:
        click.echo("no validation rules yet (they are recorded by the semantic asset check as rules fire)")
        return
    head = ("id", "status", "profile", "rule", "origin", "fired", "confirmed", "what")
    rows = [head] + [(str(r.id), r.status, r.profile, r.name, r.origin, f"{r.fired_count:,}", str(r.confirmed_count),
                      _what(r)) for r in found]
    widths = [max(len(x[i]) for x in rows) for i in range(len(head))]
    for i, r in enumerate(rows):
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            click.echo("  ".join("-" * w for w in widths))


def _what(r) -> str:
    p = r.params
    if r.kind in ("min", "max"):
        return f"{r.kind} {p['value']:g}"
    if r.kind in ("in_set", "not_in_set") and "values" in p:
        vals = ", ".join(map(str, p["values"][:4])) + (" ..." if len(p["values"]) > 4 else "")
        return f"{'one of' if r.kind == 'in_set' else 'not'} {vals}"
    return (r.description or r.kind)[:60]


def _set(plan_path, url, rule_id: int, action: str, note: str | None):
    lib = _library(plan_path, url)
    try:
        r = lib.confirm(rule_id, note) if action == "confirm" else lib.retire(rule_id, note)
    except KeyError as exc:
        _fail(str(exc.args[0]))
    except Exception as exc:
        from kora_assets.errors import explain

        _fail(explain(exc))
    verb = "confirmed" if action == "confirm" else "retired"
    scope = ("applies inline to every later migration's columns of profile" if action == "confirm"
             else "no longer applies to profile")
    click.echo(f"rule {r.id} ({r.name}, {r.origin}) {verb}: {scope} {r.profile} "
               f"(fired {r.fired_count:,} times, confirmed {r.confirmed_count}x)")


def _plan_and_id(args: tuple[str, ...]) -> tuple[str | None, int]:
    if len(args) not in (1, 2) or not args[-1].isdigit():
        _fail("usage: kora rules confirm|retire [PLAN] RULE_ID (the id from `kora rules list`)")
    return (args[0] if len(args) == 2 else None), int(args[-1])


@rules.command()
@click.argument("args", nargs=-1, metavar="[PLAN] RULE_ID")
@click.option("--url", default=None, help="Library database URL (default: the plan's target, or "
                                          "KORA_VALIDATION_RULES_URL).")
@click.option("--note", default=None, help="Why (kept with the rule).")
def confirm(args, url, note):
    """Confirm a rule: it then applies to later migrations with columns of its profile."""
    plan_path, rule_id = _plan_and_id(args)
    _set(plan_path, url, rule_id, "confirm", note)


@rules.command()
@click.argument("args", nargs=-1, metavar="[PLAN] RULE_ID")
@click.option("--url", default=None, help="Library database URL (default: the plan's target, or "
                                          "KORA_VALIDATION_RULES_URL).")
@click.option("--note", default=None, help="Why (kept with the rule).")
def retire(args, url, note):
    """Retire a rule: it no longer applies (a retired built-in is skipped for its profile)."""
    plan_path, rule_id = _plan_and_id(args)
    _set(plan_path, url, rule_id, "retire", note)
