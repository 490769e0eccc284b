// The operator's console: log in with the admin token (sent once, in a POST body; a session cookie keeps the login),
// then fill each panel from its JSON endpoint under /api/admin/console/ and draw the plots as inline SVG.
// Text from the store goes in with textContent only, never as HTML.
"use strict";

// $, api and say come from role-page.js
const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
const DAYS = 30;


// building the page ------------------------------------------------------------------------------------------
function el(tag, props, ...children) {
  const node = Object.assign(document.createElement(tag), props || {});
  node.append(...children.filter((c) => c !== null && c !== undefined).map((c) => (c instanceof Node ? c : String(c))));
  return node;
}

function table(headers, rows) {
  const cell = (c) => (typeof c === "number" ? el("td", { className: "num" }, String(c)) : el("td", null, c));
  return el("table", null, el("thead", null, el("tr", null, ...headers.map((h) => el("th", null, h)))),
            el("tbody", null, ...rows.map((cells) => el("tr", null, ...cells.map(cell)))));
}

function text(value) { return el("span", { className: "text" }, value); }
function rate(p) { return `${p.percent.toFixed(1)}% [${p.ci95[0].toFixed(1)}, ${p.ci95[1].toFixed(1)}] (${p.count}/${p.n})`; }
function share(x) { return `${(100 * x).toFixed(0)}%`; }
function fill(panel, ...nodes) { $(panel).querySelector(".body").replaceChildren(...nodes); }
function note(words) { return el("p", { className: "muted" }, words); }

// plots: inline SVG ------------------------------------------------------------------------------------------
const W = 340, H = 180, M = { left: 40, right: 10, top: 22, bottom: 24 };

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

function label(x, y, words, attrs) { const t = svg("text", { x, y, ...attrs }); t.textContent = words; return t; }
function tick(v) { return Math.abs(v) >= 10 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1); }

// A plot's frame: a title, a y axis from 0 to yMax, the first and last x labels; returns [svg, x(i), y(v)].
function frame(title, yMax, xLabels, unit) {
  const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  const top = yMax > 0 ? yMax : 1;
  const y = (v) => H - M.bottom - (v / top) * (H - M.top - M.bottom);
  const step = (W - M.left - M.right) / Math.max(xLabels.length, 1);
  const x = (i) => M.left + step * (i + 0.5);
  root.append(label(M.left, 13, title, { class: "title" }));
  for (const f of [0, 0.5, 1]) {
    root.append(svg("line", { x1: M.left, x2: W - M.right, y1: y(f * top), y2: y(f * top), stroke: "#e5e5e5" }),
                label(2, y(f * top) + 3, tick(f * top) + unit));
  }
  if (xLabels.length) {
    root.append(label(M.left, H - 6, xLabels[0]), label(W - M.right, H - 6, xLabels[xLabels.length - 1], { "text-anchor": "end" }));
  }
  return [root, x, y, step];
}

function plot(name, node) { const box = el("div", { className: "plot" }, node); box.dataset.plot = name; return box; }

// One bar per x label.
function columns(title, xLabels, values) {
  const [root, x, y, step] = frame(title, Math.max(...values, 0), xLabels, "");
  values.forEach((v, i) => {
    const bar = svg("rect", { x: x(i) - step * 0.4, y: y(v), width: step * 0.8, height: y(0) - y(v), fill: COLOURS[0] });
    bar.append(svg("title", {}, `${xLabels[i]}: ${v}`));
    root.append(bar);
  });
  return root;
}

// Lines over x labels, one per series ({name, points: [{y, low, high} | null]}), with interval whiskers and a legend.
function lines(title, xLabels, series, unit) {
  const highest = Math.max(0, ...series.flatMap((s) => s.points.filter(Boolean).map((p) => p.high ?? p.y)));
  const [root, x, y] = frame(title, highest, xLabels, unit);
  series.forEach((s, k) => {
    const colour = COLOURS[k % COLOURS.length];
    const drawn = s.points.map((p, i) => (p ? [x(i), y(p.y)] : null)).filter(Boolean);
    root.append(svg("polyline", { points: drawn.map((xy) => xy.join(",")).join(" "), fill: "none", stroke: colour, "stroke-width": 1.5 }));
    s.points.forEach((p, i) => {
      if (!p) return;
      if (p.low !== undefined) root.append(svg("line", { x1: x(i), x2: x(i), y1: y(p.low), y2: y(p.high), stroke: colour, opacity: 0.4 }));
      const dot = svg("circle", { cx: x(i), cy: y(p.y), r: 2.5, fill: colour });
      dot.append(svg("title", {}, `${s.name} ${xLabels[i]}: ${tick(p.y)}${unit}` + (p.low !== undefined ? ` [${tick(p.low)}, ${tick(p.high)}]` : "")));
      root.append(dot);
    });
    root.append(label(W - M.right, M.top + 4 + 12 * k, s.name, { "text-anchor": "end", fill: colour }));
  });
  return root;
}

// Horizontal rows: a bar (value) or a dot with its interval (p: {percent, ci95}), with a label and the figure.
function rows(title, items) {
  const width = W + 60, height = M.top + 8 + 20 * Math.max(items.length, 1);
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  root.append(label(4, 13, title, { class: "title" }));
  const left = 150, right = width - 80;
  const top = Math.max(1e-9, ...items.map((r) => (r.p ? r.p.ci95[1] : r.value)));
  const x = (v) => left + (v / top) * (right - left);
  items.forEach((r, i) => {
    const y = M.top + 10 + 20 * i;
    const name = label(left - 6, y + 4, r.name.length > 26 ? r.name.slice(0, 25) + "…" : r.name, { "text-anchor": "end" });
    name.append(svg("title", {}, r.name));
    root.append(name);
    if (r.p) {
      root.append(svg("line", { x1: x(r.p.ci95[0]), x2: x(r.p.ci95[1]), y1: y, y2: y, stroke: COLOURS[1] }),
                  svg("circle", { cx: x(r.p.percent), cy: y, r: 3.5, fill: COLOURS[1] }));
    } else {
      root.append(svg("rect", { x: left, y: y - 6, width: Math.max(1, x(r.value) - left), height: 12, fill: COLOURS[0] }));
    }
    root.append(label(right + 4, y + 4, r.figure));
  });
  return root;
}

// the panels -------------------------------------------------------------------------------------------------
async function loadTraffic() {
  const t = await api("GET", `/api/admin/console/traffic?days=${DAYS}`);
  const days = t.days.map((d) => d.day.slice(5));
  const total = t.days.reduce((n, d) => n + d.conversations, 0);
  fill("traffic",
    el("div", { className: "plots" },
      plot("conversations", columns("Conversations per day", days, t.days.map((d) => d.conversations))),
      plot("messages", columns("Messages per day", days, t.days.map((d) => d.messages))),
      plot("active-users", columns("Active users per day", days, t.days.map((d) => d.active_users))),
      plot("version-shares", rows("Conversations by model version", t.versions.map((v) => ({ name: v.name, value: v.percent, figure: `${v.percent.toFixed(1)}% (${v.count})` }))))),
    note(`The last ${DAYS} days, since ${t.since}: ${total} conversations.`));
}

async function loadFeedback() {
  const f = await api("GET", `/api/admin/console/feedback?days=${DAYS}`);
  const days = [...new Set(f.days.map((d) => d.day))];
  const perDay = (thumb) => [...new Set(f.days.map((d) => d.version))].map((version) => ({
    name: version,
    points: days.map((day) => {
      const r = f.days.find((d) => d.day === day && d.version === version);
      return r ? { y: r[thumb].percent, low: r[thumb].ci95[0], high: r[thumb].ci95[1] } : null;
    }),
  }));
  const canned = f.canned;
  fill("feedback",
    el("div", { className: "plots" },
      plot("down-by-version", rows("Thumbs down per bot message, 95% CI", f.versions.map((v) => ({ name: v.name, p: v.down, figure: `${v.down.percent.toFixed(1)}%` })))),
      plot("up-by-version", rows("Thumbs up per bot message, 95% CI", f.versions.map((v) => ({ name: v.name, p: v.up, figure: `${v.up.percent.toFixed(1)}%` })))),
      plot("down-per-day", lines("Thumbs down per bot message by day (%)", days.map((d) => d.slice(5)), perDay("down"), "%")),
      plot("up-per-day", lines("Thumbs up per bot message by day (%)", days.map((d) => d.slice(5)), perDay("up"), "%")),
      plot("reasons", rows("Reasons given on thumbs down", f.reasons.map((r) => ({ name: r.label, value: r.count, figure: `${r.count} (${r.percent.toFixed(0)}%)` }))))),
    table(["model version", "conversations", "bot messages", "thumbs up", "thumbs down"],
          f.versions.map((v) => [v.name, v.conversations, v.bot_messages, rate(v.up), rate(v.down)])),
    el("p", { id: "canned" }, `Canned safety replies: ${rate(canned.safety)} of bot messages; canned replies after a model failure: ${rate(canned.crash)}.`),
    el("h3", null, "Latest answers to “what should I have said?”"),
    f.answers.length ? table(["when", "version", "reason", "the reply", "what it should have said"],
                             f.answers.map((a) => [a.at.slice(0, 16).replace("T", " "), a.version || "", a.reason || "", text(a.reply), text(a.answer)]))
                     : note("No answers yet."));
}

async function loadAB() {
  const a = await api("GET", "/api/admin/console/ab");
  const plan = Object.keys(a.plan).length ? a.plan : a.serving;
  const inputs = a.versions.map((v) => {
    const input = el("input", { type: "number", min: 0, max: 100, step: "any", value: String(+(100 * (plan[v.name] || 0)).toFixed(2)) });
    input.dataset.version = v.name;
    input.setAttribute("aria-label", `share of ${v.name} (%)`);
    return input;
  });
  const promote = (v) => {
    const button = el("button", { textContent: "Promote" });
    button.dataset.version = v.name;
    button.addEventListener("click", () => act(`Serve ${v.name} to every new conversation?`, "/api/admin/console/promote", { version: v.name, based_on: a.plan_id }));
    return button;
  };
  const apply = el("button", { id: "apply-shares", textContent: "Apply shares" });
  apply.addEventListener("click", () => {
    const shares = {};
    for (const input of inputs) if (+input.value > 0) shares[input.dataset.version] = +input.value / 100;
    const words = Object.entries(shares).map(([name, s]) => `${name} ${share(s)}`).join(", ");
    act(`Split new conversations: ${words}?`, "/api/admin/console/ab", { shares, based_on: a.plan_id });
  });
  const back = el("button", { id: "rollback", textContent: "Roll back" });
  back.addEventListener("click", () => act("Go back to the serving plan before the newest one?", "/api/admin/console/rollback", { based_on: a.plan_id }));
  const live = a.live.map((v) => [v.name + (v.incumbent ? " (incumbent)" : ""), v.conversations, v.bot_messages, rate(v.up), rate(v.down),
                                  v.incumbent || v.down_p === null ? "" : v.down_p.toPrecision(3)]);
  fill("ab",
    note(Object.keys(a.plan).length ? "The serving plan in the store, and the shares this server draws new conversations by:"
                                    : "No serving plan was ever set: this server serves its configured model."),
    table(["model version", "status", "plan", "this server", "new share (%)", ""],
          a.versions.map((v, i) => [v.name, v.status, share(a.plan[v.name] || 0), share(a.serving[v.name] || 0), inputs[i], promote(v)])),
    el("div", { className: "actions" }, apply, back, el("span", { className: "muted" }, "each asks before it acts; the shares must add up to 100%")),
    el("h3", null, "Live thumbs by version"),
    a.live.length ? el("div", { className: "plots" },
                       plot("ab-down", rows("Thumbs down per bot message, 95% CI", a.live.map((v) => ({ name: v.name, p: v.down, figure: `${v.down.percent.toFixed(1)}%` })))))
                  : note("No version has served a conversation yet."),
    table(["model version", "conversations", "bot messages", "thumbs up", "thumbs down", "p vs incumbent (Fisher, thumbs down)"], live));
}

async function loadAudit() {
  const entries = await api("GET", "/api/admin/console/audit?limit=50");
  const plan = (p) => Object.entries(p || {}).map(([name, s]) => `${name} ${share(s)}`).join(", ");
  const said = (d) => (d && d.message ? (d.round ? `round ${d.round}: ` : "") + d.message : "");  // the watcher's rows say what happened
  const details = (e) => (e.details && "after" in e.details ? `${plan(e.details.before) || "(none)"} → ${plan(e.details.after)}` + (said(e.details) ? ` (${said(e.details)})` : "")
                                                            : said(e.details) || JSON.stringify(e.details));
  $("audit").replaceChildren(entries.length
    ? table(["when", "who", "action", "details"], entries.map((e) => [e.at.slice(0, 19).replace("T", " "), e.who, e.action, details(e)]))
    : note("Nothing recorded yet."));
}

async function loadPeople() {
  const p = await api("GET", "/api/admin/console/people");
  fill("people", el("h3", null, "Users by ratings given"),
    p.raters.length ? table(["user", "ratings", "thumbs up", "thumbs down"], p.raters.map((r) => [r.user, r.ratings, r.thumbs_up, r.thumbs_down]))
                    : note("Nobody has rated a reply yet."));
}

async function findTrolls() {
  $("trolls").replaceChildren(note("scoring users…"));
  try {
    const t = await api("GET", `/api/admin/console/trolls?features=${$("troll-features").value}`);
    const summary = note(`${t.flagged.length} of ${t.users} users flagged (${t.judged} with a trust score, ${t.too_few_labels} with too few ratings for one; ${t.features}).`);
    $("trolls").replaceChildren(el("h3", null, "Flagged by troll detection"), ...(t.message ? [el("p", { id: "trolls-message" }, t.message)] : []), summary,
      t.flagged.length ? table(["user", "ratings", "trust", "unsafe messages", "why"],
                               t.flagged.map((u) => [u.user, u.ratings, u.trust === null ? "–" : u.trust.toFixed(2), `${u.unsafe_messages}/${u.messages}`, text(u.why)]))
                       : note("Nobody is flagged."));
  } catch (error) {
    $("trolls").replaceChildren(el("p", { className: "error" }, error.message));
  }
}

async function loadAnnotation() {
  const a = await api("GET", "/api/admin/console/annotation");
  const g = a.agreement;
  fill("annotation",
    el("h3", null, "Annotators"),
    a.annotators.length ? table(["annotator", "labels", "first", "last"], a.annotators.map((p) => [p.name, p.labels, p.first.slice(0, 16).replace("T", " "), p.last.slice(0, 16).replace("T", " ")]))
                        : note("No annotator has labelled anything yet."),
    note(`${a.imported_labels} imported crowd labels (no annotator names).`),
    el("p", { id: "agreement" }, g.fleiss_kappa === null ? "Agreement: no utterance has been labelled twice yet."
      : `Agreement over ${g.items} utterances labelled more than once (${g.labels} labels): Fleiss' kappa ${g.fleiss_kappa}, Krippendorff's alpha ${g.krippendorff_alpha}; good vs bad: kappa ${g.good_vs_bad.fleiss_kappa}.`),
    a.pairs.length ? table(["annotators", "shared utterances", "Cohen's kappa"], a.pairs.map((p) => [p.annotators.join(" & "), p.shared, p.cohen_kappa]))
                   : note("No two annotators share 5 utterances yet."),
    el("h3", null, "Raters (pairwise comparisons)"),
    a.raters.length ? table(["rater", "votes"], a.raters.map((r) => [r.name, r.votes])) : note("No rater has voted yet."));
}

function evalSummary(e) {
  if (!e) return "no eval recorded";
  const parts = [];
  if (e.breakdown && e.breakdown.bad) parts.push(`judged bad ${rate(e.breakdown.bad)}`);
  const g = e.guards || {};
  if (g.words && g.words.mean !== null) parts.push(`words ${g.words.mean}`);
  if (g.copied_from_user && g.copied_from_user.mean !== null) parts.push(`copied ${g.copied_from_user.mean}`);
  if (g.cut) parts.push(`cut ${g.cut.percent.toFixed(0)}%`);
  if (g.perplexity_human !== undefined && g.perplexity_human !== null) parts.push(`perplexity ${g.perplexity_human.toFixed(2)}`);
  if (e.paired) parts.push(`vs ${e.paired.against}: ${e.paired.bad_rate_change > 0 ? "+" : ""}${e.paired.bad_rate_change} pts, p=${e.paired.p_value.toPrecision(3)}`);
  return parts.length ? parts.join("; ") : JSON.stringify(e);
}

async function loadModels() {
  const models = await api("GET", "/api/admin/console/models");
  const data = (d) => ("examples" in d ? `${d.examples} examples` + ("positives" in d ? ` (${d.positives} good, ${d.negatives} bad)` : "") : "");
  const run = (t) => ["train_loss" in t ? `loss ${(+t.train_loss).toFixed(3)}` : "", "steps" in t ? `${t.steps} steps` : ""].filter(Boolean).join(", ");
  fill("models", models.length
    ? table(["model version", "parent", "method", "status", "share", "training data", "training", "eval"],
            models.map((m) => [m.name, m.parent || "", m.method || "base", m.status, share(m.traffic_share), data(m.data), run(m.training), text(m.eval ? evalSummary(m.eval) : m.not_evaluated)]))
    : note("No model version is registered."));
}

async function loadReport() {
  const r = await api("GET", "/api/admin/console/report");
  if (!r.available) { fill("report", el("p", { id: "report-message" }, r.message)); return; }
  const link = el("a", { href: "/admin/report", target: "_blank", rel: "noopener", textContent: "Open the report" });
  fill("report", el("p", null, link, ` (written ${r.written_at.replace("T", " ")} in ${r.folder})`),
    Object.keys(r.figures).length ? table(Object.keys(r.figures).map((k) => k.replace("_", " ")), [Object.values(r.figures)]) : "");
}

const PANELS = { traffic: loadTraffic, feedback: loadFeedback, ab: loadAB, people: loadPeople, annotation: loadAnnotation, models: loadModels, report: loadReport };

async function load(names) {  // each panel on its own: one that fails says so and the others still fill
  await Promise.all(names.map(async (name) => {
    try { await PANELS[name](); } catch (error) {
      if (error.status === 401) { showLogin(error.message); return; }
      fill(name, el("p", { className: "error" }, error.message));
    }
  }));
}

async function loadAll() { await Promise.all([load(Object.keys(PANELS)), loadAudit().catch((e) => say(e.message))]); }

// actions: each one confirmed first --------------------------------------------------------------------------
function confirmed(question) {
  return new Promise((resolve) => {
    const dialog = $("confirm");
    const done = (answer) => { dialog.onclose = null; if (dialog.open) dialog.close(); resolve(answer); };
    $("confirm-text").textContent = question;
    $("confirm-yes").onclick = () => done(true);
    $("confirm-no").onclick = () => done(false);
    dialog.onclose = () => done(false);  // Escape
    dialog.showModal();
  });
}

async function act(question, path, body) {
  say("");
  if (!(await confirmed(question))) return;
  try {
    const result = await api("POST", path, body);
    $("ab-done").textContent = "Now serving " + Object.entries(result.serving).map(([name, s]) => `${name} ${share(s)}`).join(", ")
      + ` (audit entry ${result.audit_id}).`;
  } catch (error) {
    say(error.message);
  }
  await Promise.all([load(["ab", "models", "traffic"]), loadAudit().catch((e) => say(e.message))]);
}

// login ------------------------------------------------------------------------------------------------------
function showLogin(message) {
  $("console").hidden = $("logout").hidden = $("refresh").hidden = true;
  $("login").hidden = false;
  $("whoami").textContent = "";
  say(message || "");
}

async function start() {
  let me;
  try { me = await api("GET", "/api/admin/console/me"); } catch (error) {
    showLogin(error.status === 401 ? "" : error.message);
    return;
  }
  $("login").hidden = true;
  $("console").hidden = $("logout").hidden = $("refresh").hidden = false;
  $("whoami").textContent = "logged in as " + me.who;
  await loadAll();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("");
  try {
    await api("POST", "/api/admin/console/login", { token: $("token").value, name: $("name").value.trim() || "admin" });
  } catch (error) {
    say(error.message);
    return;
  } finally {
    $("token").value = "";  // the cookie holds the session from here on
  }
  await start();
});

$("logout").addEventListener("click", async () => {
  try { await api("POST", "/api/admin/console/logout"); } catch (error) { say(error.message); }
  showLogin();
});

$("refresh").addEventListener("click", () => { say(""); loadAll(); });
$("score-trolls").addEventListener("click", findTrolls);

$("link-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("");
  try {
    const link = await api("POST", "/api/admin/console/links", { role: $("link-role").value, name: $("link-name").value.trim() });
    $("link-out").value = location.origin + link.url;
    $("link-box").hidden = false;
    loadAudit().catch((e) => say(e.message));
  } catch (error) {
    say(error.message);
  }
});

start();
