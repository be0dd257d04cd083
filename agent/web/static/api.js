// The console's one wrapper around the JSON API: same-origin fetch with the session's CSRF token on
// every write. Plate text comes from outside: put it into pages with textContent, never innerHTML.
"use strict";

const api = (() => {
  let csrf = null;

  async function session() {
    const r = await fetch("/api/session", { credentials: "same-origin" });
    const doc = await r.json();
    csrf = doc.csrf;
    return doc;
  }

  async function call(method, path, body) {
    if (method !== "GET" && csrf === null) await session();
    const headers = {};
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const doc = r.headers.get("Content-Type").startsWith("application/json") ? await r.json() : null;
    if (!r.ok) throw Object.assign(new Error((doc && doc.error) || r.statusText), { status: r.status, doc });
    return doc;
  }

  async function login(password) {
    const doc = await call("POST", "/api/login", { password });
    csrf = doc.csrf;
    return doc;
  }

  return { session, login, call, get: (p) => call("GET", p) };
})();
