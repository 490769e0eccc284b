// The web chat: consent, streamed replies, thumbs with reasons, the feedback question, "why this reply?".
// All user and model text is inserted with textContent, never as HTML.
"use strict";

const REASONS = [
  ["off_topic", "Off topic / ignoring me"], ["nonsensical", "Nonsensical / incorrect"],
  ["rude", "Rude / inappropriate"], ["spam", "Looks like spam / ads"], ["other", "Other"],
];
const SAFETY_REASONS = [["agree_sensitive", "Agree: a sensitive topic"], ["disagree_sensitive", "Disagree: it was fine"]];
const $ = (id) => document.getElementById(id);
let conversation = null;

async function api(method, path, body) {
  const response = await fetch(path, {
    method, credentials: "same-origin",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { const data = await response.json(); detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail); } catch (_) {}
    const error = new Error(detail); error.status = response.status; throw error;
  }
  return response;
}

function show(section) {
  $("consent").hidden = section !== "consent";
  $("chat").hidden = section !== "chat";
  $("new-chat").hidden = section !== "chat";
  $("my-data").hidden = section !== "chat";
}

// your data: the id, release consent to give or withdraw, and deletion ----------------------------------------
$("my-data").addEventListener("click", async () => {
  $("data-error").textContent = $("data-status").textContent = "";
  try {
    const me = await (await api("GET", "/api/me")).json();
    $("my-id").textContent = me.user_id;
    $("my-saved").textContent = me.save_conversations ? "Your conversations are saved to help improve the model."
      : "Your conversations are not saved: they are gone when the server restarts.";
    $("my-release-box").hidden = !me.save_conversations;
    $("my-release").checked = me.allow_release;
    $("data-dialog").showModal();
  } catch (error) { $("chat-error").textContent = error.message; }
});
$("my-release").addEventListener("change", async () => {
  const wanted = $("my-release").checked;
  try {
    const me = await (await api("PUT", "/api/me/consent", { allow_release: $("my-release").checked })).json();
    $("my-release").checked = me.allow_release;
    $("data-status").textContent = me.allow_release ? "Saved: public release allowed." : "Saved: public release withdrawn.";
  } catch (error) {
    $("my-release").checked = !wanted;  // not saved: show what the store still holds
    $("data-error").textContent = error.message;
  }
});
$("delete-me").addEventListener("click", async () => {
  if (!confirm("Delete all your conversations and ratings? This cannot be undone.")) return;
  try {
    await api("DELETE", "/api/me");
    $("data-dialog").close();
    $("messages").replaceChildren();
    conversation = null;
    show("consent");
    updateConsent();
  } catch (error) { $("data-error").textContent = error.message; }
});

// consent ------------------------------------------------------------------------------------------------
function updateConsent() {
  $("release").disabled = !$("save").checked;
  if (!$("save").checked) $("release").checked = false;
  $("start").disabled = !($("age").checked && $("terms").checked);
}
["age", "terms", "save", "release"].forEach((id) => $(id).addEventListener("change", updateConsent));
$("start").addEventListener("click", async () => {
  try {
    await api("POST", "/api/session", {
      age_confirmed: $("age").checked, accept_terms: $("terms").checked,
      save_conversations: $("save").checked, allow_release: $("release").checked,
    });
    await newConversation();
  } catch (error) { $("consent-error").textContent = error.message; }
});

// conversation -------------------------------------------------------------------------------------------
async function newConversation() {
  conversation = await (await api("POST", "/api/conversations")).json();
  $("messages").replaceChildren();
  $("version").textContent = "model: " + conversation.model_version;
  show("chat");
  $("input").focus();
}
$("new-chat").addEventListener("click", newConversation);

function addMessage(message) {
  const li = document.createElement("li");
  li.className = message.sender;
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = message.text;
  li.append(text);
  $("messages").append(li);
  if (message.id) finishMessage(li, message);
  li.scrollIntoView({ block: "end" });
  return li;
}

function finishMessage(li, message) {
  li.dataset.id = message.id;
  li.querySelector(".text").textContent = message.text;
  li.classList.toggle("canned", !!message.is_safety_controlled_response);
  if (message.sender !== "bot" || message.module) return;
  const controls = document.createElement("div");
  controls.className = "controls";
  const up = button("👍 Good", "Good reply", "thumb-up"), down = button("👎 Bad", "Bad reply", "thumb-down");  // words too: not every machine has an emoji font
  const why = button("Why this reply?", "Why did the bot say that?", "why");
  controls.append(up, down, why);
  li.append(controls);
  const reasons = message.is_safety_controlled_response ? SAFETY_REASONS : REASONS;
  up.addEventListener("click", () => rate(li, up.getAttribute("aria-pressed") === "true" ? null : "up"));
  down.addEventListener("click", () => {
    if (down.getAttribute("aria-pressed") === "true") return rate(li, null);
    showReasons(li, reasons);
  });
  why.addEventListener("click", async () => {
    const trace = await (await api("GET", `/api/messages/${li.dataset.id}/trace`)).json();
    $("trace").textContent = JSON.stringify(trace, null, 2);
    $("trace-dialog").showModal();
  });
  if (message.rating) pressed(li, message.rating.thumb);
}

function button(label, title, cls) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = label; b.title = title; b.className = cls;
  b.setAttribute("aria-pressed", "false");
  return b;
}

function pressed(li, thumb) {
  li.querySelector(".thumb-up").setAttribute("aria-pressed", String(thumb === "up"));
  li.querySelector(".thumb-down").setAttribute("aria-pressed", String(thumb === "down"));
}

function showReasons(li, reasons) {
  li.querySelector(".reasons")?.remove();
  const box = $("reasons-template").content.firstElementChild.cloneNode(true);
  for (const [value, label] of reasons) {
    const b = button(label, label, "reason");
    b.dataset.reason = value;
    b.addEventListener("click", () => { box.remove(); rate(li, "down", value); });
    box.append(b);
  }
  li.querySelector(".controls").append(box);
}

async function rate(li, thumb, reason) {
  try {
    const result = await (await api("PUT", `/api/messages/${li.dataset.id}/rating`, { thumb, reason: reason ?? null })).json();
    pressed(li, result.rating ? result.rating.thumb : null);
    if (result.follow_up) addMessage(result.follow_up);
  } catch (error) { $("chat-error").textContent = error.message; }
}

// sending and streaming ----------------------------------------------------------------------------------
$("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("input").value;
  if (!text.trim()) return;
  $("input").value = "";
  $("send").disabled = true;
  $("chat-error").textContent = "";
  try {
    const response = await api("POST", `/api/conversations/${conversation.id}/messages`, { text });
    let bot = null;
    for await (const [kind, data] of events(response)) {
      if (kind === "human") addMessage(data);
      else if (kind === "delta") { bot = bot || addMessage({ sender: "bot", text: "" }); bot.querySelector(".text").textContent += data.text; }
      else if (kind === "replace") { bot = bot || addMessage({ sender: "bot", text: "" }); bot.querySelector(".text").textContent = data.text; }
      else if (kind === "done") { bot = bot || addMessage({ sender: "bot", text: "" }); finishMessage(bot, data); }
    }
  } catch (error) { $("chat-error").textContent = error.message; $("input").value = text; }
  finally { $("send").disabled = false; $("input").focus(); }
});
$("input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("composer").requestSubmit(); }
});

async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end); buffer = buffer.slice(end + 2);
      const fields = {};  // split on "\n" only: a regex's "." and "$" also stop at U+2028/U+2029, which JSON leaves raw
      for (const line of block.split("\n")) {
        const colon = line.indexOf(": ");
        if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 2);
      }
      if (fields.event && fields.data) yield [fields.event, JSON.parse(fields.data)];
    }
  }
}

// start: straight to the chat if the session cookie is still good -------------------------------------
(async () => {
  try { await api("GET", "/api/conversations"); await newConversation(); }
  catch (_) { show("consent"); updateConsent(); }
})();
