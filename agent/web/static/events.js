// Events: filters (plate, camera, dates, action, unread), pages of 25, CSV export of the filter.
// The filter lives in the address, so a reload or a shared link shows the same list.
"use strict";

ui.start("events", async (main) => {
  const { el } = ui;
  const params = new URLSearchParams(location.search);
  const field = (name, attrs) => el("input", { name, value: params.get(name) || "", ...attrs });
  const plate = field("plate", { placeholder: "contains", size: 10, id: "f-plate" });
  const camera = el("select", { name: "camera", id: "f-camera" }, el("option", { value: "" }, "all"));
  const from = field("from", { type: "date" });
  const to = field("to", { type: "date" });
  const action = el("select", { name: "action", id: "f-action" },
    ...["", "open", "deny", "none"].map((a) => el("option", { value: a }, a || "all")));
  action.value = params.get("action") || "";
  const unread = el("input", { type: "checkbox", name: "unread", checked: params.get("unread") === "1" });
  const csv = el("a", { id: "csv", download: "events.csv" }, "Export CSV");
  const form = el("form", { class: "filters" },
    el("label", null, "Plate", plate), el("label", null, "Camera", camera), el("label", null, "From", from),
    el("label", null, "To", to), el("label", null, "Action", action), el("label", null, "Unread only", unread),
    el("button", { class: "primary", id: "apply" }, "Filter"), csv);
  const list = el("div", { id: "list" });
  const older = el("button", { id: "older" }, "Older");
  const newer = el("button", { id: "newer" }, "Newer");
  const msg = el("span", { class: "error" });
  main.append(form, list, el("div", { class: "pager" }, newer, older, msg));

  const st = await api.get("/api/status");
  for (const cid of Object.keys(st.cameras || {})) camera.append(el("option", { value: cid }, cid));
  camera.value = params.get("camera") || "";

  let cursors = [0]; // the "before" of each page seen; the last is this page's
  function query(extra) {
    const q = new URLSearchParams();
    for (const [k, v] of [["plate", plate.value.trim()], ["camera", camera.value], ["from", from.value],
      ["to", to.value], ["action", action.value]]) if (v) q.set(k, v);
    if (unread.checked) q.set("unread", "1");
    for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
    return q;
  }

  async function show() {
    const base = query();
    history.replaceState(null, "", "?" + base.toString());
    csv.href = "/api/events.csv?" + base.toString();
    const before = cursors[cursors.length - 1];
    try {
      const doc = await api.get("/api/events?" + query({ limit: "25", ...(before ? { before } : {}) }).toString());
      msg.textContent = "";
      ui.clear(list).append(events.table(doc.events, { empty: "no events match" }));
      older.disabled = doc.next === null;
      older.onclick = () => { cursors.push(doc.next); show(); };
    } catch (err) { msg.textContent = err.message; }
    newer.disabled = cursors.length < 2;
  }
  newer.onclick = () => { cursors.pop(); show(); };
  form.addEventListener("submit", (ev) => { ev.preventDefault(); cursors = [0]; show(); });
  await show();
});
