// A uniform-grid spatial index over the points: nearest-point queries for hover and click in O(1)-ish.

export class GridIndex {
  private cellStart: Uint32Array;
  private items: Uint32Array;
  private readonly size: number;
  private readonly x0: number;
  private readonly y0: number;
  private readonly cw: number;
  private readonly ch: number;

  constructor(private xy: Float32Array, n: number, bounds: [number, number, number, number]) {
    const [x0, y0, x1, y1] = bounds;
    this.size = Math.max(1, Math.min(1024, Math.ceil(Math.sqrt(n / 4))));
    this.x0 = x0;
    this.y0 = y0;
    this.cw = Math.max((x1 - x0) / this.size, 1e-12);
    this.ch = Math.max((y1 - y0) / this.size, 1e-12);
    const cells = this.size * this.size;
    const count = new Uint32Array(cells + 1);
    const cellOf = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const c = this.cell(xy[2 * i], xy[2 * i + 1]);
      cellOf[i] = c;
      count[c + 1]++;
    }
    for (let c = 0; c < cells; c++) count[c + 1] += count[c];
    this.cellStart = count.slice();
    const fill = count.slice(0, cells);
    this.items = new Uint32Array(n);
    for (let i = 0; i < n; i++) this.items[fill[cellOf[i]]++] = i;
  }

  private clampCell(v: number): number {
    return Math.max(0, Math.min(this.size - 1, Math.floor(v)));
  }

  private cell(x: number, y: number): number {
    return this.clampCell((y - this.y0) / this.ch) * this.size + this.clampCell((x - this.x0) / this.cw);
  }

  /** Index of the point nearest to (x, y) within `radius` (data units), or -1. */
  nearest(x: number, y: number, radius: number): number {
    const cx0 = this.clampCell((x - radius - this.x0) / this.cw), cx1 = this.clampCell((x + radius - this.x0) / this.cw);
    const cy0 = this.clampCell((y - radius - this.y0) / this.ch), cy1 = this.clampCell((y + radius - this.y0) / this.ch);
    if ((cx1 - cx0 + 1) * (cy1 - cy0 + 1) > 4096) return -1; // zoomed far out: too coarse to hover
    let best = -1, bestD = radius * radius;
    for (let cy = cy0; cy <= cy1; cy++) {
      for (let cx = cx0; cx <= cx1; cx++) {
        const c = cy * this.size + cx;
        for (let k = this.cellStart[c]; k < this.cellStart[c + 1]; k++) {
          const i = this.items[k];
          const dx = this.xy[2 * i] - x, dy = this.xy[2 * i + 1] - y;
          const d = dx * dx + dy * dy;
          if (d <= bestD) { bestD = d; best = i; }
        }
      }
    }
    return best;
  }
}
