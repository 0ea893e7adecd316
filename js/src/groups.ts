// The groups list: coverage gaps, failure slices, concepts or clusters of an analysis result,
// one row each; a click selects the group's points (the kernel computes the rows).

import type { GroupsMessage } from "./protocol";

function cell(tag: "td" | "th", parent: HTMLElement, text: string): HTMLElement {
  const e = document.createElement(tag);
  e.textContent = text; // always text, never HTML
  parent.appendChild(e);
  return e;
}

/** Render `msg` into `root` (emptied first); `onPick(k, ev)` is called when row k is clicked. */
export function renderGroups(root: HTMLElement, msg: GroupsMessage, onPick: (k: number, ev: MouseEvent) => void): void {
  root.replaceChildren();
  if (msg.clear || !Array.isArray(msg.rows) || msg.rows.length === 0) { root.style.display = "none"; return; }
  root.style.display = "";
  const head = document.createElement("div");
  head.className = "dx-groups-title";
  head.textContent = `${msg.title} · ${msg.rows.length} · click a row to select it (Shift: add, Alt: subtract)`;
  root.appendChild(head);
  const scroll = document.createElement("div");
  scroll.className = "dx-groups-scroll";
  root.appendChild(scroll);
  const table = document.createElement("table");
  table.className = "dx-groups-table";
  scroll.appendChild(table);
  const tr = document.createElement("tr");
  table.appendChild(tr);
  for (const c of msg.columns) cell("th", tr, String(c).replace(/_/g, " "));
  msg.rows.forEach((values, k) => {
    const row = document.createElement("tr");
    row.className = "dx-group-row";
    row.dataset.group = String(k);
    row.title = `Select ${msg.on_map?.[k] ?? ""} points of ${values[0]}`;
    values.forEach((v) => cell("td", row, String(v)));
    row.onclick = (ev) => onPick(k, ev);
    table.appendChild(row);
  });
}

/** Highlight row `k` (or none with -1). */
export function markGroup(root: HTMLElement, k: number): void {
  root.querySelectorAll<HTMLElement>(".dx-group-row").forEach((r) => {
    r.classList.toggle("dx-group-active", Number(r.dataset.group) === k);
  });
}
