// The map without a kernel: a self-contained HTML file written by `Explorer.to_html`.
//
// The same widget (`render`) runs against a local stand-in for the kernel: it answers the widget's
// requests (protocol.ts: points, selection shapes, hover, pages) from data embedded in the file,
// gzip-compressed and base64-encoded. Lasso and box use the same even-odd rule as the kernel.
// tests/test_protocol.py replays one recorded session against the kernel and this model and
// compares their answers. The viewer can download the selected ids as CSV or JSON.

import type { AnyModel } from "@anywidget/types";
import type { ColorInfo, Message, PanelMessage, Request, WidgetState } from "./protocol";

// the event handler type of AnyModel (@anywidget/types), which takes any arguments
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Listener = (...args: any[]) => void;

export interface Payload {
  n: number;
  height: number;
  title: string;
  color_info: ColorInfo;
  ids: string[];
  columns: Record<string, string[]>; // tooltip columns, one string per point
  buffers: Record<string, [number, number]>; // name -> [byte offset, byte length] after the header
}

export function pointsInPolygon(xy: Float32Array, n: number, poly: number[][]): number[] {
  const out: number[] = [];
  if (poly.length < 3) return out;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const [x, y] of poly) { x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y); }
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i], y = xy[2 * i + 1];
    if (x < x0 || x > x1 || y < y0 || y > y1) continue;
    let inside = false;
    for (let j = 0, k = poly.length - 1; j < poly.length; k = j++) {
      const [ax, ay] = poly[k], [bx, by] = poly[j];
      if (ay === by) continue;
      if ((ay > y) !== (by > y) && x < ax + (y - ay) * (bx - ax) / (by - ay)) inside = !inside;
    }
    if (inside) out.push(i);
  }
  return out;
}

export function combine(current: number[], add: number[], op: string): number[] {
  if (op === "replace") return Array.from(new Set(add)).sort((a, b) => a - b);
  const set = new Set(current);
  for (const r of add) { if (op === "add") set.add(r); else set.delete(r); }
  return Array.from(set).sort((a, b) => a - b);
}

function csvCell(raw: string): string {
  // text a spreadsheet would run as a formula (=, +, -, @, tab, CR first) gets a leading ' (OWASP)
  const v = /^[=+\-@\t\r]/.test(raw) ? `'${raw}` : raw;
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** A kernel stand-in implementing the anywidget model API the widget uses. */
export class LocalModel implements AnyModel<WidgetState> {
  private state: WidgetState;
  private listeners = new Map<string, Set<Listener>>();
  selected: number[] = [];
  lastPolygon: number[][] | null = null;
  private seq = 0;
  private page = 0;

  constructor(private data: Payload, private xy: Float32Array, private codes: Uint16Array,
              private thumbs: { offsets: Uint32Array; bytes: Uint8Array } | null) {
    // no exports: writing files needs the kernel (the viewer downloads ids instead)
    this.state = { height: data.height, mode: "lasso", color_info: data.color_info, exports: [] };
  }

  readonly widget_manager = {
    get_model: (): never => { throw new Error("a map saved as HTML has no other widgets"); },
  };
  get<K extends keyof WidgetState>(name: K): WidgetState[K] { return this.state[name]; }
  set<K extends keyof WidgetState>(name: K, value: WidgetState[K]) { this.state[name] = value; this.emit(`change:${name}`); }
  save_changes() { /* nothing to sync */ }
  on(event: string, cb: Listener) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event)!.add(cb);
  }
  off(event?: string | null, cb?: Listener | null) {
    if (!event) this.listeners.clear();
    else if (!cb) this.listeners.delete(event);
    else this.listeners.get(event)?.delete(cb);
  }
  private emit(event: string, ...args: unknown[]) { this.listeners.get(event)?.forEach((cb) => cb(...args)); }
  private reply(msg: Message, buffers: ArrayBuffer[] = []) {
    const views = buffers.map((b) => new DataView(b));
    setTimeout(() => this.emit("msg:custom", msg, views), 0);
  }

  send(content: Request) {
    const n = this.data.n;
    if (content.type === "ready") {
      this.reply({ type: "points", reply_to: content.id, offset: 0, count: n, total: n, final: true },
        [this.xy.slice().buffer, this.codes.slice().buffer]);
      this.sendSelection();
    } else if (content.type === "select") {
      // the kernel's rules (dataexplore/widget/state.py selected_rows): a row or class out of range,
      // or a group (a saved map shows no analysis list), changes nothing
      const op = content.shape === "clear" ? "replace" : content.op;
      let rows: number[] = [];
      if (content.shape === "lasso" || content.shape === "box") {
        if (!content.polygon || content.polygon.length < 3 || content.polygon.length > 400) return;
        rows = pointsInPolygon(this.xy, n, content.polygon);
        if (op === "replace") this.lastPolygon = content.polygon;
      } else if (content.shape === "point") {
        if (content.row === undefined || content.row >= n) return;
        rows = [content.row];
      } else if (content.shape === "class") {
        const k = content.category ?? -1, classes = this.data.color_info.categories?.length ?? 0;
        if (k < 0 || k >= classes) return;
        for (let i = 0; i < n; i++) if (this.codes[i] === k) rows.push(i);
      } else if (content.shape !== "clear") {
        return;
      }
      this.selected = combine(this.selected, rows, op);
      this.page = 0;
      this.sendSelection();
    } else if (content.type === "hover") {
      const row = content.row;
      if (row >= n) return;
      const lines: [string, string][] = [["id", this.data.ids[row]]];
      for (const [name, values] of Object.entries(this.data.columns)) lines.push([name, values[row]]);
      const thumb = this.thumb(row);
      this.reply({ type: "tooltip", reply_to: content.id, row, lines, mime: "image/jpeg" }, thumb ? [thumb] : []);
    } else if (content.type === "page") {
      this.page = content.page;
      this.sendPanel();
    }
  }

  private thumb(row: number): ArrayBuffer | null {
    if (!this.thumbs) return null;
    const a = this.thumbs.offsets[row], b = this.thumbs.offsets[row + 1];
    return b > a ? this.thumbs.bytes.slice(a, b).buffer : null;
  }

  private sendSelection() {
    this.seq += 1;
    const rows = new Uint32Array(this.selected);
    this.reply({ type: "selection", offset: 0, count: rows.length, total: rows.length, final: true, seq: this.seq, group: -1 },
      [rows.buffer]);
    this.sendPanel();
    this.emit("selection", this.selected);
  }

  private sendPanel() {
    const size = 24, total = this.selected.length;
    const pages = Math.max(1, Math.ceil(total / size));
    this.page = Math.min(Math.max(this.page, 0), pages - 1);
    const shown = this.selected.slice(this.page * size, (this.page + 1) * size);
    const counts: [string, number][] = [];
    const labels = this.data.columns["label"];
    if (labels && total) {
      const m = new Map<string, number>();
      for (const r of this.selected) m.set(labels[r], (m.get(labels[r]) ?? 0) + 1);
      counts.push(...Array.from(m.entries()).sort((a, b) => b[1] - a[1]).slice(0, 20));
    }
    const buffers = [new Uint32Array(shown).buffer, ...shown.map((r) => this.thumb(r) ?? new ArrayBuffer(0))];
    const panel: PanelMessage = { type: "panel", total, page: this.page, pages, counts,
      titles: shown.map((r) => this.data.ids[r]), xy: shown.map((r) => [this.xy[2 * r], this.xy[2 * r + 1]]),
      mime: "image/jpeg" };
    this.reply(panel, buffers);
  }

  /** The selected rows as CSV (id and the tooltip columns) or JSON. */
  export(format: "csv" | "json"): string {
    const cols = Object.keys(this.data.columns);
    if (format === "json") {
      return JSON.stringify({ ids: this.selected.map((r) => this.data.ids[r]), rows: this.selected,
        polygon: this.lastPolygon }, null, 1);
    }
    const lines = [["id", ...cols].map(csvCell).join(",")];
    for (const r of this.selected) lines.push([this.data.ids[r], ...cols.map((c) => this.data.columns[c][r])].map(csvCell).join(","));
    return lines.join("\n") + "\n";
  }
}

async function unpack(b64: string): Promise<ArrayBuffer> {
  const packed = await (await fetch(`data:application/octet-stream;base64,${b64}`)).blob();
  return new Response(packed.stream().pipeThrough(new DecompressionStream("gzip"))).arrayBuffer();
}

/** Mount a standalone map into `root` from the base64 gzip payload written by `to_html`. */
export async function mountStandalone(root: HTMLElement, b64: string,
  render: (args: { model: AnyModel<WidgetState>; el: HTMLElement }) => () => void): Promise<void> {
  const raw = await unpack(b64);
  const headerLen = new DataView(raw).getUint32(0, true);
  const data = JSON.parse(new TextDecoder().decode(new Uint8Array(raw, 4, headerLen))) as Payload;
  const base = 4 + headerLen;
  const part = (name: string) => {
    const [offset, length] = data.buffers[name];
    return raw.slice(base + offset, base + offset + length);
  };
  const xy = new Float32Array(part("xy"));
  const codes = new Uint16Array(part("codes"));
  const thumbs = data.buffers["thumb_offsets"]
    ? { offsets: new Uint32Array(part("thumb_offsets")), bytes: new Uint8Array(part("thumb_bytes")) } : null;
  const model = new LocalModel(data, xy, codes, thumbs);

  const bar = document.createElement("div");
  bar.className = "dx-share-bar";
  const count = document.createElement("span");
  count.textContent = "Nothing selected";
  bar.appendChild(count);
  for (const format of ["csv", "json"] as const) {
    const b = document.createElement("button");
    b.className = "dx-btn";
    b.textContent = `Download selected ids (${format.toUpperCase()})`;
    b.dataset.download = format;
    b.disabled = true;
    b.onclick = () => {
      const url = URL.createObjectURL(new Blob([model.export(format)], { type: format === "csv" ? "text/csv" : "application/json" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = `selection.${format}`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    };
    bar.appendChild(b);
  }
  model.on("selection", (rows: number[]) => {
    count.textContent = rows.length ? `${rows.length.toLocaleString()} selected` : "Nothing selected";
    bar.querySelectorAll("button").forEach((b) => { (b as HTMLButtonElement).disabled = rows.length === 0; });
  });
  root.appendChild(bar);
  const mapEl = document.createElement("div");
  root.appendChild(mapEl);
  render({ model, el: mapEl });
  Object.assign(root, { dxStandalone: { selectedIds: () => model.selected.map((r) => data.ids[r]),
    lastPolygon: () => model.lastPolygon } });
  root.dataset.loaded = "true";
}
