// The kernel <-> browser protocol of the Explorer: every message, written once.
//
// Mirrored in Python by dataexplore/widget/protocol.py (TypedDicts of the same names and fields;
// tests/test_protocol.py checks that the two agree, and checks every message the kernel sends in
// the tests). Arrays travel as binary buffers beside the JSON, in chunks under 10 MB.
//
// One correlation mechanism: a request carries `id` (this view's prefix and a counter), every
// message answering it carries `reply_to` with that id (see channel.ts). `select` and `page` change
// state shared by all views of the widget: they are answered by broadcasts (`selection`, `panel`).

export type Mode = "lasso" | "box" | "pan";
export type Op = "replace" | "add" | "subtract";
export type Shape = "lasso" | "box" | "point" | "class" | "group" | "clear";

// ---- synced state (traits) -------------------------------------------------------------------
export interface ColorInfo {
  kind: "none" | "categorical" | "numeric";
  name?: string;
  categories?: string[];
  counts?: number[];
  min?: string;
  max?: string;
  no_value?: number;
  no_value_code?: number;
}

export interface WidgetState {
  height: number;
  mode: Mode;
  color_info: ColorInfo;
  exports: [string, string][]; // [key, label] of the export menu; empty: no menu
}

// ---- browser -> kernel -----------------------------------------------------------------------
export interface ReadyRequest {
  type: "ready";
  id: string;
}

export interface ViewRequest {
  type: "view";
  id: string;
  rect: [number, number, number, number] | null;
}

export interface SelectRequest {
  type: "select";
  id: string;
  shape: Shape;
  op: Op;
  polygon?: [number, number][];
  row?: number;
  category?: number;
  group?: number;
}

export interface HoverRequest {
  type: "hover";
  id: string;
  row: number;
}

export interface PageRequest {
  type: "page";
  id: string;
  page: number;
}

export interface ExportRequest {
  type: "export";
  id: string;
  name: string;
  what: string;
  overwrite: boolean;
}

/** Set chart `chart`'s filter (charts of `version`): `bars` kept, or a value `range`; neither removes it. */
export interface FilterRequest {
  type: "filter";
  id: string;
  version: number;
  chart: number;
  bars?: number[];
  range?: [number, number];
}

export type Request = ReadyRequest | ViewRequest | SelectRequest | HoverRequest | PageRequest | ExportRequest
  | FilterRequest;

// ---- kernel -> browser -----------------------------------------------------------------------
/** A map drawn as a sample: its size, extent and the density of all points (buffer: uint32 counts). */
export interface LodMessage {
  type: "lod";
  reply_to: string;
  total: number;
  bounds: [number, number, number, number];
  budget: number;
  size: number;
}

/** One chunk of points (buffers: float32 xy, uint16 colour codes, and uint32 rows for a sample). */
export interface PointsMessage {
  type: "points";
  offset: number;
  count: number;
  total: number;
  final: boolean;
  reply_to?: string;
  lod?: boolean;
  n?: number;
  rect?: [number, number, number, number] | null;
  inside?: number;
  complete?: boolean;
}

/** The density of a zoomed view whose points do not all fit (buffer: uint32 counts). */
export interface DensityMessage {
  type: "density";
  reply_to: string;
  rect: [number, number, number, number];
  size: number;
}

/** New colour codes (buffer: uint16): for all points, or for the points of the sample that answered
 * request `sample` (a view holding another sample asks for its own). */
export interface ColorsMessage {
  type: "colors";
  sample?: string;
}

/** One chunk of the selection (buffer: uint32 rows, or a bitset over all rows). */
export interface SelectionMessage {
  type: "selection";
  offset: number;
  count: number;
  total: number;
  final: boolean;
  seq: number;
  group: number;
  format?: "rows" | "bits";
  n?: number;
  bytes?: number;
}

/** A page of the selection (buffers: uint32 rows, then one JPEG per row, empty when none). */
export interface PanelMessage {
  type: "panel";
  total: number;
  page: number;
  pages: number;
  counts: [string, number][];
  titles: string[];
  xy: [number, number][];
  mime: string;
}

/** What to show on hover (buffer: a JPEG thumbnail, if any). */
export interface TooltipMessage {
  type: "tooltip";
  reply_to: string;
  row: number;
  lines: [string, string][];
  mime: string;
}

export interface ExportedMessage {
  type: "exported";
  reply_to: string;
  ok: boolean;
  what: string;
  name: string;
  message: string;
  exists: boolean;
  path?: string;
}

export interface GroupsMessage {
  type: "groups";
  title: string;
  columns: string[];
  rows: string[][];
  on_map: number[];
  clear?: boolean;
}

/** One chart under the map: bar names (categorical) or bin edges (numeric), rows per bar over all
 * rows, and (numeric) the rows without a value. */
export interface ChartSpec {
  name: string;
  kind: "categorical" | "numeric";
  labels: string[];
  edges: number[];
  counts: number[];
  missing: number;
}

/** The charts under the map (none: no charts); `version` changes with each new set. */
export interface ChartsMessage {
  type: "charts";
  version: number;
  charts: ChartSpec[];
}

export interface ChartFilter {
  bars?: number[];
  range?: [number, number];
}

/** What the charts highlight: per chart, rows per bar (a histogram's last entry: no value) of the rows
 * passing the other charts' filters (`mode` "filter") or of the map's selection ("selection"), none
 * ("none"); each chart's filter (`{}`: none); rows selected. */
export interface ChartCountsMessage {
  type: "chart_counts";
  version: number;
  mode: "filter" | "selection" | "none";
  selected: number[][];
  filters: ChartFilter[];
  total: number;
}

export type Message = LodMessage | PointsMessage | DensityMessage | ColorsMessage | SelectionMessage | PanelMessage
  | TooltipMessage | ExportedMessage | GroupsMessage | ChartsMessage | ChartCountsMessage;

/** A request as the view writes it: the channel adds the `id`. */
export type Outgoing<R extends Request = Request> = R extends Request ? Omit<R, "id"> : never;
