// A map with more points than the kernel's `max_points` is drawn as a sample over a density layer of
// all points. After each pan or zoom (once the view settles) the view asks the kernel for the points
// of what it shows; the answer replaces the sample. One request at a time: the latest view goes next.

import type { Rect } from "./density";
import type { LodMessage, PointsMessage } from "./protocol";

export interface Shown {
  id: string; // the request the points answer
  seq: number; // its number among this view's view requests (0: the overview)
  rect: Rect | null;
  complete: boolean;
  inside: number;
}

export class SampleView {
  readonly n: number;
  readonly bounds: Rect;
  readonly budget: number;
  /** The row id of each point drawn. */
  rows: Uint32Array = new Uint32Array(0);
  shown: Shown = { id: "", seq: 0, rect: null, complete: false, inside: 0 };
  private inFlight: string | null = null;
  private inFlightSeq = 0;
  private count = 0;
  private dirty = false;
  private forced = false;
  private timer = 0;
  private timerSet = false;
  private lost = 0;

  constructor(msg: LodMessage, private readonly ask: (rect: Rect | null) => string,
              private readonly visible: () => Rect, private readonly busy: (busy: boolean) => void) {
    this.n = msg.total;
    this.bounds = msg.bounds;
    this.budget = msg.budget;
  }

  /** The view moved: ask for its points once it has not moved for 200 ms. */
  schedule(): void {
    window.clearTimeout(this.timer);
    this.timerSet = true;
    this.timer = window.setTimeout(() => { this.timerSet = false; this.request(); }, 200);
  }

  /** Ask for the points of the view now (`force`: even if what is held already covers it). */
  request(force = false): void {
    if (this.inFlight !== null) { this.dirty = true; this.forced ||= force; return; }
    force ||= this.forced;
    this.forced = false;
    const v = this.visible();
    const mx = (v[2] - v[0]) / 4, my = (v[3] - v[1]) / 4; // a margin, so a small pan needs nothing new
    const rect: Rect = [v[0] - mx, v[1] - my, v[2] + mx, v[3] + my];
    const whole = within(this.bounds, rect);
    const held = this.shown;
    if (!force && ((whole && held.rect === null) || (held.complete && held.rect && within(v, held.rect)))) return;
    this.dirty = false;
    this.inFlightSeq = ++this.count;
    this.inFlight = this.ask(whole ? null : rect);
    this.busy(true);
    const id = this.inFlight;
    window.clearTimeout(this.lost);
    this.lost = window.setTimeout(() => this.answered(id), 60_000); // never wait forever for a lost answer
  }

  /** Is `id` the answer the view waits for (or the overview)? Older answers are dropped. */
  current(id: string, overview: string): boolean {
    return id === this.inFlight || id === overview;
  }

  /** Points answering request `id` are drawn. */
  arrived(id: string, msg: PointsMessage, rows: Uint32Array): void {
    this.rows = rows;
    const seq = id === this.inFlight ? this.inFlightSeq : 0;
    this.shown = { id, seq, rect: msg.rect ?? null, complete: !!msg.complete, inside: msg.inside ?? 0 };
    this.answered(id);
  }

  private answered(id: string): void {
    if (id !== this.inFlight) return;
    this.inFlight = null;
    this.busy(false);
    if (this.dirty) this.request();
  }

  /** Waiting for an answer, or about to ask? */
  get waiting(): boolean {
    return this.timerSet || this.inFlight !== null;
  }

  close(): void {
    window.clearTimeout(this.timer);
    window.clearTimeout(this.lost);
  }
}

export const within = (a: Rect, b: Rect) => a[0] >= b[0] && a[1] >= b[1] && a[2] <= b[2] && a[3] <= b[3];
