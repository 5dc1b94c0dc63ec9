/**
 * The messages of the `kailash_nb.lab` comm: what the kernel sends and what the
 * extension asks. The kernel owns every piece of state; the extension keeps only the
 * last copy it received (see `reducer.ts`).
 */

/** The comm target the kernel registers when `kailash_nb.notebook` is imported. */
export const COMM_TARGET = 'kailash_nb.lab';

/** The module whose presence in the kernel's `sys.modules` means the target exists. */
export const KERNEL_MODULE = 'kailash_nb.notebook.lab_comm';

/** The protocol version this extension speaks (`v` of every kernel message). */
export const PROTOCOL_VERSION = 1;

/** One node of a workflow, as the kernel shows it now. */
export interface INodeState {
  id: string;
  type: string;
  /** One of the widget's node states: idle, stale, queued, running, completed, cached, failed, skipped. */
  state: string;
  duration: number | null;
  error: string | null;
  /** Where it was defined: `"In [3]"` for a notebook cell, `"file.py:12"`, or null. */
  cell: string | null;
}

/** One notebook workflow of the kernel. */
export interface IWorkflowState {
  name: string;
  /** The last run's final status, `running` during a run, `""` before any run. */
  run_status: string;
  nodes: INodeState[];
}

/** One node's line in a run's timeline. */
export interface ITimelineEntry {
  node: string;
  state: string;
  duration: number | null;
  error: string | null;
  started_at: number | null;
}

/** One run of a workflow of the kernel. */
export interface IRunEntry {
  run_id: string;
  workflow: string;
  status: string;
  /** Epoch seconds. */
  started_at: number;
  duration: number | null;
  error: string | null;
  nodes: ITimelineEntry[];
}

/** A preview server the kernel runs for its published workflows. */
export interface IPreview {
  port: number;
  base_url: string;
  execute_url: string;
  docs_path: string;
}

/** A published workflow: its route and, when one runs, its preview. */
export interface IPublished {
  workflow: string;
  route: string;
  preview: IPreview | null;
}

/** Everything the kernel shows the sidebar. */
export interface IKernelState {
  kernel: { version: string };
  current: string | null;
  workflows: IWorkflowState[];
  runs: IRunEntry[];
  published: IPublished[];
}

/** The kernel's whole state, sent on request and after every change of structure. */
export interface ISnapshotMessage {
  v: number;
  type: 'snapshot';
  state: IKernelState;
}

/** One node event of a run in progress. */
export interface INodeMessage {
  v: number;
  type: 'node';
  workflow: string;
  run_id: string;
  node: string;
  state: string;
  duration: number | null;
  error: string | null;
  timestamp: number;
}

/** A run started (status `running`) or ended (its final status and timeline). */
export interface IRunMessage {
  v: number;
  type: 'run';
  run: IRunEntry;
}

/** The answer to one request of the extension. */
export interface IReplyMessage {
  v: number;
  type: 'reply';
  request_id: string | null;
  ok: boolean;
  error?: string | null;
  svg?: string;
}

/** Any message the kernel sends on the comm. */
export type KernelMessage = ISnapshotMessage | INodeMessage | IRunMessage | IReplyMessage;

/** What the extension may ask the kernel. */
export type Request =
  | { request: 'snapshot' }
  | { request: 'run'; workflow: string; node: string | null }
  | { request: 'graph'; workflow: string };
