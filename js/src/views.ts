// The parts of the widget around the map: toolbar, legend, selection panel, tooltip. Each draws
// what it is given and reports what the user did through callbacks; none talks to the kernel.

import { bytes, el, imageUrl } from "./dom";
import { categoryColor, rgbCss, viridis } from "./palette";
import type { ColorInfo, Mode, Op, PanelMessage, TooltipMessage } from "./protocol";

export type RGB = [number, number, number];
const NO_VALUE: RGB = [200, 200, 200];

/** The mode (lasso, box, pan) and operation (new, add, subtract) buttons, Reset view and Clear. */
export class Toolbar {
  op: Op = "replace";
  private readonly modeButtons = new Map<Mode, HTMLButtonElement>();
  private readonly opButtons = new Map<Op, HTMLButtonElement>();

  constructor(bar: HTMLElement, actions: { mode: (m: Mode) => void; reset: () => void; clear: () => void }) {
    for (const [mode, label, title] of [["lasso", "Lasso", "Draw around points to select them"],
      ["box", "Box", "Drag a rectangle to select points"], ["pan", "Pan", "Drag to move the map"]] as [Mode, string, string][]) {
      const b = el("button", "dx-btn", bar, label);
      b.title = title;
      b.dataset.mode = mode;
      b.onclick = () => actions.mode(mode);
      this.modeButtons.set(mode, b);
    }
    el("span", "dx-sep", bar);
    for (const [o, label, title] of [["replace", "New", "New selection"], ["add", "Add", "Add to the selection (or hold Shift)"],
      ["subtract", "Subtract", "Remove from the selection (or hold Alt)"]] as [Op, string, string][]) {
      const b = el("button", "dx-btn", bar, label);
      b.title = title;
      b.dataset.op = o;
      b.onclick = () => { this.op = o; this.show(this.mode); };
      this.opButtons.set(o, b);
    }
    el("span", "dx-sep", bar);
    el("button", "dx-btn", bar, "Reset view").onclick = actions.reset;
    const clear = el("button", "dx-btn", bar, "Clear");
    clear.title = "Clear the selection (Esc)";
    clear.onclick = actions.clear;
  }

  private mode: Mode = "lasso";

  /** Show `mode` and the current operation as active. */
  show(mode: Mode): void {
    this.mode = mode;
    this.modeButtons.forEach((b, m) => b.classList.toggle("dx-active", m === mode));
    this.opButtons.forEach((b, o) => b.classList.toggle("dx-active", o === this.op));
  }

  /** The operation a click or drag does: Shift adds, Alt subtracts, else the chosen one. */
  opFor(ev: MouseEvent | KeyboardEvent): Op {
    return ev.shiftKey ? "add" : ev.altKey ? "subtract" : this.op;
  }
}

/** The legend (classes with counts, or a colour bar) and the palette it stands for. */
export function renderLegend(legend: HTMLElement, info: ColorInfo, onClass: (i: number, ev: MouseEvent) => void): RGB[] {
  legend.replaceChildren();
  const noValue = () => {
    if (!info.no_value) return;
    const row = el("div", "dx-legend-row dx-legend-none", legend);
    row.title = "Points without a value";
    el("span", "dx-swatch", row).style.background = rgbCss(NO_VALUE);
    el("span", "dx-legend-name", row, "no value");
    el("span", "dx-legend-count", row, Number(info.no_value).toLocaleString());
  };
  const categories = info.categories ?? [];
  if (info.kind === "categorical") {
    el("div", "dx-legend-title", legend, info.name);
    categories.forEach((name, i) => {
      const row = el("div", "dx-legend-row", legend);
      row.title = `Select all '${name}' points (Shift: add, Alt: subtract)`;
      el("span", "dx-swatch", row).style.background = rgbCss(categoryColor(i));
      el("span", "dx-legend-name", row, name);
      el("span", "dx-legend-count", row, (info.counts?.[i] ?? 0).toLocaleString());
      row.onclick = (ev) => onClass(i, ev);
    });
    noValue();
  } else if (info.kind === "numeric") {
    el("div", "dx-legend-title", legend, info.name);
    el("div", "dx-colorbar-max", legend, String(info.max));
    const bar = el("div", "dx-colorbar", legend);
    const stops = Array.from({ length: 11 }, (_, i) => rgbCss(viridis(i / 10))).join(", ");
    bar.style.background = `linear-gradient(to top, ${stops})`;
    el("div", "dx-colorbar-min", legend, String(info.min));
    noValue();
  }
  legend.style.display = info.kind === "categorical" || info.kind === "numeric" ? "" : "none";
  const palette: RGB[] = info.kind === "categorical" ? categories.map((_, i) => categoryColor(i))
    : info.kind === "numeric" ? Array.from({ length: 256 }, (_, i) => viridis(i / 255)) : [[78, 121, 167]];
  if (typeof info.no_value_code === "number") { // grey for points without a value
    while (palette.length < info.no_value_code) palette.push(NO_VALUE);
    palette[info.no_value_code] = NO_VALUE;
  }
  return palette;
}

/** The selection panel: counts by label and a page of thumbnails with Prev/Next. */
export class SelectionPanel {
  private urls: string[] = [];

  constructor(private readonly root: HTMLElement,
              private readonly actions: { page: (page: number) => void; focus: (xy: [number, number] | null) => void }) {}

  show(msg: PanelMessage, buffers: DataView[]): void {
    this.release();
    const panel = this.root;
    panel.replaceChildren();
    if (!msg.total) { panel.style.display = "none"; return; }
    panel.style.display = "";
    const head = el("div", "dx-panel-head", panel);
    el("b", "", head, `${msg.total.toLocaleString()} selected`);
    for (const [label, count] of msg.counts) el("span", "dx-chip", head, `${label}: ${count.toLocaleString()}`);
    const rows = new Uint32Array(bytes(buffers[0]));
    const grid = el("div", "dx-grid", panel);
    rows.forEach((_row, i) => {
      const cell = el("div", "dx-cell", grid);
      cell.title = msg.titles[i];
      const data = bytes(buffers[i + 1]);
      if (data.byteLength) {
        const img = el("img", "dx-thumb", cell);
        const url = imageUrl(data, msg.mime);
        this.urls.push(url);
        img.src = url;
        img.alt = msg.titles[i];
      } else {
        el("div", "dx-cell-text", cell, msg.titles[i]); // no image for this sample: its id
      }
      const at = msg.xy?.[i];
      cell.onclick = () => this.actions.focus(at ? [at[0], at[1]] : null);
    });
    const nav = el("div", "dx-nav", panel);
    const prev = el("button", "dx-btn", nav, "‹ Prev");
    prev.disabled = msg.page <= 0;
    prev.onclick = () => this.actions.page(msg.page - 1);
    el("span", "", nav, `page ${msg.page + 1} of ${msg.pages}`);
    const next = el("button", "dx-btn", nav, "Next ›");
    next.disabled = msg.page >= msg.pages - 1;
    next.onclick = () => this.actions.page(msg.page + 1);
  }

  release(): void {
    this.urls.forEach((u) => URL.revokeObjectURL(u));
    this.urls = [];
  }
}

/** The hover tooltip: a thumbnail and lines of metadata, cached per row (bounded). */
export class Tooltip {
  private readonly cache = new Map<number, { url: string | null; lines: [string, string][] }>();
  private row = -1;
  private timer = 0;

  constructor(private readonly root: HTMLElement, private readonly stage: HTMLElement,
              private readonly ask: (row: number) => void) {
    root.style.display = "none";
  }

  /** The pointer is over point `row` at pixel `p`: show what is known, or ask for it shortly. */
  hover(row: number, p: [number, number]): void {
    if (row !== this.row) {
      this.row = row;
      window.clearTimeout(this.timer);
      if (this.cache.has(row)) this.show(row);
      else this.timer = window.setTimeout(() => this.ask(row), 40);
    }
    this.place(p);
  }

  arrived(msg: TooltipMessage, buffers: DataView[]): void {
    const old = this.cache.get(msg.row);
    if (old?.url) URL.revokeObjectURL(old.url);
    this.cache.set(msg.row, { url: buffers.length ? imageUrl(bytes(buffers[0]), msg.mime) : null, lines: msg.lines });
    if (this.cache.size > 500) { // keep memory bounded
      const first = this.cache.keys().next().value as number;
      const t = this.cache.get(first);
      if (t?.url) URL.revokeObjectURL(t.url);
      this.cache.delete(first);
    }
    this.show(msg.row);
  }

  hide(): void {
    this.row = -1;
    window.clearTimeout(this.timer);
    this.root.style.display = "none";
  }

  release(): void {
    this.hide();
    this.cache.forEach((t) => t.url && URL.revokeObjectURL(t.url));
    this.cache.clear();
  }

  private show(row: number): void {
    const tip = this.cache.get(row);
    if (!tip || row !== this.row) return;
    const root = this.root;
    root.replaceChildren();
    if (tip.url) {
      const img = el("img", "dx-thumb", root);
      // an object's crop beside its image comes twice as wide as high: shown at twice the width
      img.onload = () => img.classList.toggle("dx-wide", img.naturalWidth >= 1.5 * img.naturalHeight);
      img.src = tip.url;
      img.alt = "";
    }
    for (const [k, v] of tip.lines) {
      const line = el("div", "dx-tip-line", root);
      el("b", "", line, `${k}: `);
      el("span", "", line, v);
    }
    root.style.display = "";
  }

  private place(p: [number, number]): void {
    const w = this.stage.clientWidth;
    this.root.style.left = `${Math.min(p[0] + 14, w - 180)}px`;
    this.root.style.top = `${p[1] + 14}px`;
  }
}
