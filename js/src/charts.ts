// The linked charts under the map: bars of a categorical column, a histogram of a numeric one. They
// draw the counts the kernel computed (all rows, and the highlighted rows) and report clicks and
// brushes as filter requests; they count nothing themselves.
//
// Bar charts: a click keeps that bar (click it again: no filter), Shift/Ctrl/Cmd+click adds or
// removes a bar. Histograms: drag across the bins to keep a range (snapped to bin edges), click one
// bin to keep it. The "×" of a chart removes its filter.

import { el } from "./dom";
import type { ChartCountsMessage, ChartFilter, ChartSpec, ChartsMessage, FilterRequest, Outgoing } from "./protocol";

type Send = (request: Outgoing<FilterRequest>) => void;

interface Drawn {
  spec: ChartSpec;
  root: HTMLElement;
  bars: HTMLElement[]; // one per bar or bin (and a histogram's no-value line last)
  summary: HTMLElement;
  reset: HTMLButtonElement;
  brush: HTMLElement | null;
}

const fmt = (v: number) => (Number.isInteger(v) ? v.toLocaleString() : Number(v.toPrecision(4)).toString());

export class ChartsView {
  version = 0;
  private drawn: Drawn[] = [];
  private filters: ChartFilter[] = [];
  private drag: { k: number; start: number; end: number } | null = null;
  private readonly onMove = (ev: MouseEvent) => this.moved(ev);
  private readonly onUp = (ev: MouseEvent) => this.released(ev);

  constructor(private readonly root: HTMLElement, private readonly send: Send) {
    root.style.display = "none";
    window.addEventListener("mousemove", this.onMove);
    window.addEventListener("mouseup", this.onUp);
  }

  /** A new set of charts: draw their full-data counts. */
  setCharts(msg: ChartsMessage): void {
    this.version = msg.version;
    this.filters = msg.charts.map(() => ({}));
    this.drag = null;
    this.root.replaceChildren();
    this.root.style.display = msg.charts.length ? "" : "none";
    this.drawn = msg.charts.map((spec, k) => this.draw(spec, k));
  }

  /** What the charts highlight now, and each chart's filter. */
  setCounts(msg: ChartCountsMessage): void {
    if (msg.version !== this.version) return;
    this.filters = msg.filters;
    this.drawn.forEach((d, k) => {
      const sel = msg.mode === "none" ? null : msg.selected[k] ?? null;
      const full = d.spec.kind === "numeric" ? [...d.spec.counts, d.spec.missing] : d.spec.counts;
      const most = Math.max(1, ...d.spec.counts);
      d.bars.forEach((bar, i) => {
        const hl = bar.querySelector<HTMLElement>(".dx-bar-hl");
        const count = bar.querySelector<HTMLElement>(".dx-bar-count");
        const s = sel ? sel[i] ?? 0 : null;
        bar.dataset.selected = s === null ? "" : String(s);
        const share = s === null ? 0 : 100 * s / most;
        if (hl) {
          if (d.spec.kind === "numeric") hl.style.height = `${share}%`;
          else hl.style.width = `${share}%`;
        }
        if (count) count.textContent = s === null ? full[i].toLocaleString() : `${s.toLocaleString()} / ${full[i].toLocaleString()}`;
        bar.title = this.title(d.spec, i) + (s === null ? "" : `: ${s.toLocaleString()} of ${full[i].toLocaleString()}`);
      });
      const f = this.filters[k] ?? {};
      const chosen = new Set(f.bars ?? []);
      if (d.spec.kind === "categorical") d.bars.forEach((bar, i) => bar.classList.toggle("dx-bar-chosen", chosen.has(i)));
      d.root.classList.toggle("dx-chart-filtered", Boolean(f.bars || f.range));
      d.reset.disabled = !(f.bars || f.range);
      this.showBrush(k, f.range ? this.binsOf(d.spec, f.range) : null);
      const total = d.spec.counts.reduce((a, b) => a + b, 0) + d.spec.missing;
      const shown = sel ? sel.reduce((a, b) => a + b, 0) : null;
      d.summary.textContent = shown === null ? `${total.toLocaleString()} rows`
        : `${shown.toLocaleString()} of ${total.toLocaleString()} ${msg.mode === "filter" ? "pass the other filters" : "selected"}`;
    });
    this.root.dataset.countsMode = msg.mode;
    this.root.dataset.countsSeq = String(Number(this.root.dataset.countsSeq ?? 0) + 1);
  }

  release(): void {
    window.removeEventListener("mousemove", this.onMove);
    window.removeEventListener("mouseup", this.onUp);
  }

  // ---- drawing --------------------------------------------------------------------------------
  private draw(spec: ChartSpec, k: number): Drawn {
    const root = el("div", `dx-chart dx-chart-${spec.kind}`, this.root);
    root.dataset.chart = String(k);
    root.dataset.name = spec.name;
    const head = el("div", "dx-chart-head", root);
    el("span", "dx-chart-title", head, spec.name);
    const summary = el("span", "dx-chart-summary", head);
    const reset = el("button", "dx-btn dx-chart-reset", head, "×");
    reset.title = "Remove this chart's filter (Esc: all filters and the selection)";
    reset.disabled = true;
    reset.onclick = () => this.send({ type: "filter", version: this.version, chart: k });
    root.addEventListener("mousedown", (ev) => ev.stopPropagation()); // JupyterLab: Shift+drag selects cells
    const drawn: Drawn = { spec, root, bars: [], summary, reset, brush: null };
    if (spec.kind === "categorical") this.drawBars(drawn, k);
    else this.drawHistogram(drawn, k);
    summary.textContent = `${(spec.counts.reduce((a, b) => a + b, 0) + spec.missing).toLocaleString()} rows`;
    return drawn;
  }

  private drawBars(d: Drawn, k: number): void {
    const list = el("div", "dx-bars", d.root);
    const most = Math.max(1, ...d.spec.counts);
    d.spec.labels.forEach((label, i) => {
      const bar = el("div", "dx-bar-row", list);
      bar.dataset.bar = String(i);
      bar.dataset.count = String(d.spec.counts[i]);
      bar.title = label;
      el("span", "dx-bar-name", bar, label);
      const track = el("span", "dx-bar-track", bar);
      el("span", "dx-bar-full", track).style.width = `${100 * d.spec.counts[i] / most}%`;
      el("span", "dx-bar-hl", track).style.width = "0%";
      el("span", "dx-bar-count", bar, d.spec.counts[i].toLocaleString());
      bar.addEventListener("click", (ev) => this.clickBar(k, i, ev));
      d.bars.push(bar);
    });
  }

  private drawHistogram(d: Drawn, k: number): void {
    const plot = el("div", "dx-hist", d.root);
    const bins = d.spec.counts.length;
    const most = Math.max(1, ...d.spec.counts);
    d.spec.counts.forEach((c, i) => {
      const bin = el("div", "dx-bin", plot);
      bin.dataset.bar = String(i);
      bin.dataset.count = String(c);
      bin.title = this.title(d.spec, i);
      bin.style.left = `${100 * i / bins}%`;
      bin.style.width = `${100 / bins}%`;
      el("span", "dx-bin-full", bin).style.height = `${100 * c / most}%`;
      el("span", "dx-bar-hl", bin).style.height = "0%";
      d.bars.push(bin);
    });
    d.brush = el("div", "dx-brush", plot);
    d.brush.style.display = "none";
    const axis = el("div", "dx-hist-axis", d.root);
    el("span", "", axis, fmt(d.spec.edges[0]));
    el("span", "", axis, fmt(d.spec.edges[bins]));
    const none = el("div", "dx-bar-none", d.root);
    none.dataset.bar = String(bins);
    none.dataset.count = String(d.spec.missing);
    el("span", "", none, "no value: ");
    el("span", "dx-bar-count", none, d.spec.missing.toLocaleString());
    none.style.display = d.spec.missing ? "" : "none";
    d.bars.push(none);
    plot.addEventListener("mousedown", (ev) => {
      if (ev.button !== 0) return;
      ev.preventDefault();
      const i = this.binAt(plot, bins, ev);
      this.drag = { k, start: i, end: i };
      this.showBrush(k, [i, i]);
    });
  }

  private title(spec: ChartSpec, i: number): string {
    if (spec.kind === "categorical") return spec.labels[i] ?? "";
    if (i >= spec.counts.length) return "no value";
    return `${fmt(spec.edges[i])} – ${fmt(spec.edges[i + 1])}`;
  }

  // ---- interaction ----------------------------------------------------------------------------
  private clickBar(k: number, i: number, ev: MouseEvent): void {
    const now = new Set(this.filters[k]?.bars ?? []);
    if (ev.shiftKey || ev.ctrlKey || ev.metaKey) {
      if (now.has(i)) now.delete(i);
      else now.add(i);
    } else if (now.size === 1 && now.has(i)) now.clear();
    else { now.clear(); now.add(i); }
    const bars = [...now].sort((a, b) => a - b);
    // kept at once, not when the kernel answers: a quick second Shift+click builds on this one
    this.filters[k] = now.size ? { bars } : {};
    this.send({ type: "filter", version: this.version, chart: k, ...(now.size ? { bars } : {}) });
  }

  private binAt(plot: HTMLElement, bins: number, ev: MouseEvent): number {
    const r = plot.getBoundingClientRect();
    const f = (ev.clientX - r.left) / Math.max(1, r.width);
    return Math.min(bins - 1, Math.max(0, Math.floor(f * bins)));
  }

  private moved(ev: MouseEvent): void {
    if (!this.drag) return;
    const d = this.drawn[this.drag.k];
    const plot = d.root.querySelector<HTMLElement>(".dx-hist");
    if (!plot) return;
    this.drag.end = this.binAt(plot, d.spec.counts.length, ev);
    this.showBrush(this.drag.k, [this.drag.start, this.drag.end]);
  }

  private released(ev: MouseEvent): void {
    if (!this.drag) return;
    this.moved(ev);
    const { k, start, end } = this.drag;
    this.drag = null;
    const d = this.drawn[k];
    const [a, b] = [Math.min(start, end), Math.max(start, end)];
    const was = this.filters[k]?.range ? this.binsOf(d.spec, this.filters[k].range!) : null;
    if (a === b && was && was[0] === a && was[1] === b) { // a click on the one bin kept: no filter
      this.send({ type: "filter", version: this.version, chart: k });
      return;
    }
    this.send({ type: "filter", version: this.version, chart: k, range: [d.spec.edges[a], d.spec.edges[b + 1]] });
  }

  /** The bins a range covers (first, last), for drawing its brush. */
  private binsOf(spec: ChartSpec, range: [number, number]): [number, number] {
    const e = spec.edges, bins = spec.counts.length;
    let a = 0, b = bins - 1;
    while (a < bins - 1 && e[a + 1] <= range[0]) a++;
    while (b > a && e[b] >= range[1]) b--;
    return [a, b];
  }

  private showBrush(k: number, bins: [number, number] | null): void {
    const d = this.drawn[k];
    if (!d?.brush) return;
    if (this.drag && this.drag.k === k && bins === null) return;
    if (!bins) { d.brush.style.display = "none"; return; }
    const n = d.spec.counts.length, [a, b] = [Math.min(...bins), Math.max(...bins)];
    d.brush.style.display = "";
    d.brush.style.left = `${100 * a / n}%`;
    d.brush.style.width = `${100 * (b - a + 1) / n}%`;
    d.root.dataset.brush = `${a},${b}`;
  }
}
