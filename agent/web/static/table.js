// The event table the Live, Events and Plate pages share, and the crop viewer with "Allow this plate".
"use strict";

const events = (() => {
  const { el } = ui;

  async function allow(plate, out) {
    try {
      const row = await api.call("POST", "/api/rules", { list: "allow", plate, label: "allowed from an event" });
      out.className = "ok";
      out.textContent = "Allowed: " + row.plate + " (rules file line " + row.line + ")";
      return true;
    } catch (err) {
      out.className = "error";
      out.textContent = "Refused: " + err.message;
      return false;
    }
  }

  function viewer(e) {
    let box = document.getElementById("viewer");
    if (!box) { box = el("div", { id: "viewer", hidden: true }); document.body.append(box); }
    const out = el("p", { id: "allow-result" });
    const close = () => { box.hidden = true; ui.clear(box); };
    box.onclick = (ev) => { if (ev.target === box) close(); };
    ui.clear(box).append(el("div", { class: "box" },
      el("div", null, ui.plateLink(e.plate), " · ", ui.action(e.action), " · ",
        el("span", { class: "muted" }, e.camera_id + " · " + ui.when(e.decided_at))),
      e.crop ? el("img", { src: e.crop, alt: "crop" }) : el("p", { class: "muted" }, "no crop"),
      el("p", { class: "muted" }, e.reason || "",
        e.frame ? el("span", null, " · ", el("a", { href: e.frame, target: "_blank", rel: "noopener" }, "whole frame"))
          : null),
      el("div", null,
        e.plate ? el("button", { class: "primary", id: "allow-plate", onclick: () => allow(e.plate, out) },
          "Allow this plate") : null,
        " ", el("button", { onclick: close }, "Close")),
      out));
    box.hidden = false;
  }

  function table(list, opts) {
    const body = el("tbody");
    for (const e of list) {
      const crop = e.crop ? el("img", { class: "crop", src: e.crop, alt: "crop", loading: "lazy",
        onclick: () => viewer(e) }) : el("span", { class: "muted" }, "-");
      const who = e.plate ? el("button", { class: "allow", onclick: () => viewer(e) }, "Open") : null;
      body.append(el("tr", { class: e.type === "unread" ? "unread-row" : null, "data-event": e.event_id },
        el("td", null, crop), el("td", null, ui.when(e.decided_at)), el("td", null, e.camera_id),
        el("td", null, ui.plateLink(e.plate)), el("td", null, ui.action(e.action)),
        el("td", { class: "muted" }, e.rule ? e.rule + " — " + e.reason : e.reason),
        el("td", null, String(e.paid_calls)), el("td", null, who)));
    }
    if (!list.length) body.append(el("tr", null, el("td", { colspan: 8, class: "muted" }, (opts && opts.empty) || "no events")));
    return el("table", { class: "events" },
      el("thead", null, el("tr", null, ...["Crop", "Time", "Camera", "Plate", "Action", "Why", "Paid", ""].map(
        (h) => el("th", null, h)))), body);
  }

  return { table, viewer, allow };
})();
