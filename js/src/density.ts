// Density layers for maps drawn as a sample: point counts binned on a grid (sent by the kernel),
// log-scaled into a texture and drawn under the points, so regions the sample misses still show.
// Layer 0 covers the whole map; layer 1, drawn over it, the current view at a finer grid (or a
// blank where every point of the view is drawn).

import { program } from "./gl";

export type Rect = [number, number, number, number]; // x0, y0, x1, y1 in map coordinates

const VS = `#version 300 es
in vec2 a_corner;
uniform vec4 u_rect;
uniform vec2 u_center;
uniform vec2 u_scale;
out vec2 v_uv;
void main() {
  v_uv = a_corner;
  gl_Position = vec4((mix(u_rect.xy, u_rect.zw, a_corner) - u_center) * u_scale, 0.0, 1.0);
}`;

const FS = `#version 300 es
precision mediump float;
in vec2 v_uv;
uniform sampler2D u_tex;
uniform bool u_opaque;
out vec4 outColor;
void main() {
  float t = texture(u_tex, v_uv).r;
  if (t <= 0.0) {
    if (u_opaque) { outColor = vec4(1.0); return; } // a finer layer hides the coarse one under it
    discard;
  }
  outColor = vec4(mix(vec3(0.91, 0.92, 0.95), vec3(0.52, 0.56, 0.65), t), 1.0);
}`;

/** Counts -> bytes: 0 stays 0 (nothing drawn), others log-scaled into 1..255. */
export function logScale(counts: Uint32Array): Uint8Array {
  let max = 0;
  for (let i = 0; i < counts.length; i++) if (counts[i] > max) max = counts[i];
  const out = new Uint8Array(counts.length);
  const k = 255 / Math.log1p(max || 1);
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i];
    if (c) out[i] = Math.max(1, Math.round(Math.log1p(c) * k));
  }
  return out;
}

interface Layer { tex: WebGLTexture; rect: Rect | null; opaque: boolean; }

export class DensityLayers {
  private prog: WebGLProgram;
  private vao: WebGLVertexArrayObject;
  private layers: Layer[];

  constructor(private gl: WebGL2RenderingContext) {
    const prog = program(gl, VS, FS);
    this.prog = prog;
    this.vao = gl.createVertexArray()!;
    gl.bindVertexArray(this.vao);
    const buf = gl.createBuffer()!;
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([0, 0, 1, 0, 0, 1, 1, 1]), gl.STATIC_DRAW);
    const loc = gl.getAttribLocation(prog, "a_corner");
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
    gl.bindVertexArray(null);
    this.layers = [0, 1].map((k) => ({ tex: gl.createTexture()!, rect: null, opaque: k > 0 }));
  }

  private upload(layer: Layer, data: Uint8Array, w: number, h: number, smooth: boolean) {
    const gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, layer.tex);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.R8, w, h, 0, gl.RED, gl.UNSIGNED_BYTE, data);
    const filter = smooth ? gl.LINEAR : gl.NEAREST;
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, filter);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, filter);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
  }

  /** Layer `k` shows `counts` (size × size, row 0 at the bottom) over `rect`. */
  set(k: 0 | 1, counts: Uint32Array, size: number, rect: Rect): void {
    this.upload(this.layers[k], logScale(counts), size, size, true);
    this.layers[k].rect = rect;
  }

  /** Layer 1 hides the layers under it inside `rect` (every point there is drawn). */
  blank(rect: Rect): void {
    this.upload(this.layers[1], new Uint8Array(1), 1, 1, false);
    this.layers[1].rect = rect;
  }

  clear(k: 0 | 1): void {
    this.layers[k].rect = null;
  }

  draw(center: [number, number], scale: [number, number]): void {
    const gl = this.gl;
    if (!this.layers.some((l) => l.rect)) return;
    gl.useProgram(this.prog);
    gl.disable(gl.BLEND);
    gl.bindVertexArray(this.vao);
    const u = (name: string) => gl.getUniformLocation(this.prog, name);
    gl.uniform2f(u("u_center"), center[0], center[1]);
    gl.uniform2f(u("u_scale"), scale[0], scale[1]);
    gl.activeTexture(gl.TEXTURE0);
    gl.uniform1i(u("u_tex"), 0);
    for (const layer of this.layers) {
      if (!layer.rect) continue;
      gl.bindTexture(gl.TEXTURE_2D, layer.tex);
      gl.uniform4f(u("u_rect"), ...layer.rect);
      gl.uniform1i(u("u_opaque"), layer.opaque ? 1 : 0);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    }
    gl.bindVertexArray(null);
  }
}
