// The Explorer widget (anywidget): a WebGL map of a dataset whose selections land in Python.
//
// Data arrives as binary chunks in custom messages (float32 coordinates, uint16 colour codes,
// uint32 selected rows); every message is typed in protocol.ts and goes through one Channel. The
// browser sends selection *shapes* (a lasso polygon or box in map coordinates, a clicked row, a
// legend class); the kernel computes the exact rows and sends them back, so what is highlighted is
// exactly what Python holds and a lasso never blocks the page.
//
// Charts under the map (charts.ts) draw counts the kernel computed and send filters; the rows passing
// every filter come back as the selection.
//
// A map with more points than the kernel's `max_points` arrives as a sample (with each point's row
// id) over a density layer of all points (sample.ts); selections then arrive as a bitset over all rows.
//
// `render` is the controller: it owns the map's data and wires the views (views.ts, exporter.ts,
// groups.ts, the Scatter) to the channel. The same `render` runs in a map saved as HTML, over a
// LocalModel that answers from the file (standalone.ts).

import type { AnyModel } from "@anywidget/types";
import { Channel } from "./channel";
import { ChartsView } from "./charts";
import type { Rect } from "./density";
import { bytes, el, niceStep, toBase64 } from "./dom";
import { ExportMenu } from "./exporter";
import { GridIndex } from "./grid";
import { markGroup, renderGroups } from "./groups";
import { Highlight } from "./highlight";
import type { ColorInfo, Message, Op, PointsMessage, SelectRequest, WidgetState } from "./protocol";
import { SampleView } from "./sample";
import { Scatter } from "./scatter";
import { mountStandalone } from "./standalone";
import { SelectionPanel, Toolbar, Tooltip, renderLegend } from "./views";

export interface RenderArgs {
  model: AnyModel<WidgetState>;
  el: HTMLElement;
}

interface Points { xy: Float32Array; codes: Uint16Array; rows: Uint32Array | null; total: number; replyTo: string }

function render({ model, el: root }: RenderArgs) {
  const started = performance.now();
  const channel = new Channel(model);
  const box = el("div", "dx-explorer", root);
  box.tabIndex = 0;
  const bar = el("div", "dx-toolbar", box);
  const stage = el("div", "dx-stage", box);
  stage.style.height = `${model.get("height")}px`;
  const canvas = el("canvas", "dx-canvas", stage);
  const overlay = el("canvas", "dx-overlay", stage);
  const legend = el("div", "dx-legend", stage);
  const scaleBar = el("div", "dx-scale", stage);
  const footer = el("div", "dx-footer", box);
  const status = el("div", "dx-status", footer);
  const exports = model.get("exports") ?? [];
  // what needs the kernel to write files is offered only when the kernel says what it can export
  const exporter = exports.length ? new ExportMenu(footer, exports, (request) => channel.request(request,
    (msg) => { if (msg.type === "exported") exporter?.onReply(msg); return true; })) : null;
  const chartsBox = el("div", "dx-charts", box);
  const groups = el("div", "dx-groups", box);
  groups.style.display = "none";
  const panelBox = el("div", "dx-panel", box);

  let scatter: Scatter;
  try {
    scatter = new Scatter(canvas);
  } catch (err) {
    el("div", "dx-error", stage, `dataexplore: ${(err as Error).message}`);
    channel.close();
    return () => box.remove();
  }
  const select = (request: Omit<SelectRequest, "id" | "type">) => channel.request<SelectRequest>({ type: "select", ...request });
  const toolbar = new Toolbar(bar, {
    mode: (mode) => { model.set("mode", mode); model.save_changes(); },
    reset: () => { scatter.resetView(); drawOverlay(); sample?.schedule(); },
    clear: () => select({ shape: "clear", op: "replace" }),
  });
  const tooltip = new Tooltip(el("div", "dx-tooltip", stage), stage, (row) => channel.request({ type: "hover", row },
    (msg, buffers) => { if (msg.type === "tooltip") tooltip.arrived(msg, buffers); return true; }));
  const panel = new SelectionPanel(panelBox, {
    page: (page) => channel.request({ type: "page", page }),
    focus: (xy) => { focus = xy; drawOverlay(); },
  });
  const highlight = new Highlight();
  const charts = new ChartsView(chartsBox, (request) => { box.focus({ preventScroll: true }); channel.request(request); });
  let grid: GridIndex | null = null;
  let sample: SampleView | null = null; // a map drawn as a sample
  let pending: Points | null = null;
  let viewDensity: { replyTo: string; counts: Uint32Array; size: number; rect: Rect } | null = null;
  let focus: [number, number] | null = null;
  let firstFrameMs = -1;
  const rowOf = (i: number) => (sample ? sample.rows[i] : i);

  function syncMode() {
    const mode = model.get("mode");
    toolbar.show(mode);
    stage.style.cursor = mode === "pan" ? "grab" : "crosshair";
  }
  syncMode();

  function showLegend() {
    const info: ColorInfo = model.get("color_info") ?? { kind: "none" };
    scatter.setPalette(renderLegend(legend, info, (i, ev) => select({ shape: "class", category: i, op: toolbar.opFor(ev) })));
  }

  function renderStatus() {
    const n = scatter.n, held = sample?.shown;
    const drawn = !sample || !held ? `${n.toLocaleString()} point${n === 1 ? "" : "s"}`
      : `${sample.n.toLocaleString()} points · ` + (held.complete
        ? `all ${n.toLocaleString()} in view drawn` : `drawing ${n.toLocaleString()} · zoom in for detail`);
    status.textContent = drawn + (highlight.total ? ` · ${highlight.total.toLocaleString()} selected` : "");
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
    scaleBar.style.width = `${step / Math.abs(bx - ax || 1) * 100}px`;
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
    // a click on the legend selects its class, and only that: it is not also a click on the map
    if (ev.button !== 0 || legend.contains(ev.target as Node)) return;
    const p = relative(ev);
    drag = { mode: model.get("mode"), start: p, last: p, op: toolbar.opFor(ev), moved: false };
    path = [p];
    tooltip.hide();
  });
  const onMove = (ev: MouseEvent) => {
    if (!drag) return;
    const p = relative(ev);
    if (Math.hypot(p[0] - drag.start[0], p[1] - drag.start[1]) > 4) drag.moved = true;
    if (drag.mode === "pan") {
      scatter.pan(p[0] - drag.last[0], p[1] - drag.last[1]);
      drawOverlay();
      sample?.schedule();
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
      if (i >= 0) select({ shape: "point", row: rowOf(i), op: d.op });
      else if (d.op === "replace" && d.mode !== "pan") select({ shape: "clear", op: "replace" });
      return;
    }
    if (d.mode === "pan" || shape.length < 3) return;
    const polygon = simplify(shape).map(([px, py]) => scatter.toData(px, py));
    select({ shape: d.mode === "box" ? "box" : "lasso", polygon, op: d.op });
  };
  window.addEventListener("mousemove", onMove);
  window.addEventListener("mouseup", onUp);

  stage.addEventListener("mousemove", (ev) => {
    if (drag || !grid) return;
    const p = relative(ev);
    const [x, y] = scatter.toData(p[0], p[1]);
    const radius = Math.abs(scatter.toData(8, 0)[0] - scatter.toData(0, 0)[0]);
    const i = grid.nearest(x, y, radius);
    if (i < 0) tooltip.hide();
    else tooltip.hover(rowOf(i), p); // the point's row in the kernel
  });
  stage.addEventListener("mouseleave", () => tooltip.hide());
  stage.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const p = relative(ev);
    scatter.zoomAt(p[0], p[1], Math.exp(-ev.deltaY * 0.0015));
    tooltip.hide();
    drawOverlay();
    sample?.schedule();
  }, { passive: false });
  box.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") select({ shape: "clear", op: "replace" });
  });

  // ---- points: all of them, or (a big map) the sample answering a view ------------------------
  function visibleRect(): Rect {
    const w = stage.clientWidth, h = stage.clientHeight;
    const [x0, y0] = scatter.toData(0, h), [x1, y1] = scatter.toData(w, 0);
    return [x0, y0, x1, y1];
  }

  let readyId = "";
  /** Messages answering `ready` or a view: the lod header, a view's density, points in chunks. */
  function onPoints(msg: Message, buffers: DataView[]): boolean {
    if (msg.type === "lod") {
      sample = new SampleView(msg, (rect) => channel.request({ type: "view", rect }, onPoints), visibleRect,
        (busy) => { box.dataset.viewBusy = String(busy); });
      highlight.sampled(msg.total);
      scatter.density.set(0, new Uint32Array(bytes(buffers[0])), msg.size, sample.bounds);
      return false;
    }
    if (msg.type === "density") {
      viewDensity = { replyTo: msg.reply_to, counts: new Uint32Array(bytes(buffers[0])), size: msg.size, rect: msg.rect };
      return false;
    }
    if (msg.type !== "points") return false;
    const replyTo = msg.reply_to ?? "";
    if (msg.offset === 0) {
      pending = { xy: new Float32Array(2 * msg.total), codes: new Uint16Array(msg.total),
        rows: msg.lod ? new Uint32Array(msg.total) : null, total: msg.total, replyTo };
    }
    if (!pending || pending.replyTo !== replyTo) return false;
    if (msg.count) {
      pending.xy.set(new Float32Array(bytes(buffers[0])), 2 * msg.offset);
      pending.codes.set(new Uint16Array(bytes(buffers[1])), msg.offset);
      if (pending.rows) pending.rows.set(new Uint32Array(bytes(buffers[2])), msg.offset);
    }
    if (!msg.final) return false;
    const p = pending;
    pending = null;
    // a later view was asked for meanwhile: its answer replaces this one
    if (!sample || !p.rows || sample.current(replyTo, readyId)) pointsArrived(p, msg);
    return true;
  }

  function pointsArrived(p: Points, msg: PointsMessage) {
    const first = box.dataset.ready !== "true";
    if (sample && p.rows) {
      sample.arrived(p.replyTo, msg, p.rows);
      const held = sample.shown;
      scatter.setPoints(p.xy, p.total, sample.bounds, !first);
      if (held.complete && held.rect) scatter.density.blank(held.rect);
      else if (viewDensity && viewDensity.replyTo === p.replyTo) {
        scatter.density.set(1, viewDensity.counts, viewDensity.size, viewDensity.rect);
      } else scatter.density.clear(1);
      viewDensity = null;
      box.dataset.viewSeq = String(held.seq);
    } else {
      scatter.setPoints(p.xy, p.total);
    }
    scatter.setColors(p.codes);
    highlight.reset(p.total, sample ? sample.rows : null);
    scatter.setSelected(highlight.selected, highlight.total > 0);
    grid = new GridIndex(p.xy, p.total, scatter.pointBounds);
    showLegend();
    renderStatus();
    drawOverlay();
    box.dataset.ready = "true";
  }

  scatter.onRendered = () => {
    if (firstFrameMs >= 0 || !scatter.n) return;
    scatter.gl.finish(); // the first frame with points, drawn for real
    firstFrameMs = performance.now() - started;
    box.dataset.firstFrameMs = String(Math.round(firstFrameMs));
  };

  // ---- broadcasts: state every view of the widget shows -----------------------------------------
  channel.on("colors", (msg, buffers) => {
    if (!sample) scatter.setColors(new Uint16Array(bytes(buffers[0])));
    else if (msg.sample === sample.shown.id) scatter.setColors(new Uint16Array(bytes(buffers[0])));
    else sample.request(true); // colours of a sample this view does not hold: ask for its own
    showLegend();
  });
  channel.on("selection", (msg, buffers) => {
    if (!highlight.add(msg, buffers, scatter.n, sample ? sample.rows : null)) return;
    scatter.setSelected(highlight.selected, highlight.total > 0);
    focus = null;
    drawOverlay();
    renderStatus();
    exporter?.setCount(highlight.total);
    box.dataset.selected = String(highlight.total);
    box.dataset.selectionSeq = String(msg.seq);
    markGroup(groups, msg.group);
  });
  channel.on("panel", (msg, buffers) => {
    exporter?.suggest(msg.total ? msg.counts : []);
    panel.show(msg, buffers);
  });
  channel.on("charts", (msg) => charts.setCharts(msg));
  channel.on("chart_counts", (msg) => charts.setCounts(msg));
  channel.on("groups", (msg) => renderGroups(groups, msg,
    (k, ev) => select({ shape: "group", group: k, op: toolbar.opFor(ev) })));

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
      highlight.selected.forEach((v, i) => { if (v) out.push(rowOf(i)); });
      return out;
    },
    // a map drawn as a sample: what is held and why, the rows held (base64 uint32), the view's pixels
    dxLod: () => sample && { n: sample.n, budget: sample.budget, held: scatter.n, seq: sample.shown.seq,
      rect: sample.shown.rect, complete: sample.shown.complete, inside: sample.shown.inside, visible: visibleRect(),
      busy: sample.waiting || pending !== null },
    dxShownRows: () => toBase64(new Uint8Array((sample?.rows ?? new Uint32Array(0)).buffer)),
    dxFirstFrameMs: () => firstFrameMs,
  });
  const onHeight = () => { stage.style.height = `${model.get("height")}px`; scatter.draw(); drawOverlay(); };
  model.on("change:mode", syncMode);
  model.on("change:color_info", showLegend);
  model.on("change:height", onHeight);
  const resize = new ResizeObserver(() => { scatter.draw(); drawOverlay(); sample?.schedule(); });
  resize.observe(stage);
  readyId = channel.request({ type: "ready" }, onPoints);

  return () => {
    channel.close();
    model.off("change:mode", syncMode);
    model.off("change:color_info", showLegend);
    model.off("change:height", onHeight);
    window.removeEventListener("mousemove", onMove);
    window.removeEventListener("mouseup", onUp);
    sample?.close();
    charts.release();
    resize.disconnect();
    panel.release();
    tooltip.release();
    scatter.destroy();
    box.remove();
  };
}

/** Mount a map saved by `Explorer.to_html` (no kernel): the same widget over the embedded data. */
export function standalone(root: HTMLElement, payload: string): Promise<void> {
  return mountStandalone(root, payload, render);
}

export default { render };
