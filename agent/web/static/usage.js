// Usage: paid reads per day against the plan's quota, and what the on-device gate saved, as inline
// SVG bar charts drawn here (no chart library).
"use strict";

ui.start("usage", async (main) => {
  const { el } = ui;
  const NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = text;
    return n;
  }

  // bars: [{label, value, cls}]; line: a value drawn across as a dashed line, with its label
  function chart(bars, line, lineLabel, id, H = 220) {
    const W = 720, L = 48, B = 36, T = 14;
    const max = Math.max(1, line || 0, ...bars.map((b) => b.value)) * 1.1;
    const root = svg("svg", { class: "chart", id, viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img" });
    const y = (v) => T + (H - T - B) * (1 - v / max);
    for (const f of [0, 0.5, 1]) {
      const v = Math.round(max * f / 1.1);
      root.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, String(v)));
    }
    const step = (W - L - 8) / Math.max(1, bars.length);
    bars.forEach((b, i) => {
      const w = Math.min(step * 0.7, 56), x = L + i * step + (step - w) / 2;
      const r = svg("rect", { class: b.cls || "bar", x, y: y(b.value), width: w, height: Math.max(0, y(0) - y(b.value)) });
      r.append(svg("title", null, b.label + ": " + b.value));
      root.append(r, svg("text", { x: x + w / 2, y: y(b.value) - 3, "text-anchor": "middle" }, String(b.value)));
      if (bars.length <= 16 || i % Math.ceil(bars.length / 16) === 0) {
        root.append(svg("text", { x: x + w / 2, y: H - B + 14, "text-anchor": "middle" }, b.label));
      }
    });
    if (line) {
      root.append(svg("line", { class: "quota", x1: L, x2: W - 8, y1: y(line), y2: y(line) }),
        svg("text", { x: W - 10, y: y(line) - 4, "text-anchor": "end" }, lineLabel));
    }
    root.append(svg("line", { x1: L, x2: W - 8, y1: y(0), y2: y(0), stroke: "#999" }));
    return root;
  }

  const u = await api.get("/api/usage?days=30");
  const q = u.quota || {};
  const perDay = q.limit ? Math.round(q.limit / 30) : 0; // the plan's monthly quota spread over its days
  const days = (u.paid_per_day || []).map((d) => ({ label: d.day.slice(5), value: d.paid,
    cls: perDay && d.paid > perDay ? "over" : "bar" }));
  main.append(el("h2", null, "Paid reads per day (" + (u.reader || "no reader") + ")"),
    el("p", { class: "muted", id: "quota" }, q.limit ? `Plan: ${q.used} of ${q.limit} lookups used` +
      (q.resets_on ? `, resets on ${q.resets_on}` : "") + `; the dashed line is ${perDay} a day.`
      : u.paid_per_day === null ? "The event history is off: no daily counts." : "The reader reports no quota."),
    days.length ? chart(days, perDay, perDay ? "quota / 30" : "", "paid-chart") : el("p", { class: "muted" }, "no paid reads yet"));

  main.append(el("h2", null, "What the on-device gate saved (since the agent started)"));
  for (const [cid, c] of Object.entries(u.since_start || {})) {
    const held = Object.values(c.held || {}).reduce((a, b) => a + b, 0);
    main.append(el("p", null, el("b", null, cid), el("span", { class: "muted" },
      ` — ${c.frames_in} frames seen, ${c.uploads} sent: ${c.frames_in ? (c.frames_in / Math.max(1, c.uploads)).toFixed(0)
        : 0} frames per paid read; ${held} crops not sent by the upload gate`)),
    chart([{ label: "frames seen", value: c.frames_in || 0 }, { label: "processed", value: c.frames_processed || 0 },
      { label: "with motion", value: c.motion_frames || 0 }, { label: "plates found", value: c.plates || 0 },
      { label: "crops held", value: held }, { label: "paid reads", value: c.uploads || 0 }], 0, "", "saved-" + cid, 160));
  }
});
