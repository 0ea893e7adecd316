// Replays requests against the LocalModel of a map saved as HTML and prints what it answers, one
// JSON line per request. Run by tests/test_protocol.py, which plays the same requests to the kernel
// and compares: the saved map must answer as the kernel does.
//
//   node replay.mjs < {"data": header, "xy": [...], "codes": [...], "requests": [...]}

import { LocalModel } from "../src/standalone";
import type { Payload } from "../src/standalone";
import type { Message, Request } from "../src/protocol";

interface Input { data: Payload; xy: number[]; codes: number[]; requests: Request[] }

async function main() {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const input = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Input;
  const model = new LocalModel(input.data, new Float32Array(input.xy), new Uint16Array(input.codes), null);
  let got: { msg: Message; buffers: string[] }[] = [];
  model.on("msg:custom", (msg: Message, views: DataView[]) => {
    got.push({ msg, buffers: views.map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64")) });
  });
  for (const request of input.requests) {
    got = [];
    model.send(request);
    await new Promise((resolve) => setTimeout(resolve, 0)); // replies are sent on the next tick
    await new Promise((resolve) => setTimeout(resolve, 0));
    process.stdout.write(JSON.stringify(got) + "\n");
  }
}

main();
