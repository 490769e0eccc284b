// What the annotation, compare and console pages share: an API call (with the bearer token an admin's link
// carries, #token=..., kept in sessionStorage and taken out of the address bar; without one, the console's
// session cookie goes along), its error as the server worded it, and a status line.
"use strict";

const $ = (id) => document.getElementById(id);
let token = null;

async function api(method, path, body) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await response.json(); } catch (_) {}
  if (!response.ok) {
    const detail = data && data.detail !== undefined ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : response.statusText;
    const error = new Error(detail); error.status = response.status; throw error;
  }
  return data;
}

function say(text) { $("status").textContent = text; }

// Sets up the login form and starts the page: with the token from the link, from this tab's storage, or typed in.
function bootWithToken(storageKey, start) {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem(storageKey, token);
    start();
  });
  const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromLink) {
    sessionStorage.setItem(storageKey, fromLink);
    history.replaceState(null, "", location.pathname);  // the token does not stay in the address bar
  }
  token = sessionStorage.getItem(storageKey);
  if (token) start(); else $("login").hidden = false;
}
