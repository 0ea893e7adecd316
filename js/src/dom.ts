// Small DOM and buffer helpers shared by the views.

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, parent?: HTMLElement, text?: string) {
  const e = document.createElement(tag);
  e.className = cls;
  if (text !== undefined) e.textContent = text; // always text, never HTML
  if (parent) parent.appendChild(e);
  return e;
}

/** The bytes of a buffer that arrived from the kernel (a DataView over a larger buffer, or a buffer). */
export function bytes(dv: DataView | ArrayBuffer): ArrayBuffer {
  if (dv instanceof ArrayBuffer) return dv;
  return dv.buffer.slice(dv.byteOffset, dv.byteOffset + dv.byteLength) as ArrayBuffer;
}

export function imageUrl(buf: ArrayBuffer, mime: string): string {
  return URL.createObjectURL(new Blob([buf], { type: mime }));
}

export function toBase64(data: Uint8Array): string {
  let text = "";
  for (let i = 0; i < data.length; i += 0x8000) text += String.fromCharCode(...data.subarray(i, i + 0x8000));
  return btoa(text);
}

/** 1, 2 or 5 times a power of ten, at most `x`. */
export function niceStep(x: number): number {
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  const m = x / p;
  return (m >= 5 ? 5 : m >= 2 ? 2 : 1) * p;
}
