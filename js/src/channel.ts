// One view's line to the kernel: every request gets an id, every answer comes back with
// `reply_to` = that id, and broadcasts (no `reply_to`) go to a handler per message type.
//
// Views of one widget (the same model shown twice) share the kernel's messages: an answer to
// another view's request is dropped here, so a view only ever sees its own answers.

import type { AnyModel } from "@anywidget/types";
import type { Message, Outgoing, Request, WidgetState } from "./protocol";

type Handler<M extends Message = Message> = (msg: M, buffers: DataView[]) => void;
/** Called with each message answering a request; returns true when the answer is complete. */
export type ReplyHandler = (msg: Message, buffers: DataView[]) => boolean;

export class Channel {
  /** This view's prefix of request ids. */
  readonly client = Math.random().toString(36).slice(2, 10);
  private counter = 0;
  private readonly pending = new Map<string, ReplyHandler>();
  // each handler is stored under the type it takes (see on())
  private readonly handlers = new Map<string, Handler<Message>>();
  private readonly listener = (msg: Message, buffers: DataView[]) => this.receive(msg, buffers);

  constructor(private readonly model: AnyModel<WidgetState>) {
    model.on("msg:custom", this.listener);
  }

  /** Send a request; `onReply` gets the messages that answer it until it returns true. */
  request<R extends Request>(msg: Outgoing<R>, onReply?: ReplyHandler): string {
    const id = `${this.client}:${++this.counter}`;
    if (onReply) this.pending.set(id, onReply);
    this.model.send({ ...msg, id });
    return id;
  }

  /** Stop waiting for the answer to request `id` (a later request replaces it). */
  forget(id: string): void {
    this.pending.delete(id);
  }

  /** Handle broadcasts of `type` (and answers to this view's requests that nobody waits for). */
  on<T extends Message["type"]>(type: T, handler: Handler<Extract<Message, { type: T }>>): void {
    this.handlers.set(type, handler as Handler<Message>);
  }

  /** True if `id` is one of this view's request ids. */
  mine(id: string | undefined): boolean {
    return id !== undefined && id.startsWith(`${this.client}:`);
  }

  private receive(msg: Message, buffers: DataView[]): void {
    const replyTo = (msg as { reply_to?: string }).reply_to;
    if (replyTo !== undefined) {
      if (!this.mine(replyTo)) return; // another view's answer
      const onReply = this.pending.get(replyTo);
      if (onReply) {
        if (onReply(msg, buffers)) this.pending.delete(replyTo);
        return;
      }
    }
    this.handlers.get(msg.type)?.(msg, buffers);
  }

  close(): void {
    this.model.off("msg:custom", this.listener);
    this.pending.clear();
    this.handlers.clear();
  }
}
