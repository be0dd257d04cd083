// What every console page shares: the header, the login gate, small DOM functions. Plate text and
// labels come from outside: every value goes into the page as textContent (el(), text()), never
// innerHTML. Pages register with console.start(name, run); run(main) draws into <main>.
"use strict";

const ui = (() => {
  const PAGES = [["live", "Live"], ["events", "Events"], ["rules", "Rules"], ["usage", "Usage"]];

  // el("td", {class: "plate"}, "AB12CDE", child...): attributes as properties or attributes, text as textContent
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k in node && typeof v !== "string") node[k] = v;
      else node.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
  }

  function action(a) { return el("span", { class: a || "none" }, a || "none"); }

  function plateLink(plate) {
    if (!plate) return el("span", { class: "muted" }, "(unread)");
    return el("a", { class: "plate", href: "/console/plate?plate=" + encodeURIComponent(plate) }, plate);
  }

  function header(current, session) {
    const nav = el("nav", null, ...PAGES.map(([p, label]) =>
      el("a", { href: "/console/" + p, class: p === current ? "here" : null }, label)));
    const who = el("span", { class: "who" });
    if (session.login_required && session.logged_in) {
      who.append(el("button", { onclick: async () => { await api.call("POST", "/api/logout"); location.reload(); } },
        "Log out"));
    }
    return el("header", null, el("b", null, "plate-agent"), nav, who);
  }

  function loginForm(main, session) {
    const msg = el("p", { class: "error", id: "login-error" });
    const pw = el("input", { type: "password", name: "password", autocomplete: "current-password", required: true });
    const form = el("form", null, el("label", null, "Password", pw), el("button", { class: "primary" }, "Log in"), msg);
    if (!session.password_set) msg.textContent = "No password is set on the agent; see the README (console).";
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try { await api.login(pw.value); location.reload(); } catch (err) { msg.textContent = err.message; }
    });
    main.append(el("div", { class: "login" }, el("h2", null, "Log in to the console"), form));
    pw.focus();
  }

  // every few seconds while the page is visible; nothing while hidden (nothing runs while nobody looks)
  function every(ms, fn) {
    let timer = null;
    const tick = async () => {
      timer = null;
      if (!document.hidden) { try { await fn(); } catch (err) { console.warn(err); } }
      timer = setTimeout(tick, ms);
    };
    tick();
    document.addEventListener("visibilitychange", () => { if (!document.hidden && timer === null) tick(); });
  }

  async function start(name, run) {
    const main = document.querySelector("main");
    let session;
    try { session = await api.session(); } catch (err) { main.append(el("p", { class: "error" }, err.message)); return; }
    document.body.prepend(header(name, session));
    if (session.login_required && !session.logged_in) { loginForm(main, session); return; }
    await run(main, session);
  }

  return { el, clear, when, action, plateLink, every, start };
})();
