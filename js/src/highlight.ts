// The selection as the view holds it: which of the points it draws are selected. It arrives from the
// kernel in chunks, as rows or (on a big map) as a bitset over all rows.

import { bytes } from "./dom";
import type { SelectionMessage } from "./protocol";

export class Highlight {
  /** One byte per point drawn: 1 if selected. */
  selected = new Uint8Array(0);
  /** How many points are selected in all (also those not drawn). */
  total = 0;
  /** On a big map: the selection as bits over all rows. */
  private bits: Uint8Array | null = null;
  private rowChunks: Uint32Array | null = null;
  private bitChunks: Uint8Array | null = null;

  /** A map of `n` rows drawn as a sample: selections are kept as bits over all rows. */
  sampled(n: number): void {
    this.bits = new Uint8Array((n + 7) >> 3);
  }

  /** `drawn` points arrived (`rows`: their row ids on a sampled map, null when all points are drawn). */
  reset(drawn: number, rows: Uint32Array | null): void {
    if (rows && this.bits) this.fromBits(rows);
    else { this.selected = new Uint8Array(drawn); this.total = 0; }
  }

  /** Add a chunk; returns true when the selection is complete (then `selected` and `total` are new). */
  add(msg: SelectionMessage, buffers: DataView[], drawn: number, rows: Uint32Array | null): boolean {
    if (msg.format === "bits") {
      if (msg.offset === 0) this.bitChunks = new Uint8Array(msg.bytes ?? 0);
      if (!this.bitChunks) return false;
      if (msg.count) this.bitChunks.set(new Uint8Array(bytes(buffers[0])), msg.offset);
      if (!msg.final) return false;
      this.bits = this.bitChunks;
      this.bitChunks = null;
    } else {
      if (msg.offset === 0) this.rowChunks = new Uint32Array(msg.total);
      if (!this.rowChunks) return false;
      if (msg.count) this.rowChunks.set(new Uint32Array(bytes(buffers[0])), msg.offset);
      if (!msg.final) return false;
      const got = this.rowChunks;
      this.rowChunks = null;
      if (this.bits) {
        const bits = new Uint8Array(this.bits.length);
        for (const r of got) bits[r >> 3] |= 1 << (r & 7);
        this.bits = bits;
      } else {
        this.selected = new Uint8Array(drawn);
        for (const r of got) if (r < drawn) this.selected[r] = 1;
      }
    }
    this.total = msg.total;
    if (this.bits && rows) this.fromBits(rows);
    return true;
  }

  private fromBits(rows: Uint32Array): void {
    const bits = this.bits!;
    this.selected = new Uint8Array(rows.length);
    rows.forEach((r, i) => { this.selected[i] = (bits[r >> 3] >> (r & 7)) & 1; });
  }
}
