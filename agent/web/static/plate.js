// A plate's page: how often it came, first and last seen, what the gate did, its latest events.
"use strict";

ui.start("events", async (main) => {
  const { el } = ui;
  const plate = new URLSearchParams(location.search).get("plate") || "";
  const h = await api.get("/api/plates/" + encodeURIComponent(plate));
  const out = el("p");
  main.append(
    el("h2", null, "Plate ", el("span", { class: "plate", id: "plate" }, h.plate)),
    el("dl", { class: "state" },
      el("dt", null, "events"), el("dd", null, String(h.events_total)),
      el("dt", null, "first seen"), el("dd", null, ui.when(h.first_seen)),
      el("dt", null, "last seen"), el("dd", null, ui.when(h.last_seen)),
      el("dt", null, "actions"), el("dd", null, Object.entries(h.actions).map(([a, n]) => a + ": " + n).join(", "))),
    el("button", { class: "primary", onclick: () => events.allow(h.plate, out) }, "Allow this plate"), out,
    el("h2", null, "History"), events.table(h.events));
});
