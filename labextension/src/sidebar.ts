/**
 * `KailashSidebar`: the left panel showing the active notebook kernel's workflows, their
 * nodes' states, the last runs (each opening its node timeline) and the published
 * workflows with their previews. It renders the view model of a `KernelLink` and turns
 * clicks into the extension's commands; it keeps no state of the kernel's itself.
 */
import { LabIcon, runIcon, treeViewIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { IPublished, IRunEntry, IWorkflowState } from './protocol.js';
import { Connection, formatDuration, IViewModel } from './reducer.js';

/** What the sidebar's clicks ask of the extension. */
export interface ISidebarActions {
  runWorkflow(workflow: string): void;
  runNode(workflow: string, node: string): void;
  showGraph(workflow: string): void;
  goToCell(workflow: string, node: string): void;
  /** The URL under the Jupyter server through which a preview's path is reached. */
  previewUrl(port: number, path: string): string;
}

/** The node a palette command acts on: the last one clicked. */
export interface ISelection {
  workflow: string;
  node: string;
}

const MESSAGES: Record<Connection, string> = {
  'no-kernel': 'Open a notebook with a running kernel to see its workflows.',
  'not-loaded': 'Run `import kailash_nb as kn` in this notebook to follow its workflows here.',
  connected: '',
  incompatible: 'This kernel runs a kailash_nb whose protocol this extension does not speak.'
};

/** The Kailash sidebar. */
export class KailashSidebar extends Widget {
  constructor(actions: ISidebarActions) {
    super();
    this._actions = actions;
    this.addClass('kn-lab-sidebar');
    this.render(null, null);
  }

  /** The last node clicked, if it is still in the model. */
  get selection(): ISelection | null {
    return this._selection;
  }

  /** Shows `model` (null: no notebook is active); `title` names the notebook. */
  render(model: IViewModel | null, title: string | null): void {
    this._model = model;
    this._title = title;
    const node = this.node;
    node.replaceChildren();
    const header = element('header', 'kn-lab-header');
    header.append(element('h2', 'kn-lab-title', 'Kailash'));
    const connection = model?.connection ?? 'no-kernel';
    const badge = element('span', 'kn-lab-connection', title ?? 'no notebook');
    badge.dataset.connection = connection;
    badge.title = model?.version ? `kailash_nb ${model.version}` : connection;
    header.append(badge);
    node.append(header);
    if (!model || model.connection !== 'connected') {
      node.append(element('p', 'kn-lab-message', MESSAGES[connection]));
      return;
    }
    node.append(this._workflows(model));
    node.append(this._runs(model.runs));
    node.append(this._published(model.published));
  }

  /** Opens the runs section and scrolls to it (the "open run history" command). */
  revealRuns(): void {
    const runs = this.node.querySelector<HTMLElement>('[data-section="runs"]');
    runs?.scrollIntoView({ block: 'start' });
  }

  private _workflows(model: IViewModel): HTMLElement {
    const section = sectionOf('workflows', 'Workflows');
    if (model.workflows.length === 0) {
      section.append(element('p', 'kn-lab-empty', 'No workflow yet: define a node with @kn.node.'));
    }
    for (const workflow of model.workflows) {
      section.append(this._workflow(workflow, workflow.name === model.current));
    }
    return section;
  }

  private _workflow(workflow: IWorkflowState, current: boolean): HTMLElement {
    const box = element('div', 'kn-lab-workflow');
    box.dataset.workflow = workflow.name;
    box.dataset.runStatus = workflow.run_status;
    const head = element('div', 'kn-lab-workflow-header');
    const name = element('span', 'kn-lab-workflow-name', workflow.name);
    if (current) {
      name.classList.add('kn-mod-current');
      name.title = 'the current workflow (kn.workflow)';
    }
    head.append(name, statusBadge(workflow.run_status));
    head.append(
      button('kn-lab-run-workflow', runIcon, `Run ${workflow.name}`, () =>
        this._actions.runWorkflow(workflow.name)
      ),
      button('kn-lab-show-graph', treeViewIcon, `Show the graph of ${workflow.name}`, () =>
        this._actions.showGraph(workflow.name)
      )
    );
    box.append(head);
    const list = element('ul', 'kn-lab-nodes');
    for (const node of workflow.nodes) {
      const item = element('li', 'kn-lab-node');
      item.dataset.node = node.id;
      item.dataset.state = node.state;
      if (
        this._selection?.workflow === workflow.name &&
        this._selection.node === node.id
      ) {
        item.classList.add('kn-mod-selected');
      }
      item.title = `${node.type}: ${node.state}${node.cell ? `, defined in ${node.cell}` : ''}`;
      item.append(
        element('span', 'kn-lab-state-dot'),
        element('span', 'kn-lab-node-id', node.id),
        element('span', 'kn-lab-node-cell', node.cell ?? ''),
        element('span', 'kn-lab-duration', formatDuration(node.duration)),
        button('kn-lab-run-node', runIcon, `Run ${node.id} and what it needs`, () =>
          this._actions.runNode(workflow.name, node.id)
        )
      );
      if (node.error && node.state === 'failed') {
        item.append(element('div', 'kn-lab-error', node.error));
      }
      item.addEventListener('click', () => {
        this._selection = { workflow: workflow.name, node: node.id };
        this.render(this._model, this._title);
        this._actions.goToCell(workflow.name, node.id);
      });
      list.append(item);
    }
    box.append(list);
    return box;
  }

  private _runs(runs: IRunEntry[]): HTMLElement {
    const section = sectionOf('runs', 'Runs');
    if (runs.length === 0) {
      section.append(element('p', 'kn-lab-empty', 'No run yet.'));
    }
    for (const run of runs) {
      const box = element('div', 'kn-lab-run');
      box.dataset.runId = run.run_id;
      box.dataset.status = run.status;
      const head = element('div', 'kn-lab-run-header');
      head.append(
        element('span', 'kn-lab-run-workflow', run.workflow),
        statusBadge(run.status),
        element('span', 'kn-lab-duration', formatDuration(run.duration)),
        element('span', 'kn-lab-run-time', new Date(run.started_at * 1000).toLocaleTimeString())
      );
      head.title = `run ${run.run_id}`;
      head.addEventListener('click', () => {
        if (this._expanded.has(run.run_id)) {
          this._expanded.delete(run.run_id);
        } else {
          this._expanded.add(run.run_id);
        }
        this.render(this._model, this._title);
      });
      box.append(head);
      if (this._expanded.has(run.run_id)) {
        box.classList.add('kn-mod-expanded');
        box.append(timeline(run));
      }
      section.append(box);
    }
    return section;
  }

  private _published(published: IPublished[]): HTMLElement {
    const section = sectionOf('published', 'Published');
    if (published.length === 0) {
      section.append(element('p', 'kn-lab-empty', 'Nothing published: see kn.publish.'));
    }
    for (const entry of published) {
      const box = element('div', 'kn-lab-published');
      box.dataset.route = entry.route;
      box.append(
        element('span', 'kn-lab-route', `POST /workflows/${entry.route}/execute`),
        element('span', 'kn-lab-published-workflow', entry.workflow)
      );
      const preview = entry.preview;
      if (preview) {
        box.dataset.port = String(preview.port);
        const docs = element('a', 'kn-lab-docs', 'API docs') as HTMLAnchorElement;
        docs.href = this._actions.previewUrl(preview.port, preview.docs_path);
        docs.target = '_blank';
        docs.rel = 'noopener';
        const execute = element('code', 'kn-lab-preview-url', preview.execute_url);
        execute.title = 'the preview inside the kernel (it needs the preview’s own token)';
        box.append(docs, execute);
      }
      section.append(box);
    }
    return section;
  }

  private _actions: ISidebarActions;
  private _model: IViewModel | null = null;
  private _title: string | null = null;
  private _selection: ISelection | null = null;
  private _expanded = new Set<string>();
}

function timeline(run: IRunEntry): HTMLElement {
  const list = element('ol', 'kn-lab-timeline');
  if (run.error) {
    list.append(element('li', 'kn-lab-error', run.error));
  }
  for (const entry of run.nodes) {
    const item = element('li', 'kn-lab-timeline-node');
    item.dataset.node = entry.node;
    item.dataset.state = entry.state;
    item.append(
      element('span', 'kn-lab-state-dot'),
      element('span', 'kn-lab-node-id', entry.node),
      element('span', 'kn-lab-state', entry.state),
      element('span', 'kn-lab-duration', formatDuration(entry.duration))
    );
    if (entry.error) {
      item.append(element('div', 'kn-lab-error', entry.error));
    }
    list.append(item);
  }
  return list;
}

function sectionOf(name: string, title: string): HTMLElement {
  const section = element('section', 'kn-lab-section');
  section.dataset.section = name;
  section.append(element('h3', 'kn-lab-section-title', title));
  return section;
}

function statusBadge(status: string): HTMLElement {
  const badge = element('span', 'kn-lab-status', status || 'not run');
  badge.dataset.status = status;
  return badge;
}

function button(className: string, icon: LabIcon, title: string, onClick: () => void): HTMLElement {
  const node = element('button', `kn-lab-button ${className}`);
  icon.element({ container: node, tag: null, elementSize: 'normal' });
  node.title = title;
  node.setAttribute('aria-label', title);
  node.addEventListener('click', event => {
    event.stopPropagation();
    onClick();
  });
  return node;
}

function element(tag: string, className: string, text?: string): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}
