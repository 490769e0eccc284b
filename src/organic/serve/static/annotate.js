// The annotation page: one utterance at a time in its conversation, a single-choice crowd label.
// The token comes from the link's fragment (#token=...) and is kept in sessionStorage; text goes in with textContent only.
"use strict";  // with role-page.js: $, api, say, bootWithToken

let current = null;
let labels = [];
let asked = 0;  // only the latest request for an utterance is shown


function query() {
  const params = new URLSearchParams({ sampling: $("sampling").value });
  if ($("sampling").value === "version") params.set("model_version", $("version").value);
  if ($("sender").value) params.set("sender", $("sender").value);
  return params.toString();
}

function bubble(sender, text, target) {
  const li = document.createElement("li");
  li.className = sender + (target ? " target" : "");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = sender === "bot" ? "bot" : "human";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(who, body);
  return li;
}

async function next() {
  say("");
  $("context").replaceChildren();
  $("labels").hidden = true;
  current = null;
  const mine = ++asked;
  let item;
  try {
    item = await api("GET", "/api/annotate/next?" + query());
  } catch (error) {
    if (mine === asked) say(error.message);
    return;
  }
  if (mine !== asked) return;
  current = item;
  const items = current.context.map((m) => bubble(m.sender, m.text, false));
  items.push(bubble(current.message.sender, current.message.text, true));
  $("context").replaceChildren(...items);
  for (const button of $("labels").children) {
    button.hidden = button.dataset.botOnly === "true" && current.message.sender !== "bot";
  }
  $("labels").hidden = false;
  $("context").lastChild.scrollIntoView({ block: "nearest" });
}

async function label(value) {  // keys and buttons wait (hidden) until the next item is shown, then the count moves
  if (!current) return;
  const item = current, shown = asked;
  current = null;
  $("labels").hidden = true;
  try {
    await api("POST", "/api/annotate", { message_id: item.message.id, label: value });
  } catch (error) {
    if (shown === asked) {  // still on screen (not skipped meanwhile): it can be labelled again
      current = item;
      $("labels").hidden = false;
    }
    say(error.message);
    return;
  }
  await next();
  try { await refreshCount(); } catch (error) { say(error.message); }
}

async function refreshCount() {
  const me = await api("GET", "/api/annotate/me");
  $("whoami").textContent = me.annotator + " · " + me.labelled + " labelled";
  return me;
}

async function start() {
  let me;
  try { me = await refreshCount(); } catch (error) {
    sessionStorage.removeItem("organic-annotator");
    $("login").hidden = false;
    say(error.message);
    return;
  }
  labels = me.labels;
  $("labels").replaceChildren(...labels.map((l, i) => {
    const b = document.createElement("button");
    b.textContent = (i + 1) + " " + l.label;
    b.dataset.label = l.value;
    b.dataset.botOnly = String(l.bot_only);
    if (l.value === "good") b.className = "good";
    b.addEventListener("click", () => label(l.value));
    return b;
  }));
  $("version").replaceChildren(...me.model_versions.map((name) => {
    const option = document.createElement("option");
    option.value = name; option.textContent = name;
    return option;
  }));
  $("login").hidden = true;
  $("work").hidden = false;
  await next();
}

$("sampling").addEventListener("change", () => { $("version-box").hidden = $("sampling").value !== "version"; next(); });
$("version").addEventListener("change", next);
$("sender").addEventListener("change", next);
$("skip").addEventListener("click", next);
document.addEventListener("keydown", (event) => {  // 1-7 pick a label
  if (!current || event.target.tagName === "INPUT" || event.target.tagName === "SELECT") return;
  const index = Number(event.key) - 1;
  const button = $("labels").children[index];
  if (button && !button.hidden) button.click();
});

bootWithToken("organic-annotator", start);
