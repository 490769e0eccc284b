"""The report's plots: matplotlib figures of the report's figures, as base64 PNGs for ``organic.analyze.html``."""

from __future__ import annotations

import base64
import io
from datetime import datetime

from organic.analyze.figures import KINDS, LABELS
from organic.taxonomy import CrowdLabel


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float = 7.0, height: float = 3.2, columns: int = 1):
    from matplotlib.figure import Figure  # the object API: no global pyplot state, safe in any thread

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(1, columns, sharey=columns > 1)


def _bars(shares: list[dict]) -> tuple[list[float], list[list[float]]]:
    """Bar heights (percent) and their error bars (to the ends of the 95% interval) for ``ax.bar(yerr=...)``."""
    values = [p["percent"] for p in shares]
    below = [v - p["ci95"][0] for v, p in zip(values, shares)]
    above = [p["ci95"][1] - v for v, p in zip(values, shares)]
    return values, [below, above]


def _histogram(histogram: list[list], color: str, *, small_ticks: bool = False, **labels: str) -> str:
    """``[[value, count], ...]`` as bars on a log scale; ``labels``: xlabel, ylabel and title."""
    fig, ax = _figure()
    ax.bar([str(v) for v, _ in histogram], [n for _, n in histogram], color=color)
    ax.set(**labels)
    ax.set_yscale("log")
    if small_ticks:  # many values: small, vertical labels
        ax.tick_params(axis="x", labelsize=7, rotation=90)
    return _png(fig)


def render_plots(figures: dict) -> dict[str, str]:
    """Base64 PNGs, by name, of the figures a person would rather look at than read."""
    images: dict[str, str] = {}

    histogram = figures["conversation_length"]["histogram"]
    if histogram:
        images["conversation_length"] = _histogram(histogram, "#4c72b0", xlabel="messages per conversation",
                                                   ylabel="conversations", title="Conversation length", small_ticks=True)

    activity = figures["activity_per_user"]["histogram"]
    if activity:
        images["activity_per_user"] = _histogram(activity, "#55a868", xlabel="conversations per user", ylabel="users",
                                                 title="Activity per user")

    versions = figures["model_versions"][:12]
    if versions:
        fig, ax = _figure()
        x = range(len(versions))
        for offset, key, color in ((-0.2, "thumbs_up", "#55a868"), (0.2, "thumbs_down", "#c44e52")):
            values, errors = _bars([v[key] for v in versions])
            ax.bar([i + offset for i in x], values, 0.4, yerr=errors, capsize=3, color=color, label=key.replace("_", " "))
        ax.set_xticks(list(x), [v["model_version"] for v in versions], rotation=20, ha="right", fontsize=8)
        ax.set(ylabel="% of bot messages", title="Thumbs per model version (95% CI)")
        ax.legend()
        images["model_versions"] = _png(fig)

    over_time = figures["over_time"]
    if len(over_time["rows"]) > 1:
        unit = over_time["unit"]
        fig, ax = _figure()
        t = [datetime.fromisoformat(r[unit]) for r in over_time["rows"]]
        ax.plot(t, [r["messages"] for r in over_time["rows"]], label="messages", color="#4c72b0")
        ax.set(ylabel=f"messages per {unit}", title="Activity over time")
        right = ax.twinx()
        right.plot(t, [r["thumbs_up"] for r in over_time["rows"]], color="#55a868", label="thumbs up")
        right.plot(t, [r["thumbs_down"] for r in over_time["rows"]], color="#c44e52", label="thumbs down")
        right.set_ylabel(f"thumbs per {unit}")
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        right.legend(handles, [h.get_label() for h in handles], loc="lower center", fontsize=8)
        fig.autofmt_xdate()
        images["over_time"] = _png(fig)

    reasons = figures["reasons"]
    if reasons:
        fig, ax = _figure(7, 0.5 + 0.4 * len(reasons))
        ax.barh([r["label"] for r in reasons][::-1], [r["percent"] for r in reasons][::-1], color="#c44e52")
        ax.set(xlabel="% of thumbs down", title="Thumbs-down reasons")
        images["reasons"] = _png(fig)

    table = figures["table2"]["combined"]
    if any(table[kind][sender]["n"] for kind in KINDS for sender in ("human", "bot")):
        fig, axes = _figure(10, 3.4, columns=2)
        for ax, sender in zip(axes, ("human", "bot")):
            width = 0.27
            for i, (kind, color) in enumerate(zip(KINDS, ("#8c8c8c", "#4c72b0", "#c44e52"))):
                cell = table[kind][sender]
                values, errors = _bars([cell[label] for label in LABELS])
                ax.bar([j + (i - 1) * width for j in range(len(LABELS))], values, width, yerr=errors, capsize=2,
                       color=color, label=f"{kind} (n={cell['n']})")
            ax.set_xticks(range(len(LABELS)), [CrowdLabel(label).label for label in LABELS], rotation=30, ha="right", fontsize=8)
            ax.set_title(f"{sender} utterances")
            ax.legend(fontsize=7)
        axes[0].set_ylabel("% of utterances (95% CI)")
        images["table2"] = _png(fig)

    buckets = figures["users_by_unsafe_rate"]["buckets"]
    if figures["users_by_unsafe_rate"]["users_with_a_verdict"]:
        fig, ax = _figure(6, 3)
        ax.bar([b["unsafe_share"] for b in buckets], [b["users"] for b in buckets], color="#8172b2")
        ax.set(xlabel="share of the user's messages that failed the safety check", ylabel="users",
               title="Users by unsafe messages")
        images["unsafe_users"] = _png(fig)
    return images
