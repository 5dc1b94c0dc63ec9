/**
 * The sidebar's view model and the pure function that folds the kernel's messages into
 * it. Kept free of JupyterLab imports so it runs under Node's test runner.
 */
import {
  INodeState,
  IPublished,
  IRunEntry,
  ITimelineEntry,
  IWorkflowState,
  KernelMessage,
  PROTOCOL_VERSION
} from './protocol.js';

/** How the extension stands with the kernel of the active notebook. */
export type Connection =
  /** No notebook, or its kernel is not running. */
  | 'no-kernel'
  /** The kernel runs, but kailash_nb is not imported in it (yet). */
  | 'not-loaded'
  /** The comm is open: the model follows the kernel. */
  | 'connected'
  /** The kernel speaks another protocol version. */
  | 'incompatible';

/** What the sidebar shows for one notebook. */
export interface IViewModel {
  connection: Connection;
  version: string | null;
  current: string | null;
  workflows: IWorkflowState[];
  runs: IRunEntry[];
  published: IPublished[];
  /** How many runs to keep (the `maxRuns` setting). */
  maxRuns: number;
}

/** Something that happened on the extension's side. */
export type LocalAction =
  | { type: 'connection'; connection: Connection }
  | { type: 'max-runs'; maxRuns: number };

/** The default number of runs listed. */
export const DEFAULT_MAX_RUNS = 20;

/** The model before anything is known. */
export function initialModel(maxRuns: number = DEFAULT_MAX_RUNS): IViewModel {
  return {
    connection: 'no-kernel',
    version: null,
    current: null,
    workflows: [],
    runs: [],
    published: [],
    maxRuns
  };
}

/** The states a node ends a run in. */
export const FINAL_NODE_STATES = new Set(['completed', 'cached', 'failed', 'skipped']);

/**
 * The model after `action`. Never mutates `model`; returns it unchanged for a message it
 * does not understand (another protocol version, an unknown type).
 */
export function reduce(model: IViewModel, action: KernelMessage | LocalAction): IViewModel {
  switch (action.type) {
    case 'connection':
      if (action.connection === 'connected') {
        return { ...model, connection: 'connected' };
      }
      // Without a kernel link nothing of the old state is true any more.
      return { ...initialModel(model.maxRuns), connection: action.connection };
    case 'max-runs':
      return { ...model, maxRuns: action.maxRuns, runs: model.runs.slice(0, action.maxRuns) };
    case 'reply':
      return model;
  }
  if (action.v !== PROTOCOL_VERSION) {
    return model;
  }
  switch (action.type) {
    case 'snapshot': {
      const { state } = action;
      return {
        ...model,
        version: state.kernel.version,
        current: state.current,
        workflows: state.workflows,
        runs: state.runs.slice(0, model.maxRuns),
        published: state.published
      };
    }
    case 'node':
      return {
        ...model,
        workflows: model.workflows.map(workflow =>
          workflow.name === action.workflow
            ? { ...workflow, nodes: updateNode(workflow.nodes, action) }
            : workflow
        ),
        runs: model.runs.map(run =>
          run.run_id === action.run_id ? { ...run, nodes: updateTimeline(run.nodes, action) } : run
        )
      };
    case 'run': {
      const { run } = action;
      const others = model.runs.filter(entry => entry.run_id !== run.run_id);
      const known = model.runs.find(entry => entry.run_id === run.run_id);
      // A started run has no timeline yet: keep the node events already folded in.
      const entry = known && run.nodes.length === 0 ? { ...run, nodes: known.nodes } : run;
      return {
        ...model,
        runs: [entry, ...others].slice(0, model.maxRuns),
        workflows: model.workflows.map(workflow =>
          workflow.name === run.workflow ? { ...workflow, run_status: run.status } : workflow
        )
      };
    }
    default:
      return model;
  }
}

interface INodeUpdate {
  node: string;
  state: string;
  duration: number | null;
  error: string | null;
  timestamp: number;
}

function updateNode(nodes: INodeState[], update: INodeUpdate): INodeState[] {
  return nodes.map(node => {
    if (node.id !== update.node) {
      return node;
    }
    const final = FINAL_NODE_STATES.has(update.state);
    return {
      ...node,
      state: update.state,
      // A node keeps its last duration and error until its new run ends.
      duration: final ? update.duration : node.duration,
      error: final ? update.error : node.error
    };
  });
}

function updateTimeline(entries: ITimelineEntry[], update: INodeUpdate): ITimelineEntry[] {
  const index = entries.findIndex(entry => entry.node === update.node);
  if (index < 0) {
    const started = update.state === 'running' ? update.timestamp : null;
    return [
      ...entries,
      {
        node: update.node,
        state: update.state,
        duration: update.duration,
        error: update.error,
        started_at: started
      }
    ];
  }
  const old = entries[index];
  const entry: ITimelineEntry = {
    node: update.node,
    state: update.state,
    duration: update.duration ?? old.duration,
    error: update.error ?? old.error,
    started_at: old.started_at ?? (update.state === 'running' ? update.timestamp : null)
  };
  return [...entries.slice(0, index), entry, ...entries.slice(index + 1)];
}

/** The workflow a command acts on by default: the kernel's current one. */
export function currentWorkflow(model: IViewModel): IWorkflowState | undefined {
  return model.workflows.find(workflow => workflow.name === model.current) ?? model.workflows[0];
}

/** The number in a cell label `"In [3]"`, or null for a file location or no label. */
export function cellNumber(cell: string | null): number | null {
  const match = cell === null ? null : /^In \[(\d+)\]$/.exec(cell);
  return match ? Number(match[1]) : null;
}

/** `1.23 s`, `45 ms`, `2 min 5 s`; an empty string for null. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) {
    return '';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(2)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds - minutes * 60)} s`;
}
