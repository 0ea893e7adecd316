// The export menu: name the current selection and save it, in the kernel, as a query or as a
// labeling batch (Label Studio, COCO, CSV manifest). The kernel writes the files into the
// explorer's `export_dir` and replies with what it did; the browser sends a name, never a path.
// What the menu offers comes from the kernel (the `exports` trait), not from a list here.

import type { ExportedMessage, ExportRequest, Outgoing } from "./protocol";

/** Sends an export request and returns its id; the answer arrives through `onReply`. */
export type SendExport = (request: Outgoing<ExportRequest>) => string;

const EMPTY = "Select points on the map first: there is nothing to export";
const UNNAMED = "Type a name for the export";

function make<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, parent: HTMLElement, text?: string) {
  const e = document.createElement(tag);
  e.className = cls;
  if (text !== undefined) e.textContent = text; // always text, never HTML
  parent.appendChild(e);
  return e;
}

/** The Export control: a name field, a format select, Save (and Overwrite), and a status line. */
export class ExportMenu {
  readonly root: HTMLElement;
  private readonly nameInput: HTMLInputElement;
  private readonly format: HTMLSelectElement;
  private readonly saveButton: HTMLButtonElement;
  private readonly overwriteButton: HTMLButtonElement;
  private readonly statusLine: HTMLElement;
  private count = 0;
  private edited = false; // the user typed a name: stop suggesting one
  private last: Outgoing<ExportRequest> | null = null; // what was asked last (Overwrite resends it)
  private lastId = ""; // replies to anything else are stale
  private readonly labels: Map<string, string>;

  constructor(parent: HTMLElement, formats: [string, string][], private readonly send: SendExport) {
    this.labels = new Map(formats);
    this.root = make("div", "dx-export", parent);
    this.root.setAttribute("role", "group");
    this.root.setAttribute("aria-label", "Export the selection");
    const row = make("div", "dx-export-row", this.root);
    make("span", "dx-export-title", row, "Export");
    const nameLabel = make("label", "dx-export-field", row);
    make("span", "dx-export-label", nameLabel, "Name");
    this.nameInput = make("input", "dx-input dx-export-name", nameLabel);
    this.nameInput.type = "text";
    this.nameInput.placeholder = "name this selection";
    this.nameInput.spellcheck = false;
    const formatLabel = make("label", "dx-export-field", row);
    make("span", "dx-export-label", formatLabel, "as");
    this.format = make("select", "dx-input dx-export-format", formatLabel);
    this.format.setAttribute("aria-label", "Format");
    for (const [value, text] of formats) make("option", "", this.format, text).value = value;
    this.saveButton = make("button", "dx-btn dx-export-save", row, "Save");
    this.overwriteButton = make("button", "dx-btn dx-export-overwrite", row, "Overwrite");
    this.overwriteButton.style.display = "none";
    this.statusLine = make("div", "dx-export-status", this.root);
    this.statusLine.setAttribute("role", "status");

    // keys typed here are the field's: not JupyterLab's command-mode shortcuts, not the map's Esc
    this.root.addEventListener("keydown", (ev) => ev.stopPropagation());
    this.nameInput.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.isComposing) { ev.preventDefault(); this.save(false); }
    });
    this.nameInput.addEventListener("input", () => {
      this.edited = this.nameInput.value.trim() !== "";
      this.forgetOverwrite();
      this.sync();
    });
    this.format.addEventListener("change", () => this.forgetOverwrite());
    this.saveButton.onclick = () => this.save(false);
    this.overwriteButton.onclick = () => this.save(true);
    this.sync();
  }

  /** The selection changed; it has `count` points. */
  setCount(count: number): void {
    this.forgetOverwrite(); // an Overwrite now would replace the file with other points than asked
    this.count = count;
    this.sync();
  }

  /** The panel's [label, count] pairs, most common first: name the export after the first label
   * unless the user typed a name. */
  suggest(counts: [string, number][]): void {
    if (this.edited) return;
    this.nameInput.value = counts.length ? String(counts[0][0]) : "";
    this.sync();
  }

  /** A reply from the kernel; replies to an earlier request than the last one are ignored. */
  onReply(msg: ExportedMessage): void {
    const last = this.last;
    if (!last || msg.reply_to !== this.lastId) return;
    this.last = null;
    this.show(msg.ok ? "ok" : "error", String(msg.message ?? ""));
    if (msg.ok && msg.path) this.statusLine.title = msg.path;
    if (!msg.ok && msg.exists) {
      this.last = { ...last, overwrite: true }; // what Overwrite resends
      this.overwriteButton.style.display = "";
      this.overwriteButton.title = `Replace the existing ${this.formatText(last.what)} '${last.name}'`;
    }
    this.sync();
  }

  private save(overwrite: boolean): void {
    if (overwrite) {
      if (!this.last?.overwrite || this.count === 0) return;
      this.lastId = this.send(this.last);
      this.overwriteButton.style.display = "none";
      this.show("busy", `replacing '${this.last.name}' …`);
      return;
    }
    const name = this.nameInput.value;
    if (this.count === 0 || !name.trim()) return;
    this.last = { type: "export", name, what: this.format.value, overwrite: false };
    this.overwriteButton.style.display = "none";
    this.lastId = this.send(this.last);
    this.show("busy", `saving '${name.trim()}' as ${this.formatText(this.last.what)} …`);
  }

  private forgetOverwrite(): void {
    if (this.overwriteButton.style.display === "none") return;
    this.overwriteButton.style.display = "none";
    this.last = null;
    this.show("", "");
  }

  private show(state: "" | "busy" | "ok" | "error", text: string): void {
    this.root.dataset.state = state;
    this.statusLine.className = `dx-export-status${state ? ` dx-export-${state}` : ""}`;
    this.statusLine.textContent = text;
    this.statusLine.removeAttribute("title");
  }

  private formatText(what: string): string {
    return this.labels.get(what) ?? what;
  }

  private sync(): void {
    const empty = this.count === 0, unnamed = !this.nameInput.value.trim();
    this.saveButton.disabled = empty || unnamed;
    this.saveButton.title = empty ? EMPTY : unnamed ? UNNAMED
      : `Save the ${this.count.toLocaleString()} selected points into the explorer's export folder`;
    this.overwriteButton.disabled = empty;
    this.root.title = empty ? EMPTY : "";
    this.root.classList.toggle("dx-export-empty", empty);
  }
}
