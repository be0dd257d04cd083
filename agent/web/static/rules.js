// Rules: the allow and deny lists (config rules read-only, the rules file's rows editable): add,
// edit, remove. The agent checks an entry as it checks the file and answers why it refuses one.
"use strict";

ui.start("rules", async (main) => {
  const { el } = ui;
  const FIELDS = [["plate", "Plate"], ["label", "Label"], ["cameras", "Cameras (space separated)"],
    ["valid_from", "Valid from"], ["valid_until", "Valid until"], ["schedule", "Schedule (e.g. mon-fri 07:00-19:00)"]];
  const inputs = Object.fromEntries(FIELDS.map(([k]) => [k, el("input", { name: k, id: "r-" + k })]));
  const list = el("select", { name: "list", id: "r-list" }, el("option", { value: "allow" }, "allow"),
    el("option", { value: "deny" }, "deny"));
  const save = el("button", { class: "primary", id: "r-save" }, "Add");
  const cancel = el("button", { type: "button", hidden: true }, "Cancel");
  const msg = el("p", { id: "r-msg" });
  const form = el("form", { class: "rule" }, el("label", null, "List", list),
    ...FIELDS.map(([k, label]) => el("label", null, label, inputs[k])), save, cancel);
  const tables = el("div", { id: "rules" });
  const note = el("p", { class: "muted" });
  main.append(el("h2", null, "Add a rule"), note, form, msg, tables);
  let editing = null; // the id of the row being edited

  function edit(rule) {
    editing = rule ? rule.id : null;
    list.value = rule ? rule.list : "allow";
    for (const [k] of FIELDS) {
      const v = rule ? rule[k] : "";
      inputs[k].value = Array.isArray(v) ? v.join(" ") : v || "";
    }
    save.textContent = rule ? "Save" : "Add";
    cancel.hidden = !rule;
  }
  cancel.onclick = () => edit(null);

  function table(name, rows) {
    const body = el("tbody");
    for (const r of rows) {
      const tools = r.source === "file" ? el("td", null,
        el("button", { class: "edit", onclick: () => { edit(r); window.scrollTo(0, 0); } }, "Edit"), " ",
        el("button", { class: "remove", onclick: () => remove(r) }, "Remove")) : el("td", { class: "muted" }, "config");
      body.append(el("tr", { "data-rule": r.id || "" }, el("td", { class: "plate" }, r.plate), el("td", null, r.label),
        el("td", null, (r.cameras || []).join(" ") || "all"), el("td", null, r.valid_from || ""),
        el("td", null, r.valid_until || ""), el("td", null, r.schedule || ""), tools));
    }
    if (!rows.length) body.append(el("tr", null, el("td", { colspan: 7, class: "muted" }, "none")));
    return el("div", null, el("h2", null, name),
      el("table", { id: "rules-" + name.split(" ")[0].toLowerCase() },
        el("thead", null, el("tr", null, ...["Plate", "Label", "Cameras", "From", "Until", "Schedule", ""].map(
          (x) => el("th", null, x)))), body));
  }

  async function show() {
    const doc = await api.get("/api/rules");
    note.textContent = doc.writable ? "Written to " + doc.file + "; takes effect at once."
      : "No rules file is configured (rules.file): the rules below come from the config and cannot be edited here.";
    save.disabled = !doc.writable;
    ui.clear(tables).append(table("Allow list", doc.rules.filter((r) => r.list === "allow")),
      table("Deny list", doc.rules.filter((r) => r.list === "deny")));
  }

  async function remove(r) {
    if (!confirm("Remove " + r.list + " rule for " + r.plate + "?")) return;
    try { await api.call("DELETE", "/api/rules/" + encodeURIComponent(r.id)); msg.className = "ok";
      msg.textContent = "Removed " + r.plate; } catch (err) { msg.className = "error"; msg.textContent = err.message; }
    await show();
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { list: list.value };
    for (const [k] of FIELDS) body[k] = k === "cameras" ? inputs[k].value.split(/\s+/).filter(Boolean) : inputs[k].value;
    try {
      const row = editing ? await api.call("PUT", "/api/rules/" + encodeURIComponent(editing), body)
        : await api.call("POST", "/api/rules", body);
      msg.className = "ok";
      msg.textContent = (editing ? "Saved " : "Added ") + row.plate;
      edit(null);
    } catch (err) {
      msg.className = "error";
      msg.textContent = "Refused: " + err.message;
    }
    await show();
  });
  await show();
  setInterval(() => { if (!document.hidden && editing === null) show(); }, 5000);
});
