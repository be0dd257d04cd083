// Live: per camera the last frame (zones and the latest detections drawn by the agent), its state,
// and the last events. The frame is asked for once a second, only while the page is visible.
"use strict";

ui.start("live", async (main) => {
  const { el } = ui;
  const cams = el("div", { class: "cams" });
  const agent = el("dl", { class: "state", id: "agent-state" });
  const recent = el("div", { id: "recent" });
  main.append(el("h2", null, "Cameras"), cams, el("h2", null, "Agent"), agent, el("h2", null, "Last events"), recent);
  const cards = {};

  function state(dl, pairs) {
    ui.clear(dl);
    for (const [k, v, cls] of pairs) dl.append(el("dt", null, k), el("dd", { class: cls || null }, v));
  }

  function frameLoop(cid, img) {
    const next = () => setTimeout(load, 1000);
    function load() {
      if (document.hidden) { next(); return; }
      img.onload = next;
      img.onerror = next; // no frame yet (503): the agent keeps one from now on
      img.src = "/api/cameras/" + encodeURIComponent(cid) + "/frame?t=" + Date.now();
    }
    load();
  }

  function card(cid) {
    if (cards[cid]) return cards[cid];
    const img = el("img", { class: "frame", alt: "last frame of " + cid });
    const dl = el("dl", { class: "state" });
    cams.append(el("div", { class: "cam", "data-camera": cid }, el("b", null, cid), img, dl));
    frameLoop(cid, img);
    return (cards[cid] = dl);
  }

  ui.every(2000, async () => {
    const st = await api.get("/api/status");
    for (const [cid, c] of Object.entries(st.cameras || {})) {
      state(card(cid), [
        ["connected", c.ended ? "ended (file)" : c.connected ? "yes" : "no", c.connected || c.ended ? "ok" : "error"],
        ["fps", (c.fps_in || 0) + " in, " + (c.fps_processed || 0) + " processed"],
        ["last frame", c.last_frame_age_s === null ? "-" : c.last_frame_age_s + " s ago"],
        ["plates / uploads", c.plates + " / " + c.uploads],
      ]);
    }
    const r = st.reader || {}, m = st.mqtt || {}, relay = st.relay || {};
    state(agent, [
      ["reader", (r.type || "none") + ": " + (r.state || "-"), r.ok ? "ok" : "error"],
      ["MQTT", !m.enabled ? "off" : m.connected ? "connected" : "disconnected", m.enabled && !m.connected ? "error" : "ok"],
      ["relay", relay.state === undefined || relay.state === null ? "none"
        : relay.state + " (" + (relay.pulses || 0) + " pulses)", relay.ok === false ? "error" : "ok"],
      ["events", String(st.events)],
      ["uptime", st.uptime_s + " s"],
    ]);
    const doc = await api.get("/api/events?limit=10");
    ui.clear(recent).append(events.table(doc.events));
  });
});
