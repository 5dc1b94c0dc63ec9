/**
 * The state reducer: kernel messages (snapshots, node and run events) folded into the
 * sidebar's view model. Run by Node's test runner on the compiled output (`npm test`).
 */
/// <reference types="node" />
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import {
  INodeMessage,
  IKernelState,
  IRunEntry,
  IRunMessage,
  ISnapshotMessage,
  PROTOCOL_VERSION
} from '../protocol.js';
import {
  cellNumber,
  currentWorkflow,
  formatDuration,
  initialModel,
  IViewModel,
  reduce
} from '../reducer.js';

function state(overrides: Partial<IKernelState> = {}): IKernelState {
  return {
    kernel: { version: '0.1.0' },
    current: 'quickstart',
    workflows: [
      {
        name: 'quickstart',
        run_status: '',
        nodes: ['orders', 'clean'].map((id, index) => ({
          id,
          type: 'PythonCodeNode',
          state: 'idle',
          duration: null,
          error: null,
          cell: `In [${index + 2}]`
        }))
      }
    ],
    runs: [],
    published: [],
    ...overrides
  };
}

function snapshot(overrides: Partial<IKernelState> = {}): ISnapshotMessage {
  return { v: PROTOCOL_VERSION, type: 'snapshot', state: state(overrides) };
}

function node(nodeId: string, nodeState: string, extra: Partial<INodeMessage> = {}): INodeMessage {
  return {
    v: PROTOCOL_VERSION,
    type: 'node',
    workflow: 'quickstart',
    run_id: 'run-1',
    node: nodeId,
    state: nodeState,
    duration: null,
    error: null,
    timestamp: 100,
    ...extra
  };
}

function run(status: string, extra: Partial<IRunEntry> = {}): IRunMessage {
  return {
    v: PROTOCOL_VERSION,
    type: 'run',
    run: {
      run_id: 'run-1',
      workflow: 'quickstart',
      status,
      started_at: 100,
      duration: null,
      error: null,
      nodes: [],
      ...extra
    }
  };
}

function connected(): IViewModel {
  return reduce(reduce(initialModel(), { type: 'connection', connection: 'connected' }), snapshot());
}

function states(model: IViewModel): Record<string, string> {
  return Object.fromEntries(model.workflows[0].nodes.map(n => [n.id, n.state]));
}

describe('reduce', () => {
  it('takes the kernel state from a snapshot', () => {
    const model = connected();
    assert.equal(model.connection, 'connected');
    assert.equal(model.version, '0.1.0');
    assert.equal(model.current, 'quickstart');
    assert.deepEqual(states(model), { orders: 'idle', clean: 'idle' });
  });

  it('moves nodes through queued, running and done with node events', () => {
    let model = reduce(connected(), run('running'));
    assert.equal(model.workflows[0].run_status, 'running');
    model = reduce(model, node('orders', 'queued'));
    model = reduce(model, node('orders', 'running', { timestamp: 101 }));
    assert.deepEqual(states(model), { orders: 'running', clean: 'idle' });
    model = reduce(model, node('orders', 'completed', { duration: 0.5, timestamp: 101.5 }));
    model = reduce(model, node('clean', 'failed', { duration: 0.1, error: 'ValueError: bad row' }));
    assert.deepEqual(states(model), { orders: 'completed', clean: 'failed' });
    assert.equal(model.workflows[0].nodes[1].error, 'ValueError: bad row');
    // The run in progress gathers its timeline from the same events.
    const timeline = model.runs[0].nodes;
    assert.deepEqual(
      timeline.map(entry => [entry.node, entry.state, entry.duration, entry.started_at]),
      [
        ['orders', 'completed', 0.5, 101],
        ['clean', 'failed', 0.1, null]
      ]
    );
    assert.equal(timeline[1].error, 'ValueError: bad row');
  });

  it('keeps a node last duration and error while it runs again', () => {
    let model = reduce(connected(), node('orders', 'failed', { duration: 2, error: 'E: x' }));
    model = reduce(model, node('orders', 'running'));
    assert.equal(model.workflows[0].nodes[0].duration, 2);
    assert.equal(model.workflows[0].nodes[0].error, 'E: x');
    model = reduce(model, node('orders', 'completed', { duration: 1 }));
    assert.equal(model.workflows[0].nodes[0].error, null);
  });

  it('ends a run with its final status and timeline, newest first', () => {
    let model = reduce(connected(), run('running'));
    model = reduce(model, node('orders', 'running'));
    model = reduce(
      model,
      run('failed', {
        duration: 1.5,
        error: 'clean failed',
        nodes: [{ node: 'clean', state: 'failed', duration: 0.1, error: 'E', started_at: 100 }]
      })
    );
    assert.equal(model.runs.length, 1);
    assert.equal(model.runs[0].status, 'failed');
    assert.equal(model.runs[0].nodes[0].node, 'clean');
    assert.equal(model.workflows[0].run_status, 'failed');
    model = reduce(model, run('completed', { run_id: 'run-2' }));
    assert.deepEqual(
      model.runs.map(entry => entry.run_id),
      ['run-2', 'run-1']
    );
  });

  it('keeps at most maxRuns runs', () => {
    let model = reduce(connected(), { type: 'max-runs', maxRuns: 3 });
    for (let index = 0; index < 5; index++) {
      model = reduce(model, run('completed', { run_id: `run-${index}` }));
    }
    assert.deepEqual(
      model.runs.map(entry => entry.run_id),
      ['run-4', 'run-3', 'run-2']
    );
    const runs = Array.from({ length: 6 }, (_, index) => run('completed', { run_id: `r${index}` }).run);
    assert.equal(reduce(model, snapshot({ runs })).runs.length, 3);
  });

  it('ignores events of unknown workflows, runs and nodes', () => {
    const model = connected();
    const after = reduce(model, node('nope', 'running', { workflow: 'other', run_id: 'x' }));
    assert.deepEqual(after.workflows, model.workflows);
    assert.deepEqual(after.runs, []);
  });

  it('ignores another protocol version and unknown message types', () => {
    const model = connected();
    assert.equal(reduce(model, { ...node('orders', 'running'), v: 2 }), model);
    assert.equal(reduce(model, { v: 1, type: 'mystery' } as never), model);
    assert.equal(
      reduce(model, { v: 1, type: 'reply', request_id: 'r', ok: true }),
      model
    );
  });

  it('forgets the kernel state when the link is lost', () => {
    const model = reduce(reduce(connected(), run('running')), {
      type: 'connection',
      connection: 'no-kernel'
    });
    assert.equal(model.connection, 'no-kernel');
    assert.deepEqual(model.workflows, []);
    assert.deepEqual(model.runs, []);
  });

  it('never mutates the model it is given', () => {
    const model = connected();
    const frozen = JSON.stringify(model);
    reduce(model, node('orders', 'running'));
    reduce(model, run('completed'));
    reduce(model, snapshot({ current: 'other' }));
    assert.equal(JSON.stringify(model), frozen);
  });
});

describe('helpers', () => {
  it('reads the cell number of a cell label', () => {
    assert.equal(cellNumber('In [12]'), 12);
    assert.equal(cellNumber('script.py:3'), null);
    assert.equal(cellNumber(null), null);
  });

  it('finds the current workflow, or the first one', () => {
    assert.equal(currentWorkflow(connected())?.name, 'quickstart');
    const other = reduce(connected(), snapshot({ current: 'gone' }));
    assert.equal(currentWorkflow(other)?.name, 'quickstart');
    assert.equal(currentWorkflow(initialModel()), undefined);
  });

  it('formats durations', () => {
    assert.equal(formatDuration(null), '');
    assert.equal(formatDuration(0.0421), '42 ms');
    assert.equal(formatDuration(1.5), '1.50 s');
    assert.equal(formatDuration(125), '2 min 5 s');
  });
});
