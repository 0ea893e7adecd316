// WebGL2 point renderer with a pan/zoom camera. Draws unselected points first (dimmed when a
// selection exists), then selected points on top; never hides a point. Density layers (maps drawn
// as a sample) go under the points.

import { DensityLayers, Rect } from "./density";
import { program } from "./gl";

const VS = `#version 300 es
in vec2 a_pos;
in float a_color;
in float a_sel;
uniform vec2 u_center;
uniform vec2 u_scale;
uniform float u_size;
uniform float u_ncolors;
uniform int u_pass;       // 0: unselected, 1: selected
uniform bool u_anySel;
uniform sampler2D u_palette;
out vec4 v_color;
void main() {
  bool sel = a_sel > 0.5;
  if ((u_pass == 1) != sel) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); gl_PointSize = 0.0; return; }
  gl_Position = vec4((a_pos - u_center) * u_scale, 0.0, 1.0);
  vec3 rgb = texture(u_palette, vec2((a_color + 0.5) / u_ncolors, 0.5)).rgb;
  float alpha = 1.0;
  if (u_anySel && !sel) { rgb = mix(rgb, vec3(0.72), 0.55); alpha = 0.5; }
  v_color = vec4(rgb, alpha);
  gl_PointSize = sel && u_anySel ? u_size + 1.0 : u_size;
}`;

const FS = `#version 300 es
precision mediump float;
in vec4 v_color;
uniform float u_opacity;
out vec4 outColor;
void main() {
  vec2 d = gl_PointCoord - 0.5;
  float r = dot(d, d);
  if (r > 0.25) discard;
  float edge = smoothstep(0.25, 0.16, r);
  outColor = vec4(v_color.rgb, v_color.a * u_opacity * edge);
}`;

export interface View { cx: number; cy: number; zoom: number; }

export class Scatter {
  readonly gl: WebGL2RenderingContext;
  private prog: WebGLProgram;
  private vao: WebGLVertexArrayObject;
  private posBuf: WebGLBuffer;
  private colorBuf: WebGLBuffer;
  private selBuf: WebGLBuffer;
  private palette: WebGLTexture;
  private ncolors = 1;
  n = 0;
  xy: Float32Array<ArrayBufferLike> = new Float32Array(0);
  bounds: Rect = [-1, -1, 1, 1]; // what the camera frames: the points, or the whole map of a sample
  pointBounds: Rect = [-1, -1, 1, 1]; // the points held
  view: View = { cx: 0, cy: 0, zoom: 1 };
  anySelected = false;
  readonly density: DensityLayers;
  onRendered: (() => void) | null = null;
  private frame = 0;

  constructor(readonly canvas: HTMLCanvasElement) {
    const gl = canvas.getContext("webgl2", { antialias: false, premultipliedAlpha: false, preserveDrawingBuffer: true });
    if (!gl) throw new Error("WebGL2 is not available in this browser");
    this.gl = gl;
    const prog = program(gl, VS, FS);
    this.prog = prog;
    this.vao = gl.createVertexArray()!;
    this.posBuf = gl.createBuffer()!;
    this.colorBuf = gl.createBuffer()!;
    this.selBuf = gl.createBuffer()!;
    gl.bindVertexArray(this.vao);
    const attr = (buf: WebGLBuffer, name: string, size: number, type: number, normalized: boolean) => {
      const loc = gl.getAttribLocation(prog, name);
      gl.bindBuffer(gl.ARRAY_BUFFER, buf);
      gl.enableVertexAttribArray(loc);
      gl.vertexAttribPointer(loc, size, type, normalized, 0, 0);
    };
    attr(this.posBuf, "a_pos", 2, gl.FLOAT, false);
    attr(this.colorBuf, "a_color", 1, gl.UNSIGNED_SHORT, false);
    attr(this.selBuf, "a_sel", 1, gl.UNSIGNED_BYTE, false);
    gl.bindVertexArray(null);
    this.palette = gl.createTexture()!;
    this.density = new DensityLayers(gl);
    this.setPalette([[78, 121, 167]]);
  }

  /** Hold `n` points. `frame`: the extent the camera fits (default: the points' own); `keepView`:
   *  leave the camera where it is (a sample replaced by a finer one). */
  setPoints(xy: Float32Array<ArrayBufferLike>, n: number, frame?: Rect, keepView = false): void {
    const gl = this.gl;
    this.xy = xy;
    this.n = n;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.posBuf);
    gl.bufferData(gl.ARRAY_BUFFER, xy.subarray(0, 2 * n), gl.STATIC_DRAW);
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      const x = xy[2 * i], y = xy[2 * i + 1];
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    if (!(n > 0)) { x0 = -1; y0 = -1; x1 = 1; y1 = 1; }
    if (x1 - x0 < 1e-9) { x0 -= 0.5; x1 += 0.5; }
    if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
    this.pointBounds = [x0, y0, x1, y1];
    if (frame) {
      let [fx0, fy0, fx1, fy1] = frame;
      if (fx1 - fx0 < 1e-9) { fx0 -= 0.5; fx1 += 0.5; }
      if (fy1 - fy0 < 1e-9) { fy0 -= 0.5; fy1 += 0.5; }
      this.bounds = [fx0, fy0, fx1, fy1];
    } else {
      this.bounds = this.pointBounds;
    }
    this.setSelected(new Uint8Array(n), false);
    if (keepView) this.draw(); else this.resetView();
  }

  setColors(codes: Uint16Array): void {
    const gl = this.gl;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.colorBuf);
    gl.bufferData(gl.ARRAY_BUFFER, codes.subarray(0, this.n), gl.STATIC_DRAW);
    this.draw();
  }

  setPalette(colors: [number, number, number][]): void {
    const gl = this.gl;
    this.ncolors = Math.max(1, colors.length);
    const data = new Uint8Array(this.ncolors * 4);
    colors.forEach(([r, g, b], i) => data.set([r, g, b, 255], 4 * i));
    gl.bindTexture(gl.TEXTURE_2D, this.palette);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, this.ncolors, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, data);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    this.draw();
  }

  setSelected(mask: Uint8Array, any: boolean): void {
    const gl = this.gl;
    this.anySelected = any;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.selBuf);
    gl.bufferData(gl.ARRAY_BUFFER, mask.subarray(0, this.n), gl.DYNAMIC_DRAW);
    this.draw();
  }

  resetView(): void {
    const [x0, y0, x1, y1] = this.bounds;
    this.view = { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, zoom: 1 };
    this.draw();
  }

  /** Clip-space scale for the current view: the data bounds fit the canvas with a margin, aspect kept. */
  scale(): [number, number] {
    const [x0, y0, x1, y1] = this.bounds;
    const w = this.canvas.clientWidth || 1, h = this.canvas.clientHeight || 1;
    const s = 1.9 / Math.max((x1 - x0) / w, (y1 - y0) / h) * this.view.zoom;
    return [s / w, s / h];
  }

  /** Pixel (relative to the canvas) -> data coordinates. */
  toData(px: number, py: number): [number, number] {
    const [sx, sy] = this.scale();
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    return [this.view.cx + (px / w * 2 - 1) / sx, this.view.cy + (1 - py / h * 2) / sy];
  }

  /** Data coordinates -> pixel (relative to the canvas). */
  toPixel(x: number, y: number): [number, number] {
    const [sx, sy] = this.scale();
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    return [((x - this.view.cx) * sx + 1) / 2 * w, (1 - (y - this.view.cy) * sy) / 2 * h];
  }

  pan(dxPx: number, dyPx: number): void {
    const [sx, sy] = this.scale();
    this.view.cx -= dxPx / (this.canvas.clientWidth / 2) / sx;
    this.view.cy += dyPx / (this.canvas.clientHeight / 2) / sy;
    this.draw();
  }

  zoomAt(px: number, py: number, factor: number): void {
    const [x, y] = this.toData(px, py);
    const zoom = Math.max(0.2, Math.min(5000, this.view.zoom * factor));
    const f = this.view.zoom / zoom;
    this.view = { cx: x + (this.view.cx - x) * f, cy: y + (this.view.cy - y) * f, zoom };
    this.draw();
  }

  /** Point size in CSS pixels: smaller for more points, growing as you zoom in. */
  pointSize(): number {
    const base = Math.max(1.5, Math.min(7, 9 - 1.3 * Math.log10(Math.max(this.n, 1))));
    return Math.min(24, base * Math.pow(this.view.zoom, 0.4));
  }

  opacity(): number {
    return Math.max(0.5, Math.min(0.95, 1.25 - 0.15 * Math.log10(Math.max(this.n, 1)) * Math.pow(this.view.zoom, -0.2)));
  }

  draw(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  render(): void {
    const gl = this.gl, c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(c.clientWidth * dpr)), h = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    gl.viewport(0, 0, w, h);
    gl.clearColor(1, 1, 1, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    const [sx, sy] = this.scale();
    this.density.draw([this.view.cx, this.view.cy], [sx, sy]);
    if (!this.n) { this.onRendered?.(); return; }
    gl.useProgram(this.prog);
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
    const u = (name: string) => gl.getUniformLocation(this.prog, name);
    gl.uniform2f(u("u_center"), this.view.cx, this.view.cy);
    gl.uniform2f(u("u_scale"), sx, sy);
    gl.uniform1f(u("u_size"), this.pointSize() * dpr);
    gl.uniform1f(u("u_opacity"), this.opacity());
    gl.uniform1f(u("u_ncolors"), this.ncolors);
    gl.uniform1i(u("u_anySel"), this.anySelected ? 1 : 0);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.palette);
    gl.uniform1i(u("u_palette"), 0);
    gl.bindVertexArray(this.vao);
    for (const pass of [0, 1]) {
      gl.uniform1i(u("u_pass"), pass);
      gl.drawArrays(gl.POINTS, 0, this.n);
    }
    gl.bindVertexArray(null);
    this.onRendered?.();
  }

  destroy(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
    const ext = this.gl.getExtension("WEBGL_lose_context");
    if (ext) ext.loseContext();
  }
}
