"""The report's page: one self-contained HTML file built by hand, every value escaped, plots inline."""

from __future__ import annotations

import html

from organic.analyze.figures import KINDS, LABELS
from organic.taxonomy import CrowdLabel


def _cell(p: dict) -> str:
    digits = 2 if p["ci95"][1] < 1 else 1  # rare events (a 0.04% share) keep their digits
    return (f"{p['percent']:.{digits}f}% <small>({p['ci95'][0]:.{digits}f}&ndash;{p['ci95'][1]:.{digits}f}; "
            f"{p['count']:,}/{p['n']:,})</small>")


def _img(images: dict[str, str], name: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{images[name]}">' if name in images else ""


def render_html(figures: dict, images: dict[str, str]) -> str:
    """One self-contained page: every value is escaped; plots are inline PNGs."""
    e = lambda value: html.escape(str(value))  # noqa: E731
    rating = figures["rating"]
    counts = [("Users", figures["users"]), ("Conversations", figures["conversations"]),
              ("Utterances", figures["messages"]), ("Human utterances", figures["human_messages"]),
              ("Bot utterances", figures["bot_messages"]), ("Thumbs up", figures["thumbs_up"]),
              ("Thumbs down", figures["thumbs_down"]), ("Feedback items (thumbs + answers)", figures["feedback_items"]),
              ("Canned safety replies", figures["canned_safety_replies"]), ("Annotated utterances", figures["annotated_messages"])]
    parts = [f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>organic report</title>
<style>body{{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
th:first-child,td:first-child{{text-align:left}}small{{color:#666}}img{{max-width:100%;display:block;margin:1em 0}}
.note{{color:#555;font-size:13px}}</style></head><body>
<h1>organic report</h1><p class="note">Source: {e(figures['source'])}; generated {e(figures['generated_at'])}.
Percentages come with their 95% Wilson interval and count.</p>
<h2>Data (Table 1)</h2><table>{''.join(f'<tr><td>{e(k)}</td><td>{v:,}</td></tr>' for k, v in counts)}</table>
<h3>Ratings per bot message</h3><table><tr><th></th><th>share of bot messages</th></tr>
<tr><td>Rated</td><td>{_cell(rating['rated'])}</td></tr><tr><td>Thumbs up</td><td>{_cell(rating['thumbs_up'])}</td></tr>
<tr><td>Thumbs down</td><td>{_cell(rating['thumbs_down'])}</td></tr>
<tr><td>Up among thumbs</td><td>{_cell(rating['up_share_of_thumbs'])}</td></tr></table>"""]
    if figures["reasons"]:
        parts.append("<h3>Thumbs-down reasons</h3><table><tr><th>reason</th><th>share of thumbs down</th></tr>"
                     + "".join(f"<tr><td>{e(r['label'])}</td><td>{_cell(r)}</td></tr>" for r in figures["reasons"])
                     + "</table>" + _img(images, "reasons", "thumbs-down reasons"))
    length = figures["conversation_length"]["messages"]
    activity = figures["activity_per_user"]
    parts.append(f"""<h3>Conversations and users</h3><p>Messages per conversation: mean {e(length['mean'])},
median {e(length['median'])}, 90th percentile {e(length['p90'])}, max {e(length['max'])}. Conversations per user:
mean {e(activity['conversations_per_user']['mean'])}, max {e(activity['conversations_per_user']['max'])}.
Users who rated at least once: {_cell(activity['users_who_rated'])}.</p>
{_img(images, 'conversation_length', 'conversation length')}{_img(images, 'activity_per_user', 'activity per user')}""")
    if figures["model_versions"]:
        parts.append("<h3>Per model version</h3><table><tr><th>model version</th><th>bot messages</th><th>thumbs up</th>"
                     "<th>thumbs down</th><th>canned</th></tr>"
                     + "".join(f"<tr><td>{e(v['model_version'])}</td><td>{v['bot_messages']:,}</td><td>{_cell(v['thumbs_up'])}</td>"
                               f"<td>{_cell(v['thumbs_down'])}</td><td>{v['canned_safety_replies']:,}</td></tr>"
                               for v in figures["model_versions"])
                     + "</table>" + _img(images, "model_versions", "thumbs per model version"))
    parts.append(_img(images, "over_time", "activity over time"))
    parts.append(_table2_html(figures["table2"]["combined"], "Quality of utterances (Table 2)",
                              "Crowd majority label where present, classifier verdict otherwise. "
                              + figures["table2"]["definition"].capitalize() + "."))
    parts.append(_img(images, "table2", "Table 2 as bars"))
    for name, title in (("crowd", "Crowd labels only"), ("classifier", "Classifier verdicts only")):
        note = figures["table2"]["classifier_definition"] if name == "classifier" else "Majority label of each annotated utterance."
        parts.append(_table2_html(figures["table2"][name], title, note, level="h3"))
    agree = figures["agreement"]
    parts.append(f"""<h2>Annotator agreement</h2><p>{agree['items']:,} utterances with two or more labels
({agree['labels']:,} labels): Fleiss' kappa {e(agree['fleiss_kappa'])}, Krippendorff's alpha {e(agree['krippendorff_alpha'])};
Good vs not Good: {e(agree['good_vs_bad'])}.</p>""")
    if agree.get("annotator_pairs"):
        parts.append("<table><tr><th>annotators</th><th>shared</th><th>Cohen's kappa</th></tr>"
                     + "".join(f"<tr><td>{e(' / '.join(p['annotators']))}</td><td>{p['shared']}</td><td>{p['cohen_kappa']}</td></tr>"
                               for p in agree["annotator_pairs"]) + "</table>")
    unsafe = figures["users_by_unsafe_rate"]
    means = unsafe["mostly_adversarial_means"]
    parts.append(f"""<h2>Helpers and trolls</h2><p>Unsafe human messages: {_cell(figures['safety']['unsafe_human_messages'])};
adversarial conversations: {_cell(figures['conversation_kinds']['adversarial'])}. Users with {means['min_messages']} or more
judged messages of which over {means['unsafe_share_over']:.0%} failed the safety check, whom <code>organic trolls</code> flags
for it: {_cell(unsafe['mostly_adversarial'])} (it scores every user's labels as well).</p>{_img(images, 'unsafe_users', 'users by unsafe messages')}</body></html>""")
    return "\n".join(parts)


def _table2_html(table: dict, title: str, note: str, level: str = "h2") -> str:
    head = "".join(f"<th>{kind}: {sender}<br><small>n={table[kind][sender]['n']:,}</small></th>"
                   for kind in KINDS for sender in ("human", "bot"))
    body = "".join(
        f"<tr><td>{html.escape(CrowdLabel(label).label)}</td>"
        + "".join(f"<td>{_cell(table[kind][sender][label])}</td>" for kind in KINDS for sender in ("human", "bot"))
        + "</tr>"
        for label in LABELS)
    return f"<{level}>{html.escape(title)}</{level}><p class='note'>{html.escape(note)}</p><table><tr><th></th>{head}</tr>{body}</table>"
