// The compare page: a context and two models' replies as A and B (the server decides the order and never says
// which model wrote which), one choice per item. The token comes from the link's fragment (#token=...) and is kept
// in sessionStorage; text goes in with textContent only.
"use strict";  // with role-page.js: $, api, say, bootWithToken

let current = null;

function bubble(message) {
  const li = document.createElement("li");
  li.className = message.role === "user" ? "user" : "assistant";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = message.role === "user" ? "human" : "bot";
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = message.content;
  li.append(who, body);
  return li;
}

function showItem(item) {
  current = item;
  $("context").replaceChildren(...(item ? item.context.map(bubble) : []));
  $("reply-A").textContent = item ? item.replies.A : "";
  $("reply-B").textContent = item ? item.replies.B : "";
  $("replies").hidden = !item;
  $("choices").hidden = !item;
  $("reason").value = "";
}

// While a vote is saved and the next item fetched, the page is busy: the choices are disabled, keys are refused
// and "Saving..." says so. The next item and the new count appear together, so "N compared" means the page is
// ready for the next vote.
function setBusy(busy) {
  $("work").setAttribute("aria-busy", busy ? "true" : "false");
  for (const button of $("choices").querySelectorAll("button")) button.disabled = busy;
  $("busy").hidden = !busy;
}

function showCount(me) {
  $("whoami").textContent = me.rater + " · " + me.voted + " compared · " + me.remaining + " left";
}

async function advance() {  // fetches the count and the next item, then shows both at once
  setBusy(true);
  try {
    const me = await api("GET", "/api/compare/me");
    let item = null, message = "";
    try { item = await api("GET", "/api/compare/next"); } catch (error) { message = error.message; }
    showCount(me);
    showItem(item);
    say(message);
  } catch (error) {
    showItem(null);
    say(error.message + " (reload the page to go on)");
  } finally {
    setBusy(false);
  }
}

async function vote(choice) {
  if (!current || $("work").getAttribute("aria-busy") === "true") return;
  setBusy(true);
  try {
    await api("POST", "/api/compare", { id: current.id, choice, reason: $("reason").value.trim() || null });
  } catch (error) {
    setBusy(false);
    say(error.message);
    return;
  }
  await advance();
}

async function start() {
  try { await api("GET", "/api/compare/me"); } catch (error) {  // the token is checked; advance shows the count
    sessionStorage.removeItem("organic-rater");
    $("login").hidden = false;
    say(error.message);
    return;
  }
  $("login").hidden = true;
  $("work").hidden = false;
  await advance();
}

for (const button of $("choices").querySelectorAll("button")) {
  button.addEventListener("click", () => vote(button.dataset.choice));
}
document.addEventListener("keydown", (event) => {  // a, t, b pick a choice outside the text fields
  if (event.target.tagName === "INPUT" || event.target.tagName === "TEXTAREA") return;
  const choice = { a: "A", b: "B", t: "tie" }[event.key.toLowerCase()];
  if (choice) vote(choice);
});

bootWithToken("organic-rater", start);
