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

async function next() {
  say("");
  showItem(null);
  try {
    showItem(await api("GET", "/api/compare/next"));
  } catch (error) {
    say(error.message);
  }
}

async function vote(choice) {
  if (!current) return;
  const item = current;
  current = null;  // no double vote while the request runs
  try {
    await api("POST", "/api/compare", { id: item.id, choice, reason: $("reason").value.trim() || null });
    await refreshCount();
    await next();
  } catch (error) {
    current = item;
    say(error.message);
  }
}

async function refreshCount() {
  const me = await api("GET", "/api/compare/me");
  $("whoami").textContent = me.rater + " · " + me.voted + " compared · " + me.remaining + " left";
  return me;
}

async function start() {
  try { await refreshCount(); } catch (error) {
    sessionStorage.removeItem("organic-rater");
    $("login").hidden = false;
    say(error.message);
    return;
  }
  $("login").hidden = true;
  $("work").hidden = false;
  await next();
}

for (const button of $("choices").querySelectorAll("button")) {
  button.addEventListener("click", () => vote(button.dataset.choice));
}
document.addEventListener("keydown", (event) => {  // a, t, b pick a choice outside the text fields
  if (!current || event.target.tagName === "INPUT" || event.target.tagName === "TEXTAREA") return;
  const choice = { a: "A", b: "B", t: "tie" }[event.key.toLowerCase()];
  if (choice) vote(choice);
});

bootWithToken("organic-rater", start);
