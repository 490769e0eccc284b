"""The one command line, ``organic``: parses arguments and calls the packages; no logic of its own.

Each area's commands live in a module of their own (``data``, ``serving``, ``learning``, ``analysis``, ``evaluation``,
``loop``; what they share in ``options``); this module builds the root ``app`` from them. Typer lists the commands in
the order they are registered, the sub-groups after them, so the order below is the order of ``organic --help``."""

from __future__ import annotations

import typer

from organic.cli import analysis, data, evaluation, learning, loop, serving

app = typer.Typer(help="Improve an open chat model by learning from its organic conversations.", no_args_is_help=True)

app.command("export")(data.export)
app.command("serve")(serving.serve)
app.command("train")(learning.train_command)
app.command("analyze")(analysis.analyze)
app.command("trolls")(analysis.trolls)
app.command("simulate")(loop.simulate_command)
app.command("judge")(evaluation.judge_command)
app.command("eval")(evaluation.eval_command)
app.command("loop")(loop.loop_command)
app.command("versions")(serving.versions_command)
app.command("promote")(serving.promote)
app.command("ab")(serving.ab)
app.command("ab-report")(serving.ab_report)
app.command("rollback")(serving.rollback_command)

app.add_typer(data.db_app, name="db")
app.add_typer(data.import_app, name="import")
app.add_typer(data.user_app, name="user")
app.add_typer(data.token_app, name="token")
app.add_typer(learning.reward_app, name="reward")
app.add_typer(serving.model_app, name="model")


def main() -> None:
    app()
