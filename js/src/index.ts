// The Explorer widget (anywidget): a WebGL map of a dataset whose selections land in Python.
//
// Data arrives as binary chunks in custom messages (float32 coordinates, uint16 colour codes,
// uint32 selected rows). The browser sends selection *shapes* (a lasso polygon or box in map
// coordinates, a clicked row, a legend class); the kernel computes the exact rows and sends them
// back, so what is highlighted is exactly what Python holds and a lasso never blocks the page.
//
// A map with more points than the kernel's `max_points` arrives as a sample (with each point's row
// id) over a density layer of all points; after a pan or zoom the browser asks for the points of the
// view and the answer replaces the sample. Selections then arrive as a bitset over all rows.

import type { Rect } from "./density";
import { ExportMenu } from "./exporter";
import { GridIndex } from "./grid";
import { markGroup, renderGroups } from "./groups";
import { categoryColor, rgbCss, viridis } from "./palette";
import { Scatter } from "./scatter";
import { mountStandalone } from "./standalone";

interface Model {
  get(name: string): any;
  set(name: string, value: any): void;
  save_changes(): void;
  send(content: any, callbacks?: any, buffers?: ArrayBuffer[] | ArrayBufferView[]): void;
  on(event: string, cb: (...args: any[]) => void): void;
  off(event?: string, cb?: (...args: any[]) => void): void;
  standalone?: boolean; // true in a map saved as HTML: no kernel behind it
}

type Op = "replace" | "add" | "subtract";

function bytes(dv: DataView | ArrayBuffer): ArrayBuffer {
  if (dv instanceof ArrayBuffer) return dv;
  return dv.buffer.slice(dv.byteOffset, dv.byteOffset + dv.byteLength) as ArrayBuffer;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, parent?: HTMLElement, text?: string) {
  const e = document.createElement(tag);
  e.className = cls;
  if (text !== undefined) e.textContent = text; // always text, never HTML
  if (parent) parent.appendChild(e);
  return e;
}

function imageUrl(buf: ArrayBuffer, mime: string): string {
  return URL.createObjectURL(new Blob([buf], { type: mime }));
}

function toBase64(data: Uint8Array): string {
  let text = "";
  for (let i = 0; i < data.length; i += 0x8000) text += String.fromCharCode(...data.subarray(i, i + 0x8000));
  return btoa(text);
}

function niceStep(x: number): number {
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  const m = x / p;
  return (m >= 5 ? 5 : m >= 2 ? 2 : 1) * p;
}

function render({ model, el: root }: { model: Model; el: HTMLElement }) {
  const started = performance.now();
  const client = Math.random().toString(36).slice(2, 10); // this view's id: views of one widget share messages
  const box = el("div", "dx-explorer", root);
  box.tabIndex = 0;
  const bar = el("div", "dx-toolbar", box);
  const stage = el("div", "dx-stage", box);
  stage.style.height = `${model.get("height")}px`;
  const canvas = el("canvas", "dx-canvas", stage);
  const overlay = el("canvas", "dx-overlay", stage);
  const legend = el("div", "dx-legend", stage);
  const scaleBar = el("div", "dx-scale", stage);
  const tooltip = el("div", "dx-tooltip", stage);
  tooltip.style.display = "none";
  const footer = el("div", "dx-footer", box);
  const status = el("div", "dx-status", footer);
  // the export menu needs the kernel to write files: a map saved as HTML offers downloads instead
  const exporter = model.standalone ? null : new ExportMenu(footer, (request) => model.send(request));
  const groups = el("div", "dx-groups", box);
  groups.style.display = "none";
  const panel = el("div", "dx-panel", box);

  let scatter: Scatter;
  try {
    scatter = new Scatter(canvas);
  } catch (err) {
    el("div", "dx-error", stage, `dataexplore: ${(err as Error).message}`);
    return () => box.remove();
  }
  let grid: GridIndex | null = null;
  let selected = new Uint8Array(0);
  let nSelected = 0;
  let op: Op = "replace";
  let pending: { xy: Float32Array; codes: Uint16Array; rows: Uint32Array | null; total: number; seq: number } | null = null;
  let selChunks: { rows: Uint32Array; total: number; got: number } | null = null;
  let focus: [number, number] | null = null;
  // a map drawn as a sample: all rows, the rows held, the view they answer, the selection as bits
  let lod: { n: number; bounds: Rect; budget: number } | null = null;
  let shownRows: Uint32Array | null = null;
  let shown = { seq: -1, rect: null as Rect | null, complete: false, inside: 0 };
  let viewSeq = 0, inFlight = -1, dirty = false, forced = false, viewTimer = 0, timerSet = false;
  let viewDensity: { seq: number; counts: Uint32Array; size: number; rect: Rect } | null = null;
  let selBits: Uint8Array | null = null;
  let bitChunks: Uint8Array | null = null;
  let firstFrameMs = -1;
  const rowOf = (i: number) => (shownRows ? shownRows[i] : i);
  const tipCache = new Map<number, { url: string | null; lines: [string, string][] }>();
  let hoverRow = -1;
  let hoverTimer = 0;

  // ---- toolbar -------------------------------------------------------------------------------
  const modeButtons = new Map<string, HTMLButtonElement>();
  for (const [mode, label, title] of [["lasso", "Lasso", "Draw around points to select them"],
    ["box", "Box", "Drag a rectangle to select points"], ["pan", "Pan", "Drag to move the map"]]) {
    const b = el("button", "dx-btn", bar, label);
    b.title = title;
    b.dataset.mode = mode;
    b.onclick = () => { model.set("mode", mode); model.save_changes(); };
    modeButtons.set(mode, b);
  }
  el("span", "dx-sep", bar);
  const opButtons = new Map<Op, HTMLButtonElement>();
  for (const [o, label, title] of [["replace", "New", "New selection"], ["add", "Add", "Add to the selection (or hold Shift)"],
    ["subtract", "Subtract", "Remove from the selection (or hold Alt)"]] as [Op, string, string][]) {
    const b = el("button", "dx-btn", bar, label);
    b.title = title;
    b.dataset.op = o;
    b.onclick = () => { op = o; syncButtons(); };
    opButtons.set(o, b);
  }
  el("span", "dx-sep", bar);
  const reset = el("button", "dx-btn", bar, "Reset view");
  reset.onclick = () => { scatter.resetView(); drawOverlay(); scheduleView(); };
  const clear = el("button", "dx-btn", bar, "Clear");
  clear.title = "Clear the selection (Esc)";
  clear.onclick = () => model.send({ type: "select", shape: "clear", op: "replace" });

  function syncButtons() {
    const mode = model.get("mode");
    modeButtons.forEach((b, m) => b.classList.toggle("dx-active", m === mode));
    opButtons.forEach((b, o) => b.classList.toggle("dx-active", o === op));
    stage.style.cursor = mode === "pan" ? "grab" : "crosshair";
  }
  syncButtons();

  // ---- legend and status ---------------------------------------------------------------------
  const NO_VALUE: [number, number, number] = [200, 200, 200];
  function renderLegend() {
    legend.replaceChildren();
    const info = model.get("color_info") || {};
    const noValue = () => {
      if (!info.no_value) return;
      const row = el("div", "dx-legend-row dx-legend-none", legend);
      row.title = "Points without a value";
      el("span", "dx-swatch", row).style.background = rgbCss(NO_VALUE);
      el("span", "dx-legend-name", row, "no value");
      el("span", "dx-legend-count", row, Number(info.no_value).toLocaleString());
    };
    if (info.kind === "categorical") {
      el("div", "dx-legend-title", legend, info.name);
      (info.categories as string[]).forEach((name, i) => {
        const row = el("div", "dx-legend-row", legend);
        row.title = `Select all '${name}' points (Shift: add, Alt: subtract)`;
        const sw = el("span", "dx-swatch", row);
        sw.style.background = rgbCss(categoryColor(i));
        el("span", "dx-legend-name", row, name);
        el("span", "dx-legend-count", row, (info.counts?.[i] ?? 0).toLocaleString());
        row.onclick = (ev) => model.send({ type: "select", shape: "class", category: i, op: opFor(ev) });
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
    const pal: [number, number, number][] = info.kind === "categorical"
      ? (info.categories as string[]).map((_, i) => categoryColor(i))
      : info.kind === "numeric" ? Array.from({ length: 256 }, (_, i) => viridis(i / 255)) : [[78, 121, 167]];
    if (typeof info.no_value_code === "number") { // grey for points without a value
      while (pal.length < info.no_value_code) pal.push(NO_VALUE);
      pal[info.no_value_code] = NO_VALUE;
    }
    scatter.setPalette(pal);
  }

  function renderStatus() {
    const drawn = !lod ? `${scatter.n.toLocaleString()} point${scatter.n === 1 ? "" : "s"}`
      : `${lod.n.toLocaleString()} points · ` + (shown.complete
        ? `all ${scatter.n.toLocaleString()} in view drawn` : `drawing ${scatter.n.toLocaleString()} · zoom in for detail`);
    status.textContent = drawn + (nSelected ? ` · ${nSelected.toLocaleString()} selected` : "");
  }

  function opFor(ev: MouseEvent | KeyboardEvent): Op {
    return ev.shiftKey ? "add" : ev.altKey ? "subtract" : op;
  }

  // ---- overlay: lasso path, focus ring, scale hint --------------------------------------------
  let path: [number, number][] = [];
  function drawOverlay() {
    const dpr = window.devicePixelRatio || 1;
    const w = stage.clientWidth, h = stage.clientHeight;
    if (overlay.width !== Math.round(w * dpr)) { overlay.width = Math.round(w * dpr); overlay.height = Math.round(h * dpr); }
    const ctx = overlay.getContext("2d")!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (path.length > 1) {
      ctx.beginPath();
      ctx.moveTo(path[0][0], path[0][1]);
      for (const [x, y] of path) ctx.lineTo(x, y);
      ctx.closePath();
      ctx.fillStyle = "rgba(30, 120, 220, 0.08)";
      ctx.fill();
      ctx.strokeStyle = "rgba(30, 120, 220, 0.9)";
      ctx.lineWidth = 1.5;
      ctx.stroke();
    }
    if (focus) {
      const [fx, fy] = scatter.toPixel(focus[0], focus[1]);
      ctx.beginPath();
      ctx.arc(fx, fy, 9, 0, 2 * Math.PI);
      ctx.strokeStyle = "#d62728";
      ctx.lineWidth = 2.5;
      ctx.stroke();
    }
    // scale hint: a bar of a round length in map units
    const [ax] = scatter.toData(0, 0), [bx] = scatter.toData(100, 0);
    const step = niceStep(Math.abs(bx - ax) || 1);
    const px = step / Math.abs(bx - ax || 1) * 100;
    scaleBar.style.width = `${px}px`;
    scaleBar.textContent = `${step.toPrecision(2).replace(/\.?0+$/, "")} map units`;
  }

  function relative(ev: MouseEvent): [number, number] {
    const r = stage.getBoundingClientRect();
    return [ev.clientX - r.left, ev.clientY - r.top];
  }

  function simplify(points: [number, number][], maxPoints = 400): [number, number][] {
    const step = Math.max(1, Math.ceil(points.length / maxPoints));
    return points.filter((_, i) => i % step === 0);
  }

  // ---- mouse: lasso, box, pan, click, hover ----------------------------------------------------
  let drag: { mode: string; start: [number, number]; last: [number, number]; op: Op; moved: boolean } | null = null;
  stage.addEventListener("mousedown", (ev) => {
    ev.stopPropagation(); // JupyterLab would start a cell selection on Shift+drag and eat the moves
    ev.preventDefault();
    box.focus({ preventScroll: true });
    if (ev.button !== 0) return;
    const p = relative(ev);
    drag = { mode: model.get("mode"), start: p, last: p, op: opFor(ev), moved: false };
    path = [p];
    hideTooltip();
  });
  const onMove = (ev: MouseEvent) => {
    if (!drag) return;
    const p = relative(ev);
    if (Math.hypot(p[0] - drag.start[0], p[1] - drag.start[1]) > 4) drag.moved = true;
    if (drag.mode === "pan") {
      scatter.pan(p[0] - drag.last[0], p[1] - drag.last[1]);
      drawOverlay();
      scheduleView();
    } else if (drag.mode === "box") {
      const [x0, y0] = drag.start;
      path = [[x0, y0], [p[0], y0], [p[0], p[1]], [x0, p[1]]];
      drawOverlay();
    } else {
      const last = path[path.length - 1];
      if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= 2) { path.push(p); drawOverlay(); }
    }
    drag.last = p;
  };
  const onUp = (ev: MouseEvent) => {
    if (!drag) return;
    onMove(ev); // the release point counts (browsers coalesce the last moves)
    const d = drag;
    drag = null;
    const shape = path;
    path = [];
    drawOverlay();
    if (!d.moved) { // a click: the nearest point, or nothing
      const p = relative(ev);
      const [x, y] = scatter.toData(p[0], p[1]);
      const radius = Math.abs(scatter.toData(10, 0)[0] - scatter.toData(0, 0)[0]);
      const i = grid ? grid.nearest(x, y, radius) : -1;
      if (i >= 0) model.send({ type: "select", shape: "point", row: rowOf(i), op: d.op });
      else if (d.op === "replace" && d.mode !== "pan") model.send({ type: "select", shape: "clear", op: "replace" });
      return;
    }
    if (d.mode === "pan" || shape.length < 3) return;
    const polygon = simplify(shape).map(([px, py]) => scatter.toData(px, py));
    model.send({ type: "select", shape: d.mode, polygon, op: d.op });
  };
  window.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", onUp);

  stage.addEventListener("mousemove", (ev) => {
    if (drag || !grid) return;
    const p = relative(ev);
    const [x, y] = scatter.toData(p[0], p[1]);
    const radius = Math.abs(scatter.toData(8, 0)[0] - scatter.toData(0, 0)[0]);
    const i = grid.nearest(x, y, radius);
    if (i < 0) { hideTooltip(); return; }
    const row = rowOf(i); // the point's row in the kernel
    if (row !== hoverRow) {
      hoverRow = row;
      window.clearTimeout(hoverTimer);
      const cached = tipCache.get(row);
      if (cached) showTooltip(row, p);
      else hoverTimer = window.setTimeout(() => model.send({ type: "hover", row }), 40);
    }
    placeTooltip(p);
  });
  stage.addEventListener("mouseleave", hideTooltip);
  stage.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const p = relative(ev);
    scatter.zoomAt(p[0], p[1], Math.exp(-ev.deltaY * 0.0015));
    hideTooltip();
    drawOverlay();
    scheduleView();
  }, { passive: false });
  box.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") model.send({ type: "select", shape: "clear", op: "replace" });
  });

  function placeTooltip(p: [number, number]) {
    const w = stage.clientWidth;
    tooltip.style.left = `${Math.min(p[0] + 14, w - 180)}px`;
    tooltip.style.top = `${p[1] + 14}px`;
  }
  function showTooltip(row: number, p?: [number, number]) {
    const tip = tipCache.get(row);
    if (!tip || row !== hoverRow) return;
    tooltip.replaceChildren();
    if (tip.url) { const img = el("img", "dx-thumb", tooltip); img.src = tip.url; img.alt = ""; }
    for (const [k, v] of tip.lines) {
      const line = el("div", "dx-tip-line", tooltip);
      el("b", "", line, `${k}: `);
      el("span", "", line, v);
    }
    tooltip.style.display = "";
    if (p) placeTooltip(p);
  }
  function hideTooltip() {
    hoverRow = -1;
    window.clearTimeout(hoverTimer);
    tooltip.style.display = "none";
  }

  // ---- selection panel -------------------------------------------------------------------------
  const panelUrls: string[] = [];
  function renderPanel(msg: any, buffers: DataView[]) {
    panelUrls.forEach((u) => URL.revokeObjectURL(u));
    panelUrls.length = 0;
    panel.replaceChildren();
    exporter?.suggest(msg.total ? msg.counts : []);
    if (!msg.total) { panel.style.display = "none"; return; }
    panel.style.display = "";
    const head = el("div", "dx-panel-head", panel);
    el("b", "", head, `${msg.total.toLocaleString()} selected`);
    for (const [label, count] of msg.counts as [string, number][]) {
      el("span", "dx-chip", head, `${label}: ${count.toLocaleString()}`);
    }
    const rows = new Uint32Array(bytes(buffers[0]));
    const gridEl = el("div", "dx-grid", panel);
    rows.forEach((row, i) => {
      const cell = el("div", "dx-cell", gridEl);
      cell.title = msg.titles[i];
      const data = bytes(buffers[i + 1]);
      if (data.byteLength) {
        const img = el("img", "dx-thumb", cell);
        const url = imageUrl(data, msg.mime);
        panelUrls.push(url);
        img.src = url;
        img.alt = msg.titles[i];
      } else {
        el("div", "dx-cell-text", cell, msg.titles[i]); // no image for this sample: its id
      }
      const at = msg.xy?.[i];
      cell.onclick = () => { focus = at ? [at[0], at[1]] : null; drawOverlay(); };
    });
    const nav = el("div", "dx-nav", panel);
    const prev = el("button", "dx-btn", nav, "‹ Prev");
    prev.disabled = msg.page <= 0;
    prev.onclick = () => model.send({ type: "page", page: msg.page - 1 });
    el("span", "", nav, `page ${msg.page + 1} of ${msg.pages}`);
    const next = el("button", "dx-btn", nav, "Next ›");
    next.disabled = msg.page >= msg.pages - 1;
    next.onclick = () => model.send({ type: "page", page: msg.page + 1 });
  }

  // ---- a map drawn as a sample: ask for the points of the view after each pan or zoom ----------
  function visibleRect(): Rect {
    const w = stage.clientWidth, h = stage.clientHeight;
    const [x0, y0] = scatter.toData(0, h), [x1, y1] = scatter.toData(w, 0);
    return [x0, y0, x1, y1];
  }
  const within = (a: Rect, b: Rect) => a[0] >= b[0] && a[1] >= b[1] && a[2] <= b[2] && a[3] <= b[3];

  function scheduleView() {
    if (!lod) return;
    window.clearTimeout(viewTimer);
    timerSet = true;
    viewTimer = window.setTimeout(() => { timerSet = false; requestView(); }, 200); // one request once the view settles
  }

  function requestView(force = false) {
    if (!lod) return;
    if (inFlight >= 0) { dirty = true; forced ||= force; return; } // one at a time; the latest view goes next
    force ||= forced;
    forced = false;
    const v = visibleRect();
    const mx = (v[2] - v[0]) / 4, my = (v[3] - v[1]) / 4; // a margin, so a small pan needs nothing new
    const rect: Rect = [v[0] - mx, v[1] - my, v[2] + mx, v[3] + my];
    const whole = within(lod.bounds, rect);
    if (!force && ((whole && shown.rect === null) || (shown.complete && shown.rect && within(v, shown.rect)))) return;
    viewSeq += 1;
    const seq = viewSeq;
    inFlight = seq;
    dirty = false;
    box.dataset.viewBusy = "true";
    model.send({ type: "view", seq, rect: whole ? null : rect, client });
    window.setTimeout(() => viewAnswered(seq), 60_000); // never wait forever for a lost answer
  }

  function viewAnswered(seq: number) {
    if (seq !== inFlight) return;
    inFlight = -1;
    box.dataset.viewBusy = "false";
    if (dirty) requestView();
  }

  /** The highlight of the points held, from the selection bitset over all rows. */
  function applyBits() {
    selected = new Uint8Array(scatter.n);
    if (selBits && shownRows) {
      const bits = selBits;
      shownRows.forEach((r, i) => { selected[i] = (bits[r >> 3] >> (r & 7)) & 1; });
    }
    scatter.setSelected(selected, nSelected > 0);
  }

  type Points = { xy: Float32Array; codes: Uint16Array; rows: Uint32Array | null; total: number };
  function pointsArrived(p: Points, msg: any) {
    const first = box.dataset.ready !== "true";
    if (lod && p.rows) {
      shownRows = p.rows;
      shown = { seq: msg.seq, rect: msg.rect ?? null, complete: !!msg.complete, inside: msg.inside };
      scatter.setPoints(p.xy, p.total, lod.bounds, !first);
      if (shown.complete && shown.rect) scatter.density.blank(shown.rect);
      else if (viewDensity && viewDensity.seq === msg.seq) {
        scatter.density.set(1, viewDensity.counts, viewDensity.size, viewDensity.rect);
      }
      else scatter.density.clear(1);
      viewDensity = null;
    } else {
      shownRows = null;
      scatter.setPoints(p.xy, p.total);
    }
    scatter.setColors(p.codes);
    if (lod) applyBits(); else { selected = new Uint8Array(p.total); nSelected = 0; }
    grid = new GridIndex(p.xy, p.total, scatter.pointBounds);
    renderLegend();
    renderStatus();
    drawOverlay();
    box.dataset.ready = "true";
    if (lod) { box.dataset.viewSeq = String(shown.seq); viewAnswered(msg.seq); }
  }

  function selectionArrived(msg: any) {
    nSelected = msg.total;
    if (lod) applyBits(); else scatter.setSelected(selected, nSelected > 0);
    focus = null;
    drawOverlay();
    renderStatus();
    exporter?.setCount(nSelected);
    box.dataset.selected = String(nSelected);
    box.dataset.selectionSeq = String(msg.seq);
    markGroup(groups, typeof msg.group === "number" ? msg.group : -1);
  }

  scatter.onRendered = () => {
    if (firstFrameMs >= 0 || !scatter.n) return;
    scatter.gl.finish(); // the first frame with points, drawn for real
    firstFrameMs = performance.now() - started;
    box.dataset.firstFrameMs = String(Math.round(firstFrameMs));
  };

  // ---- messages from the kernel ------------------------------------------------------------------
  function onMessage(msg: any, buffers: DataView[]) {
    const mine = msg.client === undefined || msg.client === client;
    if (msg.type === "lod") {
      if (!mine) return;
      lod = { n: msg.total, bounds: msg.bounds, budget: msg.budget };
      selBits = new Uint8Array((lod.n + 7) >> 3);
      scatter.density.set(0, new Uint32Array(bytes(buffers[0])), msg.size, lod.bounds);
    } else if (msg.type === "density") {
      if (!mine || !lod) return;
      viewDensity = { seq: msg.seq, counts: new Uint32Array(bytes(buffers[0])), size: msg.size, rect: msg.rect };
    } else if (msg.type === "points") {
      if (msg.lod && (!mine || !lod)) return;
      if (msg.offset === 0) {
        pending = { xy: new Float32Array(2 * msg.total), codes: new Uint16Array(msg.total),
          rows: msg.lod ? new Uint32Array(msg.total) : null, total: msg.total, seq: msg.seq ?? -1 };
      }
      if (!pending || (msg.lod && pending.seq !== msg.seq)) return;
      if (msg.count) {
        pending.xy.set(new Float32Array(bytes(buffers[0])), 2 * msg.offset);
        pending.codes.set(new Uint16Array(bytes(buffers[1])), msg.offset);
        if (pending.rows) pending.rows.set(new Uint32Array(bytes(buffers[2])), msg.offset);
      }
      if (msg.final) {
        const p = pending;
        pending = null;
        // a later view was asked for meanwhile: its answer replaces this one
        if (msg.lod && msg.seq !== 0 && msg.seq !== inFlight) return;
        pointsArrived(p, msg);
      }
    } else if (msg.type === "colors") {
      if (lod) { // colours of the sample the kernel last sent: refetch if that is not what this view holds
        if (mine && msg.seq === shown.seq) scatter.setColors(new Uint16Array(bytes(buffers[0])));
        else requestView(true);
      } else {
        scatter.setColors(new Uint16Array(bytes(buffers[0])));
      }
      renderLegend();
    } else if (msg.type === "selection" && msg.format === "bits") {
      if (msg.offset === 0) bitChunks = new Uint8Array(msg.bytes);
      if (!bitChunks) return;
      if (msg.count) bitChunks.set(new Uint8Array(bytes(buffers[0])), msg.offset);
      if (msg.final) { selBits = bitChunks; bitChunks = null; selectionArrived(msg); }
    } else if (msg.type === "selection") {
      if (msg.offset === 0) selChunks = { rows: new Uint32Array(msg.total), total: msg.total, got: 0 };
      if (!selChunks) return;
      if (msg.count) { selChunks.rows.set(new Uint32Array(bytes(buffers[0])), msg.offset); selChunks.got += msg.count; }
      if (msg.final) {
        if (lod) {
          const bits = new Uint8Array((lod.n + 7) >> 3);
          for (const r of selChunks.rows) bits[r >> 3] |= 1 << (r & 7);
          selBits = bits;
        } else {
          selected = new Uint8Array(scatter.n);
          for (const r of selChunks.rows) if (r < scatter.n) selected[r] = 1;
        }
        selChunks = null;
        selectionArrived(msg);
      }
    } else if (msg.type === "tooltip") {
      const old = tipCache.get(msg.row);
      if (old?.url) URL.revokeObjectURL(old.url);
      tipCache.set(msg.row, { url: buffers.length ? imageUrl(bytes(buffers[0]), msg.mime) : null, lines: msg.lines });
      if (tipCache.size > 500) { // keep memory bounded
        const first = tipCache.keys().next().value as number;
        const t = tipCache.get(first);
        if (t?.url) URL.revokeObjectURL(t.url);
        tipCache.delete(first);
      }
      showTooltip(msg.row);
    } else if (msg.type === "panel") {
      renderPanel(msg, buffers);
    } else if (msg.type === "exported") {
      exporter?.onReply(msg);
    } else if (msg.type === "groups") {
      renderGroups(groups, msg, (k, ev) => model.send({ type: "select", shape: "group", group: k, op: opFor(ev) }));
    }
  }
  // Handles for tests and debugging: map coordinates -> viewport pixels, and the highlighted rows.
  Object.assign(box, {
    dxToPixel: (x: number, y: number) => {
      const r = stage.getBoundingClientRect();
      const [px, py] = scatter.toPixel(x, y);
      return [r.left + px, r.top + py];
    },
    // rows (kernel row ids) of the highlighted points among those held
    dxSelected: () => {
      const out: number[] = [];
      selected.forEach((v, i) => { if (v) out.push(rowOf(i)); });
      return out;
    },
    // a map drawn as a sample: what is held and why, the rows held (base64 uint32), the view's pixels
    dxLod: () => lod && { n: lod.n, budget: lod.budget, held: scatter.n, seq: shown.seq, rect: shown.rect,
      complete: shown.complete, inside: shown.inside, visible: visibleRect(),
      busy: timerSet || inFlight >= 0 || pending !== null },
    dxShownRows: () => toBase64(new Uint8Array((shownRows ?? new Uint32Array(0)).buffer)),
    dxFirstFrameMs: () => firstFrameMs,
  });
  model.on("msg:custom", onMessage);
  const onMode = () => syncButtons();
  const onColor = () => renderLegend();
  const onHeight = () => { stage.style.height = `${model.get("height")}px`; scatter.draw(); drawOverlay(); };
  model.on("change:mode", onMode);
  model.on("change:color_info", onColor);
  model.on("change:height", onHeight);
  const resize = new ResizeObserver(() => { scatter.draw(); drawOverlay(); scheduleView(); });
  resize.observe(stage);
  model.send({ type: "ready", client });

  return () => {
    model.off("msg:custom", onMessage);
    model.off("change:mode", onMode);
    model.off("change:color_info", onColor);
    model.off("change:height", onHeight);
    window.removeEventListener("mousemove", onMove);
    window.removeEventListener("mouseup", onUp);
    window.clearTimeout(viewTimer);
    resize.disconnect();
    panelUrls.forEach((u) => URL.revokeObjectURL(u));
    tipCache.forEach((t) => t.url && URL.revokeObjectURL(t.url));
    scatter.destroy();
    box.remove();
  };
}

/** Mount a map saved by `Explorer.to_html` (no kernel): the same widget over the embedded data. */
export function standalone(root: HTMLElement, payload: string): Promise<void> {
  return mountStandalone(root, payload, render);
}

export default { render };
